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
        using var client = ClientFor(nexus, transport);
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

    private static NexusClient ClientFor(LoopbackHost nexus, string transport) => transport switch
    {
        "its own handler" => new NexusClient(OptionsFor(nexus)),
        "a SocketsHttpHandler given to it" => new NexusClient(OptionsFor(nexus), new SocketsHttpHandler()),
        _ => new NexusClient(OptionsFor(nexus), new HttpClientHandler()),
    };

    [Theory]
    [InlineData("its own handler")]
    [InlineData("a SocketsHttpHandler given to it")]
    [InlineData("an HttpClientHandler given to it")]
    public async Task A_redirect_the_Bridge_rewrote_to_its_own_path_is_followed_with_the_API_key_and_nothing_reaches_the_provider(string transport)
    {
        using var provider = new LoopbackHost((_, response) => response.StatusCode = 200);
        using var nexus = new LoopbackHost((request, response) =>
        {
            switch (request.Url!.AbsolutePath)
            {
                case "/v1/bridge/conn_1/repos/old/name":
                    LoopbackHost.Redirect(response, "/v1/bridge/conn_1/repos/new/name?page=2", HttpStatusCode.MovedPermanently);
                    break;
                case "/v1/bridge/conn_1/repos/new/name":
                    LoopbackHost.Redirect(response, "part-2"); // relative to the request's URI
                    break;
                case "/v1/bridge/conn_1/repos/new/part-2":
                    LoopbackHost.Redirect(response, $"http://127.0.0.1:{request.Url.Port}/v1/bridge/conn_1", HttpStatusCode.TemporaryRedirect);
                    break;
                default:
                    response.StatusCode = 200;
                    break;
            }
        });
        using var client = ClientFor(nexus, transport);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/repos/old/name", UriKind.Relative));
        request.Headers.Add("X-Caller", "mine");

        using var response = await client.SendThroughBridgeAsync("conn_1", request, TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new Uri(nexus.Url, "v1/bridge/conn_1"), response.RequestMessage!.RequestUri);
        Assert.Equal(["/v1/bridge/conn_1/repos/old/name", "/v1/bridge/conn_1/repos/new/name?page=2", "/v1/bridge/conn_1/repos/new/part-2", "/v1/bridge/conn_1"],
            nexus.Requests.Select(r => r.PathAndQuery));
        Assert.All(nexus.Requests, r => Assert.Equal(FakeNexus.ApiKey, r.Headers["x-api-key"]));
        Assert.All(nexus.Requests, r => Assert.Equal("mine", r.Headers["x-caller"]));
        Assert.Empty(provider.Requests);
    }

    [Theory]
    [InlineData("{provider}repos/new/name")] // the provider's host outside its API, passed on by the Bridge as written
    [InlineData("{provider}v1/bridge/conn_1/repos/new/name")] // a Bridge path on another origin
    [InlineData("http://localhost:{nexus-port}/v1/bridge/conn_1/x")] // Nexus's server by another host name: another origin
    [InlineData("https://127.0.0.1:{nexus-port}/v1/bridge/conn_1/x")] // another scheme
    [InlineData("http://user:pw@127.0.0.1:{nexus-port}/v1/bridge/conn_1/x")]
    [InlineData("/other/place")] // on Nexus, but not the Bridge
    [InlineData("/v1/bridge/conn_1x/y")] // another connection whose id starts with this one's
    [InlineData("/v1/bridge/conn_2/y")]
    [InlineData("/v1/bridge/conn_1/../conn_2/y")]
    [InlineData("/v1/bridge/conn_1/%2e%2e/conn_2/y")]
    [InlineData("/v1/bridge/conn_1/x/%2E%2E/%2E%2E/conn_2/y")]
    public async Task A_Bridge_redirect_anywhere_but_the_same_connections_Bridge_on_Nexus_comes_back_as_the_3xx(string location)
    {
        using var provider = new LoopbackHost((_, response) => response.StatusCode = 200);
        using var nexus = new LoopbackHost((_, response) => response.StatusCode = 200);
        var written = location.Replace("{provider}", provider.Url.AbsoluteUri, StringComparison.Ordinal)
            .Replace("{nexus-port}", nexus.Url.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        nexus.Respond = (_, response) => LoopbackHost.Redirect(response, written);
        using var client = new NexusClient(OptionsFor(nexus));
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/repos/old/name", UriKind.Relative));

        using var response = await client.SendThroughBridgeAsync("conn_1", request, TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.Equal(written, response.Headers.Location!.OriginalString);
        Assert.Equal("/v1/bridge/conn_1/repos/old/name", Assert.Single(nexus.Requests).PathAndQuery);
        Assert.Empty(provider.Requests);
    }

    [Theory]
    [InlineData("POST", 301, "GET", "")]
    [InlineData("POST", 302, "GET", "")]
    [InlineData("PUT", 303, "GET", "")]
    [InlineData("PUT", 301, "PUT", "payload")]
    [InlineData("POST", 307, "POST", "payload")]
    [InlineData("PUT", 308, "PUT", "payload")]
    public async Task A_followed_Bridge_redirect_changes_the_method_as_fetch_does_and_keeps_the_body_only_when_the_method_is_kept(string method, int status,
        string landedMethod, string landedBody)
    {
        using var nexus = new LoopbackHost((request, response) =>
        {
            if (request.Url!.AbsolutePath == "/v1/bridge/conn_1/start")
            {
                LoopbackHost.Redirect(response, "/v1/bridge/conn_1/landed", (HttpStatusCode)status);
            }
            else
            {
                response.StatusCode = 200;
            }
        });
        using var client = new NexusClient(OptionsFor(nexus));
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri("/start", UriKind.Relative)) { Content = new StringContent("payload") };

        using var response = await client.SendThroughBridgeAsync("conn_1", request, TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var landed = nexus.Requests.Last();
        Assert.Equal(("/v1/bridge/conn_1/landed", landedMethod, landedBody), (landed.PathAndQuery, landed.Method, landed.Body));
        Assert.Equal(landedBody.Length > 0, landed.Headers.ContainsKey("content-type"));
        Assert.Equal(FakeNexus.ApiKey, landed.Headers["x-api-key"]);
    }

    [Fact]
    public async Task A_Bridge_redirect_that_keeps_a_streamed_body_which_cannot_be_sent_again_comes_back_as_the_3xx()
    {
        using var nexus = new LoopbackHost((_, response) => LoopbackHost.Redirect(response, "/v1/bridge/conn_1/elsewhere", HttpStatusCode.TemporaryRedirect));
        using var client = new NexusClient(OptionsFor(nexus));
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/upload", UriKind.Relative))
        {
            Content = new StreamContent(new MemoryStream("streamed"u8.ToArray())),
        };

        using var response = await client.SendThroughBridgeAsync("conn_1", request, TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.TemporaryRedirect, response.StatusCode);
        var sent = Assert.Single(nexus.Requests);
        Assert.Equal(("/v1/bridge/conn_1/upload", "streamed"), (sent.PathAndQuery, sent.Body));
    }

    [Fact]
    public async Task At_most_20_Bridge_redirects_are_followed_and_one_more_is_an_error_as_directly()
    {
        using var nexus = new LoopbackHost((request, response) =>
        {
            var path = request.Url!.AbsolutePath;
            var hop = int.Parse(path[(path.LastIndexOf('/') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            if (path.Contains("/loop/", StringComparison.Ordinal) || hop < 20)
            {
                LoopbackHost.Redirect(response, path[..(path.LastIndexOf('/') + 1)] + (hop + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                response.StatusCode = 200;
            }
        });
        using var client = new NexusClient(OptionsFor(nexus));

        using var twenty = await client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/hop/0", UriKind.Relative)),
            TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, twenty.StatusCode);
        Assert.Equal(21, nexus.Requests.Count);

        // As NexusCredentialHandler directly (and the Go, TypeScript and Python SDKs through the Bridge): the 21st throws.
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.SendThroughBridgeAsync("conn_1",
            new HttpRequestMessage(HttpMethod.Get, new Uri("/loop/0", UriKind.Relative)), TestContext.Current.CancellationToken));
        Assert.Equal(HttpRequestError.ConfigurationLimitExceeded, error.HttpRequestError);
        Assert.Equal(HttpStatusCode.Found, error.StatusCode);
        Assert.Equal(42, nexus.Requests.Count);
        Assert.Equal("/v1/bridge/conn_1/loop/20", nexus.Requests.Last().PathAndQuery);
    }

    [Theory]
    [InlineData("the client's options")]
    [InlineData("the request's option")]
    public async Task A_client_told_not_to_follow_hands_the_Bridge_redirect_back_and_its_Location_sent_back_is_used_as_it_is(string where)
    {
        using var nexus = new LoopbackHost((request, response) =>
        {
            if (request.Url!.AbsolutePath.EndsWith("/old", StringComparison.Ordinal))
            {
                LoopbackHost.Redirect(response, "/v1/bridge/conn_1/new?page=2", HttpStatusCode.MovedPermanently);
            }
            else
            {
                response.StatusCode = 200;
            }
        });
        var options = OptionsFor(nexus);
        options.FollowBridgeRedirects = where != "the client's options";
        using var client = new NexusClient(options);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/old", UriKind.Relative));
        if (where == "the request's option")
        {
            request.Options.Set(NexusClient.FollowBridgeRedirectsOption, false);
        }

        using var response = await client.SendThroughBridgeAsync("conn_1", request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.MovedPermanently, response.StatusCode);

        using var again = new HttpRequestMessage(HttpMethod.Get, new Uri(nexus.Url, response.Headers.Location!));
        using var followed = await client.SendThroughBridgeAsync("conn_1", again, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, followed.StatusCode);
        Assert.Equal(["/v1/bridge/conn_1/old", "/v1/bridge/conn_1/new?page=2"], nexus.Requests.Select(r => r.PathAndQuery));
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

    private const string ApiKeyToken = "\"api_key\":\"k-secret\"";

    /// <summary>A provider API key sent as X-Key: a header .NET's own redirect handling keeps on a redirect to another host.</summary>
    private static NexusClient ApiKeyClient() =>
        new(FakeNexus.Options(), TokenNexus(FakeNexus.Token("api_key", ApiKeyToken, null, ""","in":"header","name":"X-Key","prefix":null""")));

    /// <summary>A handler that passes every request on, so that the primary handler is one more step down.</summary>
    private sealed class PassOn : DelegatingHandler;

    /// <summary>
    /// An <see cref="HttpClient"/> whose <see cref="NexusCredentialHandler"/> (connection conn_1) sits over
    /// <paramref name="below"/>; the factory's client comes with the container that owns it.
    /// </summary>
    private static (HttpClient Http, IDisposable Owner) DirectClient(NexusClient client, string below)
    {
        if (below == "the IHttpClientFactory's default primary handler")
        {
            var services = new ServiceCollection();
            services.AddSingleton(client);
            services.AddHttpClient("provider").AddNexusCredentials("conn_1");
            var container = services.BuildServiceProvider();
            return (container.GetRequiredService<IHttpClientFactory>().CreateClient("provider"), container);
        }

        HttpMessageHandler primary = below switch
        {
            "a SocketsHttpHandler" => new SocketsHttpHandler(),
            "an HttpClientHandler" => new HttpClientHandler(),
            _ => new PassOn { InnerHandler = new SocketsHttpHandler() }, // "a DelegatingHandler over a SocketsHttpHandler"
        };
        var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = primary });
        return (http, http);
    }

    /// <summary>A provider whose /hop/N redirects to /hop/N+1 until N is <paramref name="last"/>, and whose /loop/N always redirects to /loop/N+1.</summary>
    private static LoopbackHost ChainProvider(int last) => new((request, response) =>
    {
        var path = request.Url!.AbsolutePath;
        var hop = int.Parse(path[(path.LastIndexOf('/') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        if (path.StartsWith("/loop/", StringComparison.Ordinal) || hop < last)
        {
            LoopbackHost.Redirect(response, path[..(path.LastIndexOf('/') + 1)] + (hop + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        else
        {
            response.StatusCode = 200;
        }
    });

    [Theory]
    [InlineData("a SocketsHttpHandler")]
    [InlineData("an HttpClientHandler")]
    [InlineData("a DelegatingHandler over a SocketsHttpHandler")]
    [InlineData("the IHttpClientFactory's default primary handler")]
    public async Task At_most_20_provider_redirects_are_followed_with_the_credential_and_one_more_is_an_error_as_in_the_other_SDKs(string below)
    {
        using var provider = ChainProvider(20);
        var (http, owner) = DirectClient(ApiKeyClient(), below);
        using var _ = owner;

        using var twenty = await http.GetAsync(new Uri(provider.Url, "hop/0"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, twenty.StatusCode);
        Assert.Equal(21, provider.Requests.Count);
        Assert.All(provider.Requests, r => Assert.Equal("k-secret", r.Headers["x-key"]));

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(new Uri(provider.Url, "loop/0"), TestContext.Current.CancellationToken));
        Assert.Equal(HttpRequestError.ConfigurationLimitExceeded, error.HttpRequestError);
        Assert.Equal(HttpStatusCode.Found, error.StatusCode);
        Assert.Contains("more than 20", error.Message, StringComparison.Ordinal);
        Assert.Equal(42, provider.Requests.Count); // /loop/0 and 20 redirects followed; the 21st is not
        Assert.Equal("/loop/20", provider.Requests.Last().PathAndQuery);
    }

    [Fact]
    public async Task A_primary_handler_set_to_follow_fewer_redirects_than_20_has_the_handler_follow_that_many()
    {
        using var provider = ChainProvider(3);
        using var http = new HttpClient(new NexusCredentialHandler(ApiKeyClient(), "conn_1") { InnerHandler = new SocketsHttpHandler { MaxAutomaticRedirections = 3 } });

        using var three = await http.GetAsync(new Uri(provider.Url, "hop/0"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, three.StatusCode);
        Assert.Equal(4, provider.Requests.Count);

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(new Uri(provider.Url, "loop/0"), TestContext.Current.CancellationToken));
        Assert.Contains("more than 3", error.Message, StringComparison.Ordinal);
        Assert.Equal(8, provider.Requests.Count);
    }

    [Theory]
    [InlineData("a SocketsHttpHandler", "straight there")]
    [InlineData("an HttpClientHandler", "straight there")]
    [InlineData("a DelegatingHandler over a SocketsHttpHandler", "straight there")]
    [InlineData("the IHttpClientFactory's default primary handler", "straight there")]
    [InlineData("a SocketsHttpHandler", "after a redirect on the provider's origin")]
    [InlineData("an HttpClientHandler", "after a redirect on the provider's origin")]
    [InlineData("a DelegatingHandler over a SocketsHttpHandler", "after a redirect on the provider's origin")]
    [InlineData("the IHttpClientFactory's default primary handler", "after a redirect on the provider's origin")]
    public async Task A_provider_redirect_to_another_origin_is_handed_back_whichever_handler_sits_below_and_the_credential_never_reaches_it(string below, string route)
    {
        // The other origin: the same loopback address on another port.
        using var other = new LoopbackHost((_, response) => response.StatusCode = 200);
        using var provider = new LoopbackHost((request, response) =>
        {
            if (route == "after a redirect on the provider's origin" && request.Url!.AbsolutePath == "/start")
            {
                LoopbackHost.Redirect(response, "/moved", HttpStatusCode.TemporaryRedirect);
            }
            else
            {
                LoopbackHost.Redirect(response, other.Url + "landing", HttpStatusCode.TemporaryRedirect);
            }
        });
        var (http, owner) = DirectClient(ApiKeyClient(), below);
        using var _ = owner;

        using var response = await http.GetAsync(new Uri(provider.Url, "start"), TestContext.Current.CancellationToken);

        Assert.Empty(other.Requests);
        Assert.Equal(HttpStatusCode.TemporaryRedirect, response.StatusCode);
        Assert.Equal(new Uri(other.Url + "landing"), response.Headers.Location);
        Assert.All(provider.Requests, r => Assert.Equal("k-secret", r.Headers["x-key"]));
        Assert.Equal(route == "straight there" ? 1 : 2, provider.Requests.Count);
    }

    /// <summary>
    /// A primary handler out of <see cref="NexusCredentialHandler"/>'s reach: it sends through a
    /// <see cref="SocketsHttpHandler"/> of its own that follows redirects, as .NET does by default.
    /// </summary>
    private sealed class FollowingOutOfSight : HttpMessageHandler
    {
        private readonly HttpMessageInvoker inner = new(new SocketsHttpHandler { AllowAutoRedirect = true });

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => inner.SendAsync(request, cancellationToken);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    [Fact]
    public async Task A_primary_handler_that_followed_a_redirect_to_another_origin_out_of_the_handlers_sight_fails_the_request_saying_so()
    {
        using var other = new LoopbackHost((_, response) => response.StatusCode = 200);
        using var provider = new LoopbackHost((_, response) => LoopbackHost.Redirect(response, other.Url + "landing"));
        using var http = new HttpClient(new NexusCredentialHandler(ApiKeyClient(), "conn_1") { InnerHandler = new FollowingOutOfSight() });

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => http.GetAsync(new Uri(provider.Url, "start"), TestContext.Current.CancellationToken));

        // The handler below followed the redirect before NexusCredentialHandler saw the answer: the error says so, without the secret.
        Assert.Single(other.Requests);
        Assert.Contains(other.Url.Authority, error.Message, StringComparison.Ordinal);
        Assert.Contains("does not follow redirects", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("k-secret", error.Message, StringComparison.Ordinal);
    }
}
