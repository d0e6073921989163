using System.Net;

namespace Nexus.Sdk.Tests.Client;

/// <summary>
/// Which secrets reach which host when an answer is a redirect, against real HTTP servers on loopback ports: the
/// Nexus API key only ever goes to Nexus, and a provider credential only to the origin it was applied for.
/// </summary>
public sealed class RedirectTests
{
    private static NexusClientOptions OptionsFor(LoopbackHost nexus)
    {
        var options = FakeNexus.Options();
        options.BaseUrl = nexus.Url;
        return options;
    }

    [Theory]
    [InlineData("its own handler")]
    [InlineData("a SocketsHttpHandler given to it")]
    [InlineData("an HttpClientHandler given to it")]
    public async Task A_Bridge_redirect_to_the_provider_comes_back_to_the_caller_and_the_Nexus_API_key_never_reaches_the_provider(string transport)
    {
        using var provider = new LoopbackHost((_, response) => response.StatusCode = 200);
        // The Bridge passes the provider's same-host redirect on with the provider's absolute Location.
        using var nexus = new LoopbackHost((_, response) => LoopbackHost.Redirect(response, provider.Url + "repos/moved?page=2"));
        using var client = transport switch
        {
            "its own handler" => new NexusClient(OptionsFor(nexus)),
            "a SocketsHttpHandler given to it" => new NexusClient(OptionsFor(nexus), new SocketsHttpHandler()),
            _ => new NexusClient(OptionsFor(nexus), new HttpClientHandler()),
        };
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/repos/a/b", UriKind.Relative));

        using var response = await client.SendThroughBridgeAsync("conn_1", request, TestContext.Current.CancellationToken);

        Assert.DoesNotContain(provider.Requests, r => r.Headers.ContainsKey("x-api-key"));
        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.Equal(new Uri(provider.Url + "repos/moved?page=2"), response.Headers.Location);
        Assert.Empty(provider.Requests);
        var sent = Assert.Single(nexus.Requests);
        Assert.Equal("/v1/bridge/conn_1/repos/a/b", sent.PathAndQuery);
        Assert.Equal(FakeNexus.ApiKey, sent.Headers["x-api-key"]);
    }

    [Fact]
    public async Task A_call_to_Nexus_that_answers_a_redirect_fails_instead_of_taking_the_API_key_elsewhere()
    {
        using var elsewhere = new LoopbackHost((_, response) => response.StatusCode = 200);
        using var nexus = new LoopbackHost((_, response) => LoopbackHost.Redirect(response, elsewhere.Url + "v1/connections/conn_1", HttpStatusCode.TemporaryRedirect));
        using var client = new NexusClient(OptionsFor(nexus));

        var error = await Assert.ThrowsAsync<NexusException>(() => client.GetConnectionAsync("conn_1", TestContext.Current.CancellationToken));

        Assert.Equal(HttpStatusCode.TemporaryRedirect, error.StatusCode);
        Assert.Empty(elsewhere.Requests);
    }

    [Fact]
    public async Task An_HttpClient_of_the_caller_that_followed_a_redirect_away_from_Nexus_makes_the_call_fail_saying_so()
    {
        using var provider = new LoopbackHost((_, response) => response.StatusCode = 200);
        using var nexus = new LoopbackHost((_, response) => LoopbackHost.Redirect(response, provider.Url + "user"));
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = true });
        using var client = new NexusClient(http, OptionsFor(nexus));
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/user", UriKind.Relative));

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => client.SendThroughBridgeAsync("conn_1", request, TestContext.Current.CancellationToken));

        // The caller's handler followed the redirect before Nexus's client saw it: the key went there, and the error says so.
        Assert.Single(provider.Requests);
        Assert.Contains("AllowAutoRedirect", error.Message, StringComparison.Ordinal);
        Assert.Contains(provider.Url.Authority, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(FakeNexus.ApiKey, error.Message, StringComparison.Ordinal);
    }
}
