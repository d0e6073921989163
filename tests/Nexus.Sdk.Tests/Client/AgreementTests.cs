using System.Net;

namespace Nexus.Sdk.Tests.Client;

/// <summary>
/// The cases the four SDKs classify alike (the README's "Same answer, same error" table); each test has the same
/// sentence as its name in the Go, TypeScript and Python suites.
/// </summary>
public sealed class AgreementTests
{
    private const string Pending = """{"connection_id":"conn_1","status":"pending","provider":"p","workspace_id":"w","scopes":["a"],"created_at":1,"updated_at":2,"expires_at":3}""";
    private static readonly string Active = Pending.Replace("\"pending\"", "\"active\"", StringComparison.Ordinal);

    [Fact]
    public async Task Aws_sts_throttled_is_unavailable_not_rate_limited_and_carries_Retry_After()
    {
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(FakeNexus.Problem(HttpStatusCode.ServiceUnavailable, "aws_sts_throttled", ""","status":503,"retry_after":5""", TimeSpan.FromSeconds(5))),
        };
        var options = FakeNexus.Options();
        options.MaxRetries = 0;
        using var client = new NexusClient(options, fake);

        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask());
        Assert.IsNotType<NexusRateLimitedException>(error);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, error.StatusCode);
        Assert.Equal("aws_sts_throttled", error.Code);
        Assert.Equal(TimeSpan.FromSeconds(5), error.RetryAfter);
    }

    [Fact]
    public async Task Connection_failed_is_not_active_with_status_failed_and_the_connection_id()
    {
        // What Nexus sends: the catalog's problem, with RFC 9457's numeric status and no connection id.
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Problem(HttpStatusCode.Conflict, "connection_failed", ""","status":409""")) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var error = await Assert.ThrowsAsync<NexusConnectionNotActiveException>(() => client.SubmitCredentialsAsync("conn_9",
            new Dictionary<string, string> { ["api_key"] = "k" }, TestContext.Current.CancellationToken));
        Assert.Equal(ConnectionStatuses.Failed, error.Status);
        Assert.Equal("conn_9", error.ConnectionId);
        Assert.Equal("connection_failed", error.Code);
        Assert.Equal(HttpStatusCode.Conflict, error.StatusCode);
        Assert.Contains("conn_9 is failed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_provider_401_whose_forced_refresh_is_unavailable_fails_with_the_unavailable_error()
    {
        var fake = NexusAndRejectingProvider(() => FakeNexus.Problem(HttpStatusCode.ServiceUnavailable, "refresh_unavailable", ""","connection_id":"conn_1" """, TimeSpan.FromSeconds(7)));
        using var client = new NexusClient(FakeNexus.Options(), fake);
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = fake });

        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => http.GetAsync(new Uri("https://api.example/me"), TestContext.Current.CancellationToken));
        Assert.Equal("refresh_unavailable", error.Code);
        Assert.Equal(TimeSpan.FromSeconds(7), error.RetryAfter);
        Assert.Equal(1, fake.Count("/me"));
        Assert.Equal(1, fake.Count("/v1/refresh/"));
    }

    [Fact]
    public async Task A_provider_401_on_a_connection_with_nothing_to_refresh_returns_the_providers_401()
    {
        var fake = NexusAndRejectingProvider(() => FakeNexus.Problem(HttpStatusCode.Conflict, "refresh_not_supported", ""","connection_id":"conn_1","status":"active" """));
        using var client = new NexusClient(FakeNexus.Options(), fake);
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = fake });

        using var response = await http.GetAsync(new Uri("https://api.example/me"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(1, fake.Count("/v1/refresh/"));
        // No read after the refusal, and no second request.
        Assert.Equal(1, fake.Count("/v1/token/"));
        Assert.Equal(1, fake.Count("/me"));
    }

    [Theory]
    [InlineData("oauth2", "\"access_token\":\"at-same\"", "", 1)]
    [InlineData("api_key", "\"api_key\":\"k-same\"", ",\"in\":\"header\",\"name\":\"X-Key\"", 0)]
    public async Task A_provider_401_is_not_retried_when_Nexus_hands_back_the_same_credential(string type, string credentials, string strategy, int refreshes)
    {
        // An OAuth 2.0 token that the forced refresh left as it was, and an API key that was not captured anew.
        var fake = new FakeNexus
        {
            Respond = request => Task.FromResult(request.RequestUri!.AbsolutePath switch
            {
                var p when p.StartsWith("/v1/token/", StringComparison.Ordinal) => FakeNexus.Json(FakeNexus.Token(type, credentials, null, strategy)),
                var p when p.StartsWith("/v1/refresh/", StringComparison.Ordinal) => FakeNexus.Json(Active),
                _ => new HttpResponseMessage(HttpStatusCode.Unauthorized),
            }),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = fake });

        using var response = await http.GetAsync(new Uri("https://api.example/me"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(1, fake.Count("/me"));
        Assert.Equal(2, fake.Count("/v1/token/"));
        Assert.Equal(refreshes, fake.Count("/v1/refresh/"));
    }

    [Fact]
    public async Task Wait_until_active_keeps_polling_through_a_transient_error_until_the_connection_is_active()
    {
        var polls = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(Interlocked.Increment(ref polls) switch
            {
                1 => FakeNexus.Problem(HttpStatusCode.ServiceUnavailable, "database_unavailable", retryAfter: TimeSpan.Zero),
                2 => FakeNexus.Problem(HttpStatusCode.TooManyRequests, "rate_limited"),
                _ => FakeNexus.Json(Active),
            }),
        };
        using var client = new NexusClient(NoRetries(new SteppingClock()), fake);

        var connection = await client.WaitUntilActiveAsync("conn_1", TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken);
        Assert.True(connection.IsActive);
        Assert.Equal(3, polls);
    }

    [Fact]
    public async Task Wait_until_active_raises_the_last_transient_error_when_the_deadline_passes()
    {
        var polls = 0;
        var fake = new FakeNexus
        {
            Respond = _ =>
            {
                Interlocked.Increment(ref polls);
                return Task.FromResult(FakeNexus.Problem(HttpStatusCode.ServiceUnavailable, "database_unavailable", retryAfter: TimeSpan.Zero));
            },
        };
        // The clock moves 1 s a read: a 3.5 s wait ends after a few polls.
        using var client = new NexusClient(NoRetries(new SteppingClock()), fake);

        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.WaitUntilActiveAsync("conn_1", TimeSpan.FromSeconds(3.5), TestContext.Current.CancellationToken));
        Assert.Equal("database_unavailable", error.Code);
        Assert.True(polls >= 2, $"gave up after {polls} polls");
    }

    [Fact]
    public async Task A_transient_Nexus_problem_through_the_Bridge_is_retried_for_an_idempotent_method_but_not_for_a_POST_a_providers_503_or_a_long_Retry_After()
    {
        // Nexus's Bridge: /flaky answers 429 (Nexus's rate limit), then 503 database_unavailable, then the provider's
        // 200; /refused and /later always answer 503 refresh_unavailable (Retry-After 0 and 3600); /provider is the
        // provider's own 503 problem, which the Bridge passes on.
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var nexus = new LoopbackHost((request, response) =>
        {
            var name = request.Url!.AbsolutePath.Split('/')[^1];
            var count = seen.AddOrUpdate(name, 1, (_, n) => n + 1);
            void Problem(int status, string type, string retryAfter)
            {
                response.StatusCode = status;
                response.ContentType = "application/problem+json";
                if (retryAfter.Length > 0)
                {
                    response.Headers["Retry-After"] = retryAfter;
                }

                var body = System.Text.Encoding.UTF8.GetBytes($$"""{"type":"{{type}}","title":"t","status":{{status}},"code":"{{type.Split(':')[^1]}}"}""");
                response.OutputStream.Write(body);
            }

            switch (name, count)
            {
                case ("flaky", 1): Problem(429, "urn:nexus:problem:rate_limited", "0"); break;
                case ("flaky", 2): Problem(503, "urn:nexus:problem:database_unavailable", "0"); break;
                case ("refused", _): Problem(503, "urn:nexus:problem:refresh_unavailable", "0"); break;
                case ("later", _): Problem(503, "urn:nexus:problem:refresh_unavailable", "3600"); break;
                case ("provider", _): Problem(503, "https://api.provider.test/problems/maintenance", "0"); break;
                default: response.StatusCode = 200; break;
            }
        });
        var options = FakeNexus.Options();
        options.BaseUrl = nexus.Url;
        using var client = new NexusClient(options);
        var token = TestContext.Current.CancellationToken;
        int Sent(string name) => nexus.Requests.Count(r => r.PathAndQuery.EndsWith("/" + name, StringComparison.Ordinal));

        using var put = new HttpRequestMessage(HttpMethod.Put, new Uri("/flaky", UriKind.Relative)) { Content = new StringContent("""{"a":1}""") };
        using var flaky = await client.SendThroughBridgeAsync("conn_1", put, token);
        Assert.Equal(HttpStatusCode.OK, flaky.StatusCode);
        Assert.Equal(3, Sent("flaky"));
        Assert.All(nexus.Requests, r => Assert.Equal("""{"a":1}""", r.Body)); // the body, sent again each time

        using var post = new HttpRequestMessage(HttpMethod.Post, new Uri("/refused", UriKind.Relative)) { Content = new StringContent("{}") };
        var refused = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.SendThroughBridgeAsync("conn_1", post, token));
        Assert.Equal("refresh_unavailable", refused.Code);
        Assert.Equal(1, Sent("refused"));

        using var provider = await client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/provider", UriKind.Relative)), token);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, provider.StatusCode);
        Assert.Contains("maintenance", await provider.Content.ReadAsStringAsync(token), StringComparison.Ordinal);
        Assert.Equal(1, Sent("provider"));

        var later = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/later", UriKind.Relative)), token));
        Assert.Equal(TimeSpan.FromHours(1), later.RetryAfter);
        Assert.Equal(1, Sent("later"));
    }

    [Fact]
    public async Task A_21st_redirect_through_the_Bridge_is_an_error_as_it_is_directly()
    {
        using var elsewhere = new LoopbackHost((_, response) => response.StatusCode = 200);
        // The Bridge's /v1/bridge/conn_1/{chain}/N redirects to .../N+1 on the Bridge: "twenty" up to 20, "endless"
        // always, "leaving" up to 20 and then off the Bridge.
        using var nexus = new LoopbackHost((request, response) =>
        {
            var segments = request.Url!.AbsolutePath.Split('/');
            var (chain, hop) = (segments[^2], int.Parse(segments[^1], System.Globalization.CultureInfo.InvariantCulture));
            if (chain == "endless" || hop < 20)
            {
                LoopbackHost.Redirect(response, $"/v1/bridge/conn_1/{chain}/{hop + 1}");
            }
            else if (chain == "leaving")
            {
                LoopbackHost.Redirect(response, elsewhere.Url + "away");
            }
            else
            {
                response.StatusCode = 200;
            }
        });
        var options = FakeNexus.Options();
        options.BaseUrl = nexus.Url;
        using var client = new NexusClient(options);
        HttpRequestMessage Start(string chain) => new(HttpMethod.Get, new Uri($"/{chain}/0", UriKind.Relative));

        using var twenty = await client.SendThroughBridgeAsync("conn_1", Start("twenty"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, twenty.StatusCode);
        Assert.Equal(21, nexus.Requests.Count);

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.SendThroughBridgeAsync("conn_1", Start("endless"), TestContext.Current.CancellationToken));
        Assert.Equal(HttpRequestError.ConfigurationLimitExceeded, error.HttpRequestError);
        Assert.Equal(HttpStatusCode.Found, error.StatusCode);
        Assert.Contains("more than 20", error.Message, StringComparison.Ordinal);
        Assert.Equal(42, nexus.Requests.Count); // /endless/0 and 20 redirects followed; the 21st is not
        Assert.Equal("/v1/bridge/conn_1/endless/20", nexus.Requests.Last().PathAndQuery);

        // Where the Bridge's redirect goes is asked before how many there were: a 21st off the Bridge comes back.
        using var leaving = await client.SendThroughBridgeAsync("conn_1", Start("leaving"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Found, leaving.StatusCode);
        Assert.Equal(new Uri(elsewhere.Url + "away"), leaving.Headers.Location);
        Assert.Equal(63, nexus.Requests.Count);
        Assert.Empty(elsewhere.Requests);
    }

    [Fact]
    public async Task A_21st_redirect_to_another_origin_comes_back_as_the_3xx_directly()
    {
        using var elsewhere = new LoopbackHost((_, response) => response.StatusCode = 200);
        // The provider's /{chain}/N redirects to /{chain}/N+1 on its own origin: "twenty" up to 20, "endless" always,
        // "leaving" up to 20 and then to another origin.
        using var provider = new LoopbackHost((request, response) =>
        {
            var segments = request.Url!.AbsolutePath.Split('/');
            var (chain, hop) = (segments[^2], int.Parse(segments[^1], System.Globalization.CultureInfo.InvariantCulture));
            if (chain == "endless" || hop < 20)
            {
                LoopbackHost.Redirect(response, $"/{chain}/{hop + 1}");
            }
            else if (chain == "leaving")
            {
                LoopbackHost.Redirect(response, elsewhere.Url + "away");
            }
            else
            {
                response.StatusCode = 200;
            }
        });
        var token = FakeNexus.Token("oauth2", "\"access_token\":\"at-1\"", null);
        using var client = new NexusClient(FakeNexus.Options(), new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Json(token)) });
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = new SocketsHttpHandler() });

        using var twenty = await http.GetAsync(new Uri(provider.Url, "twenty/0"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, twenty.StatusCode);
        Assert.Equal(21, provider.Requests.Count);
        Assert.All(provider.Requests, r => Assert.Equal("Bearer at-1", r.Headers["authorization"]));

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(new Uri(provider.Url, "endless/0"), TestContext.Current.CancellationToken));
        Assert.Equal(HttpRequestError.ConfigurationLimitExceeded, error.HttpRequestError);
        Assert.Contains("more than 20", error.Message, StringComparison.Ordinal);
        Assert.Equal(42, provider.Requests.Count); // /endless/0 and 20 redirects followed; the 21st is not

        // Where the redirect goes is asked before how many there were: a 21st to another origin comes back, not an error.
        using var leaving = await http.GetAsync(new Uri(provider.Url, "leaving/0"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Found, leaving.StatusCode);
        Assert.Equal(new Uri(elsewhere.Url + "away"), leaving.Headers.Location);
        Assert.Equal(63, provider.Requests.Count);
        Assert.Empty(elsewhere.Requests);
    }

    private static NexusClientOptions NoRetries(TimeProvider time)
    {
        var options = FakeNexus.Options(time);
        options.MaxRetries = 0;
        return options;
    }

    /// <summary>Nexus with a bearer token and <paramref name="refresh"/> for POST /v1/refresh, and a provider at api.example that answers 401 to everything.</summary>
    private static FakeNexus NexusAndRejectingProvider(Func<HttpResponseMessage> refresh) => new()
    {
        Respond = request => Task.FromResult(request.RequestUri!.AbsolutePath switch
        {
            var p when p.StartsWith("/v1/token/", StringComparison.Ordinal) => FakeNexus.Json(FakeNexus.Token("oauth2", """ "access_token":"at-1" """, null)),
            var p when p.StartsWith("/v1/refresh/", StringComparison.Ordinal) => refresh(),
            _ => new HttpResponseMessage(HttpStatusCode.Unauthorized),
        }),
    };

    /// <summary>A clock that moves one second each time it is read (its timers are real, and short: the poll interval).</summary>
    private sealed class SteppingClock : TimeProvider
    {
        private long seconds;

        public override DateTimeOffset GetUtcNow() => DateTimeOffset.UnixEpoch.AddSeconds(1_700_000_000 + Interlocked.Increment(ref seconds));
    }
}
