
namespace Nexus.Sdk.Tests.Client;

/// <summary>Issue 17's fields in the SDK: health, per-connection values, list filters and cursor, reconnect.</summary>
public sealed class ConnectionHealthModelTests
{
    private const string Listed = """
        {"connections":[{"connection_id":"conn_1","status":"active","provider":"shop","workspace_id":"w","scopes":["read"],"created_at":1,"updated_at":2,
          "connection_config":{"shop":"acme"},"granted_scopes":["read","write"],"last_refreshed_at":100,"next_refresh_at":200,"consecutive_failures":2,
          "last_error":{"code":"temporarily_unavailable","message":"Down for maintenance"},"reconnecting":true}],"next_cursor":"djE6MTpjb25uXzE"}
        """;

    [Fact]
    public async Task A_page_of_connections_carries_health_values_and_the_next_cursor()
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Json(Listed)) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var page = await client.ListConnectionsPageAsync("w", "active", "shop", 10, "abc", TestContext.Current.CancellationToken);

        Assert.Equal("http://nexus.test/v1/connections?workspace_id=w&status=active&provider=shop&cursor=abc&limit=10", Assert.Single(fake.Requests).Uri);
        Assert.Equal("djE6MTpjb25uXzE", page.NextCursor);
        var connection = Assert.Single(page.Connections);
        Assert.Equal("acme", connection.ConnectionConfig["shop"]);
        Assert.Equal(["read", "write"], connection.GrantedScopes);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(100), connection.LastRefreshedAt);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(200), connection.NextRefreshAt);
        Assert.Equal(2, connection.ConsecutiveFailures);
        Assert.Equal(new ConnectionError("temporarily_unavailable", "Down for maintenance"), connection.LastError);
        Assert.True(connection.Reconnecting);
    }

    [Fact]
    public async Task Reconnect_posts_to_the_connection_and_keeps_its_id()
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Json("""{"auth_url":"https://acme.example/authorize?state=s","connection_id":"conn_1"}""")) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var requested = await client.ReconnectAsync("conn_1", ["read"], cancellationToken: TestContext.Current.CancellationToken);

        var request = Assert.Single(fake.Requests);
        Assert.Equal(HttpMethod.Post, request.Method);
        Assert.Equal("http://nexus.test/v1/connections/conn_1/reconnect", request.Uri);
        Assert.Equal("conn_1", requested.ConnectionId);
    }
}
