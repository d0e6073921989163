
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

    [Fact]
    public async Task ListAllConnectionsAsync_follows_next_cursor_with_the_same_filters()
    {
        var fake = new FakeNexus
        {
            Respond = r => Task.FromResult(FakeNexus.Json(r.RequestUri!.Query.Contains("cursor=c2", StringComparison.Ordinal)
                ? """{"connections":[{"connection_id":"conn_1","status":"active"}]}"""
                : """{"connections":[{"connection_id":"conn_3","status":"active"},{"connection_id":"conn_2","status":"active"}],"next_cursor":"c2"}""")),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var ids = new List<string>();
        await foreach (var c in client.ListAllConnectionsAsync("w", "active", "shop", 2, TestContext.Current.CancellationToken))
        {
            ids.Add(c.ConnectionId);
        }

        Assert.Equal(["conn_3", "conn_2", "conn_1"], ids);
        Assert.Equal(["http://nexus.test/v1/connections?workspace_id=w&status=active&provider=shop&limit=2",
            "http://nexus.test/v1/connections?workspace_id=w&status=active&provider=shop&cursor=c2&limit=2"], fake.Requests.Select(r => r.Uri));
    }

    [Fact]
    public async Task Credentials_carry_the_connection_config()
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Json("""{"strategy":{"type":"oauth2"},"credentials":{"access_token":"at"},"expires_at":null,"connection_config":{"shop":"acme"}}""")) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var credential = await client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken);

        Assert.Equal("acme", credential.ConnectionConfig["shop"]);
    }

    // The shared vector (the same in every SDK's tests): a connection.recovered delivery signed as Standard Webhooks specifies.
    private const string VectorSecret = "whsec_bmV4dXMtc2RrLXdlYmhvb2stdGVzdC1rZXktMzJieXQ=";
    private const string VectorSignature = "v1,kBeSx3GnqiaEXli7TIDFrbOF1ooxc4D23RgBgWOmOHY=";
    private const string VectorBody = """{"id":"msg_01JEXAMPLERECOVERED00000","type":"connection.recovered","timestamp":1764936000,"workspace_id":"user_abc123","data":{"connection_id":"conn_01JEXAMPLE","provider":"google","status":"active","failures":3,"expires_at":1764939600}}""";

    private static Func<string, string?> VectorHeaders(string signature) => name => name switch
    {
        "webhook-id" => "msg_01JEXAMPLERECOVERED00000",
        "webhook-timestamp" => "1764936000",
        "webhook-signature" => signature,
        _ => null,
    };

    [Fact]
    public void A_recovered_webhook_is_verified_and_parsed_into_its_event_type()
    {
        var clock = new ManualClock(DateTimeOffset.FromUnixTimeSeconds(1764936030));

        var e = NexusWebhooks.Verify(VectorSecret, VectorHeaders("v1,c29tZXRoaW5nIGVsc2U= " + VectorSignature), System.Text.Encoding.UTF8.GetBytes(VectorBody), clock);

        Assert.Equal(WebhookEventTypes.ConnectionRecovered, e.Type);
        Assert.Equal(("msg_01JEXAMPLERECOVERED00000", "user_abc123"), (e.Id, e.WorkspaceId));
        Assert.Equal(("conn_01JEXAMPLE", "google", 3L), (e.Data.ConnectionId, e.Data.Provider, e.Data.Failures));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1764939600), e.Data.ExpiresAt);
    }

    [Theory]
    [InlineData("wrong signature")]
    [InlineData("tampered body")]
    [InlineData("replayed later")]
    [InlineData("other secret")]
    [InlineData("no headers")]
    public void A_webhook_that_does_not_hold_is_refused(string what)
    {
        var body = what == "tampered body" ? VectorBody.Replace("\"failures\":3", "\"failures\":4", StringComparison.Ordinal) : VectorBody;
        var clock = new ManualClock(DateTimeOffset.FromUnixTimeSeconds(1764936000 + (what == "replayed later" ? 360 : 0)));
        var secret = what == "other secret" ? "whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC0xMjM0NTY=" : VectorSecret;
        var headers = what switch
        {
            "wrong signature" => VectorHeaders("v1,kCeSx3GnqiaEXli7TIDFrbOF1ooxc4D23RgBgWOmOHY="),
            "no headers" => _ => null,
            _ => VectorHeaders(VectorSignature),
        };

        Assert.Throws<NexusWebhookVerificationException>(() => NexusWebhooks.Verify(secret, headers, System.Text.Encoding.UTF8.GetBytes(body), clock));
    }

    [Theory]
    [InlineData("whsec_")]
    [InlineData("")]
    public void A_secret_whose_key_is_empty_is_refused_even_with_the_signature_that_key_makes(string secret)
    {
        // Anyone can compute an HMAC with an empty key, so such a "secret" verifies nothing (as in Go, TypeScript, Python).
        var body = System.Text.Encoding.UTF8.GetBytes(VectorBody);
        var mac = System.Security.Cryptography.HMACSHA256.HashData(Array.Empty<byte>(), System.Text.Encoding.UTF8.GetBytes("msg_01JEXAMPLERECOVERED00000.1764936000." + VectorBody));
        var clock = new ManualClock(DateTimeOffset.FromUnixTimeSeconds(1764936000));

        Assert.Throws<NexusWebhookVerificationException>(() => NexusWebhooks.Verify(secret, VectorHeaders("v1," + Convert.ToBase64String(mac)), body, clock));
    }
}
