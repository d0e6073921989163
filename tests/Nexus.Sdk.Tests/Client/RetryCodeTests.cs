using System.Net;

namespace Nexus.Sdk.Tests.Client;

/// <summary>A 502/503/504 is retried only without a Nexus code (a proxy's answer) or with a transient one.</summary>
public sealed class RetryCodeTests
{
    private const string ActiveConnection = """{"connection_id":"conn_1","status":"active","provider":"p","workspace_id":"w","scopes":["a"],"created_at":1,"updated_at":2,"expires_at":3}""";

    private static HttpResponseMessage NexusProblem(HttpStatusCode status, string? code) => code is null
        ? new HttpResponseMessage(status) { Content = new StringContent("<html>Bad Gateway</html>", System.Text.Encoding.UTF8, "text/html") }
        : FakeNexus.Json($$"""{"type":"urn:nexus:problem:{{code}}","title":"t","status":{{(int)status}},"code":"{{code}}"}""", status, "application/problem+json");

    [Theory]
    [InlineData(HttpStatusCode.BadGateway, "token_request_failed", 1)]
    [InlineData(HttpStatusCode.BadGateway, "redirect_refused", 1)]
    [InlineData(HttpStatusCode.BadGateway, "aws_assume_role_failed", 1)]
    [InlineData(HttpStatusCode.BadGateway, "upstream_unreachable", 3)]
    [InlineData(HttpStatusCode.GatewayTimeout, "upstream_timeout", 3)]
    [InlineData(HttpStatusCode.ServiceUnavailable, "database_unavailable", 3)]
    [InlineData(HttpStatusCode.ServiceUnavailable, "refresh_unavailable", 3)]
    [InlineData(HttpStatusCode.ServiceUnavailable, "aws_sts_throttled", 3)]
    [InlineData(HttpStatusCode.BadGateway, null, 3)]
    public async Task Only_transient_Nexus_codes_of_a_502_503_504_are_retried_through_the_API_and_the_Bridge(HttpStatusCode status, string? code, int attempts)
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(NexusProblem(status, code)) };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        var token = TestContext.Current.CancellationToken;

        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.GetConnectionAsync("conn_1", token));
        Assert.Equal(code, error.Code);
        Assert.Equal(attempts, fake.Count("/v1/connections/conn_1"));

        if (code is not null)
        {
            // Through the Bridge alike (a provider's own 502 passes through, never retried).
            await Assert.ThrowsAsync<NexusUnavailableException>(() => client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/item", UriKind.Relative)), token));
            Assert.Equal(attempts, fake.Count("/v1/bridge/conn_1"));
        }
    }

    [Fact]
    public async Task A_delete_retried_after_a_502_is_done_when_the_retry_finds_it_gone()
    {
        // The first DELETE deleted it, and a proxy lost the answer; the retry meets a 404: success.
        var calls = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(Interlocked.Increment(ref calls) == 1 ? NexusProblem(HttpStatusCode.BadGateway, null) : NexusProblem(HttpStatusCode.NotFound, "not_found")),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        await client.DeleteConnectionAsync("conn_1", TestContext.Current.CancellationToken);
        Assert.Equal(2, calls);

        // A 404 on the first attempt is still NotFound.
        await Assert.ThrowsAsync<NexusNotFoundException>(() => client.DeleteConnectionAsync("conn_1", TestContext.Current.CancellationToken));
        Assert.Equal(3, calls);
    }

    [Theory]
    [InlineData(HttpStatusCode.TooManyRequests, "rate_limited")]
    [InlineData(HttpStatusCode.ServiceUnavailable, "database_unavailable")]
    [InlineData(HttpStatusCode.ServiceUnavailable, null)]
    public async Task A_forced_refresh_is_not_sent_again_after_a_429_or_a_503_other_than_refresh_unavailable(HttpStatusCode status, string? code)
    {
        var calls = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(Interlocked.Increment(ref calls) == 1 ? NexusProblem(status, code) : FakeNexus.Json(ActiveConnection)),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        await Assert.ThrowsAnyAsync<NexusRetryableException>(() => client.RefreshAsync("conn_1", TestContext.Current.CancellationToken));
        Assert.Equal(1, fake.Count("/v1/refresh/conn_1"));
    }
}
