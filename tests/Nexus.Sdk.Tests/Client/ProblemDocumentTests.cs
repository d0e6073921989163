using System.Net;

namespace Nexus.Sdk.Tests.Client;

/// <summary>The members a problem adds to RFC 9457's are kept on the error: a step-up's auth_url, validation_failed's errors, step_up_limit's rounds.</summary>
public sealed class ProblemDocumentTests
{
    private static HttpResponseMessage Problem(HttpStatusCode status, string code, string extra) =>
        FakeNexus.Json($$"""{"type":"urn:nexus:problem:{{code}}","title":"t","status":{{(int)status}},"code":"{{code}}"{{extra}}}""", status, "application/problem+json");

    [Fact]
    public async Task A_problems_extra_members_are_kept_on_the_error()
    {
        var fake = new FakeNexus
        {
            Respond = request => Task.FromResult(request.RequestUri!.AbsolutePath switch
            {
                "/v1/request-connection" => Problem(HttpStatusCode.BadRequest, "validation_failed", ""","errors":{"provider_name":["Required."]}"""),
                "/v1/bridge/conn_1/tool" => Problem(HttpStatusCode.Forbidden, "insufficient_scope",
                    ""","auth_url":"https://nexus.test/connect/abc","connection_id":"conn_1","scopes":["read","write"]"""),
                _ => Problem(HttpStatusCode.Forbidden, "step_up_limit", ""","connection_id":"conn_1","rounds":3"""),
            }),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        var token = TestContext.Current.CancellationToken;

        var invalid = await Assert.ThrowsAnyAsync<NexusException>(() => client.RequestConnectionAsync(new ConnectionRequest("ws", "", new Uri("https://app.test/done")), token));
        Assert.Equal(["Required."], invalid.ValidationErrors["provider_name"]);

        var stepUp = await Assert.ThrowsAsync<NexusForbiddenException>(() => client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/tool", UriKind.Relative)), token));
        Assert.Equal(new Uri("https://nexus.test/connect/abc"), stepUp.AuthUrl);
        Assert.Equal("conn_1", stepUp.ConnectionId);
        Assert.Equal(["read", "write"], stepUp.Problem!.Value.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));

        var limit = await Assert.ThrowsAsync<NexusForbiddenException>(() => client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/other", UriKind.Relative)), token));
        Assert.Equal(3, limit.Problem!.Value.GetProperty("rounds").GetInt32());
        Assert.Null(limit.AuthUrl);
        Assert.Empty(limit.ValidationErrors);
    }
}
