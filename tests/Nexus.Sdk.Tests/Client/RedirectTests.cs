using System.Net;
using Microsoft.Extensions.DependencyInjection;

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

    /// <summary>A Nexus that answers every token read with <paramref name="token"/>.</summary>
    private static FakeNexus TokenNexus(string token) => new() { Respond = _ => Task.FromResult(FakeNexus.Json(token)) };

    public static TheoryData<string, string> ProviderCredentials => new()
    {
        { "api_key", FakeNexus.Token("api_key", "\"api_key\":\"k-secret\"", null, ""","in":"header","name":"X-Key","prefix":null""") },
        { "aws_sigv4", FakeNexus.Token("aws_sigv4", "\"access_key_id\":\"AKIDEXAMPLE\",\"secret_access_key\":\"wJalr\",\"session_token\":\"tok-secret\"",
            null, ""","region":"eu-west-1","service":"execute-api" """) },
        { "oauth2", FakeNexus.Token("oauth2", "\"access_token\":\"at-secret\"", null) },
    };

    [Theory]
    [MemberData(nameof(ProviderCredentials))]
    public async Task A_provider_redirect_to_another_host_is_handed_back_and_no_credential_reaches_that_host(string strategy, string token)
    {
        _ = strategy;
        using var other = new LoopbackHost((_, response) => response.StatusCode = 200);
        using var provider = new LoopbackHost((_, response) => LoopbackHost.Redirect(response, other.Url + "landing"));
        using var client = new NexusClient(FakeNexus.Options(), TokenNexus(token));
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = new SocketsHttpHandler() });

        using var response = await http.GetAsync(new Uri(provider.Url, "start"), TestContext.Current.CancellationToken);

        Assert.DoesNotContain(other.Requests, r => r.Headers.Keys.Any(name => name is "x-key" or "authorization" || name.StartsWith("x-amz-", StringComparison.Ordinal)));
        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.Equal(new Uri(other.Url + "landing"), response.Headers.Location);
        Assert.Empty(other.Requests);
        var sent = Assert.Single(provider.Requests);
        Assert.True(sent.Headers.ContainsKey("x-key") || sent.Headers.ContainsKey("authorization"), "the provider itself got the credential");
    }

    [Theory]
    [MemberData(nameof(ProviderCredentials))]
    public async Task A_provider_redirect_on_the_same_host_is_followed_with_the_credential_applied_again(string strategy, string token)
    {
        using var provider = new LoopbackHost((request, response) =>
        {
            if (request.Url!.AbsolutePath == "/start")
            {
                LoopbackHost.Redirect(response, "/next?page=2", HttpStatusCode.MovedPermanently);
            }
            else
            {
                response.StatusCode = 200;
            }
        });
        using var client = new NexusClient(FakeNexus.Options(), TokenNexus(token));
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = new SocketsHttpHandler() });

        using var response = await http.PostAsync(new Uri(provider.Url, "start"), new StringContent("{}"), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["/start", "/next?page=2"], provider.Requests.Select(r => r.PathAndQuery));
        var next = provider.Requests.Last();
        Assert.Equal("GET", next.Method); // 301 after a POST: a GET without the body, as browsers and .NET do
        switch (strategy)
        {
            case "api_key":
                Assert.Equal("k-secret", next.Headers["x-key"]);
                break;
            case "oauth2":
                Assert.Equal("Bearer at-secret", next.Headers["authorization"]);
                break;
            default:
                // Signed again for the new path and method, not the first hop's signature.
                Assert.StartsWith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/", next.Headers["authorization"], StringComparison.Ordinal);
                Assert.NotEqual(provider.Requests.First().Headers["authorization"], next.Headers["authorization"]);
                Assert.Equal("tok-secret", next.Headers["x-amz-security-token"]);
                break;
        }
    }

    [Fact]
    public async Task AddNexusCredentials_with_the_default_primary_handler_keeps_the_credential_off_another_host()
    {
        using var other = new LoopbackHost((_, response) => response.StatusCode = 200);
        using var provider = new LoopbackHost((_, response) => LoopbackHost.Redirect(response, other.Url + "landing", HttpStatusCode.TemporaryRedirect));
        var services = new ServiceCollection();
        services.AddSingleton(new NexusClient(FakeNexus.Options(), TokenNexus(FakeNexus.Token("api_key", "\"api_key\":\"k-secret\"", null,
            ""","in":"header","name":"X-Key","prefix":null"""))));
        services.AddHttpClient("provider").AddNexusCredentials("conn_1");
        using var container = services.BuildServiceProvider();
        var http = container.GetRequiredService<IHttpClientFactory>().CreateClient("provider");

        using var response = await http.GetAsync(new Uri(provider.Url, "start"), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.TemporaryRedirect, response.StatusCode);
        Assert.Empty(other.Requests);
    }

    [Fact]
    public async Task A_handler_whose_primary_handler_does_not_follow_redirects_still_does_not()
    {
        using var provider = new LoopbackHost((_, response) => LoopbackHost.Redirect(response, "/next"));
        using var client = new NexusClient(FakeNexus.Options(), TokenNexus(FakeNexus.Token("oauth2", "\"access_token\":\"at\"", null)));
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = new SocketsHttpHandler { AllowAutoRedirect = false } });

        using var response = await http.GetAsync(new Uri(provider.Url, "start"), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.Single(provider.Requests);
    }
}
