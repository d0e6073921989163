using System.Net;

namespace Nexus.Sdk.Tests.Client;

/// <summary>
/// A machine-to-machine MCP server's connection (client_credentials, docs/remote-mcp.md) needs nobody's consent: Nexus
/// answers request-connection 201 and reconnect 200 with <c>{connection_id, status: "active"}</c> and no <c>auth_url</c>
/// (the server leaves a null out of its JSON). The SDK gives a <see cref="RequestedConnection"/> without a URL.
/// </summary>
public sealed class MachineConnectionTests
{
    // What Nexus sends (MachineConnectionResponse with a null AuthUrl, nulls not written), and the same with the null written.
    [Theory]
    [InlineData("""{"connection_id":"conn_m2m","status":"active"}""")]
    [InlineData("""{"auth_url":null,"connection_id":"conn_m2m","status":"active"}""")]
    public async Task Requesting_a_machine_connection_gives_its_id_active_and_no_auth_url(string answer)
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Json(answer, HttpStatusCode.Created)) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var requested = await client.RequestConnectionAsync(new ConnectionRequest("w", "reports", new Uri("https://app.example/return")),
            TestContext.Current.CancellationToken);

        Assert.Equal("http://nexus.test/v1/request-connection", Assert.Single(fake.Requests).Uri);
        Assert.Equal("conn_m2m", requested.ConnectionId);
        Assert.Null(requested.AuthUrl);
        Assert.Equal(ConnectionStatuses.Active, requested.Status);
        Assert.Equal("RequestedConnection { ConnectionId = conn_m2m, AuthUrl = (none), Status = active }", requested.ToString());
    }

    [Fact]
    public async Task Reconnecting_a_machine_connection_keeps_its_id_and_gives_active_without_auth_url()
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Json("""{"connection_id":"conn_m2m","status":"active"}""")) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var again = await client.ReconnectAsync("conn_m2m", ["reports:read"], cancellationToken: TestContext.Current.CancellationToken);

        var request = Assert.Single(fake.Requests);
        Assert.Equal(HttpMethod.Post, request.Method);
        Assert.Equal("http://nexus.test/v1/connections/conn_m2m/reconnect", request.Uri);
        Assert.Equal("conn_m2m", again.ConnectionId);
        Assert.Null(again.AuthUrl);
        Assert.Equal(ConnectionStatuses.Active, again.Status);
    }

    [Fact]
    public async Task A_consent_answer_still_gives_the_auth_url_no_status_and_prints_no_state()
    {
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(FakeNexus.Json("""{"auth_url":"https://idp.example/authorize?state=s3cr3t-state","connection_id":"conn_1"}""",
                HttpStatusCode.Created)),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var requested = await client.RequestConnectionAsync(new ConnectionRequest("w", "github", new Uri("https://app.example/return")),
            TestContext.Current.CancellationToken);

        Assert.Equal(new Uri("https://idp.example/authorize?state=s3cr3t-state"), requested.AuthUrl);
        Assert.Null(requested.Status);
        Assert.Equal("RequestedConnection { ConnectionId = conn_1, AuthUrl = https://idp.example/authorize?… }", requested.ToString());
    }

    [Fact]
    public async Task A_refused_machine_connection_is_an_error_with_the_connection_id_and_is_not_retried()
    {
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(FakeNexus.Problem(HttpStatusCode.BadGateway, "token_request_failed", ""","connection_id":"conn_m2m" """)),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var error = await Assert.ThrowsAnyAsync<NexusException>(() => client.RequestConnectionAsync(
            new ConnectionRequest("w", "reports", new Uri("https://app.example/return")), TestContext.Current.CancellationToken));

        Assert.Equal(HttpStatusCode.BadGateway, error.StatusCode);
        Assert.Equal("token_request_failed", error.Code);
        Assert.Equal("conn_m2m", error.ConnectionId);
        Assert.Single(fake.Requests);
    }
}
