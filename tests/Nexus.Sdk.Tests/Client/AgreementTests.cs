using System.Globalization;
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
    public async Task Wait_until_active_ends_at_once_when_a_poll_is_answered_with_a_500()
    {
        var polls = 0;
        var fake = new FakeNexus
        {
            Respond = _ =>
            {
                Interlocked.Increment(ref polls);
                return Task.FromResult(FakeNexus.Problem(HttpStatusCode.InternalServerError, "internal_error"));
            },
        };
        // A minute to wait: polling through the 500 would show as a second poll.
        using var client = new NexusClient(NoRetries(new SteppingClock()), fake);

        // Exactly NexusException: not a NexusUnavailableException, nor the wait's TimeoutException.
        var error = await Assert.ThrowsAsync<NexusException>(() => client.WaitUntilActiveAsync("conn_1", TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken));
        Assert.Equal(HttpStatusCode.InternalServerError, error.StatusCode);
        Assert.Equal("internal_error", error.Code);
        Assert.Equal(1, polls);
    }

    [Fact]
    public async Task Wait_until_active_ends_at_once_when_a_poll_is_answered_with_a_502_of_a_permanent_code()
    {
        var polls = 0;
        var fake = new FakeNexus
        {
            Respond = _ =>
            {
                Interlocked.Increment(ref polls);
                return Task.FromResult(FakeNexus.Problem(HttpStatusCode.BadGateway, "token_request_failed", retryAfter: TimeSpan.Zero));
            },
        };
        // A minute to wait: polling through the refusal would show as a second poll.
        using var client = new NexusClient(NoRetries(new SteppingClock()), fake);

        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.WaitUntilActiveAsync("conn_1", TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken));
        Assert.Equal(HttpStatusCode.BadGateway, error.StatusCode);
        Assert.Equal("token_request_failed", error.Code);
        Assert.Equal(1, polls);
    }

    [Fact]
    public async Task Wait_until_active_keeps_polling_through_a_502_without_a_code_or_with_a_transient_one_and_through_reconnecting()
    {
        var polls = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(Interlocked.Increment(ref polls) switch
            {
                1 => FakeNexus.Problem(HttpStatusCode.BadGateway, "upstream_unreachable", retryAfter: TimeSpan.Zero),
                2 => FakeNexus.Json("<html>Bad Gateway</html>", HttpStatusCode.BadGateway, "text/html"),
                3 => FakeNexus.Problem(HttpStatusCode.GatewayTimeout, "upstream_timeout"),
                4 => FakeNexus.Json(Active.Replace("\"active\"", "\"active\",\"reconnecting\":true", StringComparison.Ordinal)),
                _ => FakeNexus.Json(Active),
            }),
        };
        using var client = new NexusClient(NoRetries(new SteppingClock()), fake);

        var connection = await client.WaitUntilActiveAsync("conn_1", TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken);
        Assert.True(connection.IsActive);
        Assert.Equal(5, polls);
    }

    [Theory]
    [InlineData("503 database_unavailable")]
    [InlineData("a proxy's 502 (no Nexus code)")]
    [InlineData("429")]
    [InlineData("no answer")]
    public async Task Cached_credentials_that_have_not_expired_are_served_when_their_fetch_fails_transiently(string failure)
    {
        var (fake, client, clock, expires) = CachedThen(() => failure switch
        {
            "503 database_unavailable" => FakeNexus.Problem(HttpStatusCode.ServiceUnavailable, "database_unavailable", retryAfter: TimeSpan.Zero),
            "a proxy's 502 (no Nexus code)" => FakeNexus.Json("<html>Bad Gateway</html>", HttpStatusCode.BadGateway, "text/html"),
            "429" => FakeNexus.Problem(HttpStatusCode.TooManyRequests, "rate_limited", retryAfter: TimeSpan.Zero),
            _ => throw new HttpRequestException("Connection reset by peer", null, null),
        });
        using var _ = client;
        var ct = TestContext.Current.CancellationToken;

        Assert.Equal("tok-1", (await client.GetCredentialsAsync("conn_1", ct)).AccessToken);
        Assert.Equal(2, fake.Count("/v1/token/"));
        clock.Advance(expires - clock.GetUtcNow() + TimeSpan.FromSeconds(1)); // expired: the failure is thrown
        var error = await Assert.ThrowsAnyAsync<Exception>(() => client.GetCredentialsAsync("conn_1", ct).AsTask());
        Assert.True(error is NexusRetryableException or HttpRequestException, error.ToString());
    }

    [Fact]
    public async Task Cached_credentials_are_not_served_when_their_fetch_is_answered_with_a_502_of_a_permanent_code()
    {
        // Due for a fetch, not expired: a transient failure would serve tok-1 (the test above).
        var (fake, client, _, _) = CachedThen(() => FakeNexus.Problem(HttpStatusCode.BadGateway, "token_request_failed"));
        using var _ = client;

        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(HttpStatusCode.BadGateway, error.StatusCode);
        Assert.Equal("token_request_failed", error.Code);
        Assert.Equal(2, fake.Count("/v1/token/"));
    }

    /// <summary>
    /// A client (no retries) holding a cached credential that expires in 10 minutes, its clock set 30 s before that
    /// (due for a fetch, not expired); the next fetches get <paramref name="failure"/>.
    /// </summary>
    private static (FakeNexus Fake, NexusClient Client, ManualClock Clock, DateTimeOffset Expires) CachedThen(Func<HttpResponseMessage> failure)
    {
        var start = new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
        var clock = new ManualClock(start);
        var expires = start.AddMinutes(10);
        var fetches = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(Interlocked.Increment(ref fetches) == 1
                ? FakeNexus.Json(FakeNexus.Token("oauth2", "\"access_token\":\"tok-1\"", expires.ToUnixTimeSeconds()))
                : failure()),
        };
        var client = new NexusClient(NoRetries(clock), fake);
        Assert.Equal("tok-1", client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask().GetAwaiter().GetResult().AccessToken);
        clock.Advance(TimeSpan.FromSeconds(570));
        return (fake, client, clock, expires);
    }

    [Fact]
    public async Task A_problem_without_a_code_takes_it_from_its_urn_nexus_problem_type()
    {
        static HttpResponseMessage Typed(HttpStatusCode status, string type, string extra = "") =>
            FakeNexus.Json($$"""{"type":"{{type}}","title":"t","status":{{(int)status}}{{extra}}}""", status, "application/problem+json");
        var fake = new FakeNexus
        {
            Respond = request => Task.FromResult(request.RequestUri!.AbsolutePath switch
            {
                "/v1/token/conn_attention" => FakeNexus.Json("""{"type":"urn:nexus:problem:connection_not_active","title":"t","status":"attention_required","connection_id":"conn_attention","error":"invalid_grant"}""",
                    HttpStatusCode.Conflict, "application/problem+json"),
                "/v1/token/conn_refused" => Typed(HttpStatusCode.BadGateway, "urn:nexus:problem:token_request_failed"),
                "/v1/token/conn_empty" => Typed(HttpStatusCode.BadRequest, "urn:nexus:problem:validation_failed", ""","code":"" """),
                "/v1/token/conn_both" => Typed(HttpStatusCode.BadRequest, "urn:nexus:problem:validation_failed", ""","code":"unknown_provider" """),
                "/v1/token/conn_url" => Typed(HttpStatusCode.BadRequest, "https://nexus.test/problems/validation_failed"),
                _ => Typed(HttpStatusCode.BadRequest, "about:blank"),
            }),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        var ct = TestContext.Current.CancellationToken;
        async Task<T> Fails<T>(string id) where T : Exception => await Assert.ThrowsAsync<T>(() => client.GetCredentialsAsync(id, ct).AsTask());

        var attention = await Fails<NexusAttentionRequiredException>("conn_attention");
        Assert.Equal(("connection_not_active", "invalid_grant"), (attention.Code, attention.Reason));
        var refused = await Fails<NexusUnavailableException>("conn_refused");
        Assert.Equal("token_request_failed", refused.Code);
        Assert.Equal(1, fake.Count("/v1/token/conn_refused")); // a refusal: not sent again
        Assert.Equal("validation_failed", (await Fails<NexusException>("conn_empty")).Code);
        Assert.Equal("unknown_provider", (await Fails<NexusException>("conn_both")).Code); // the code wins
        Assert.Null((await Fails<NexusException>("conn_url")).Code); // only the URN names a code
        Assert.Null((await Fails<NexusException>("conn_blank")).Code);
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

    // The retry policy (the README's "Retries"), with the default options: each test has the same sentence as its name
    // in the Go, TypeScript and Python suites.

    [Fact]
    public async Task A_500_internal_error_from_Nexus_is_not_retried()
    {
        using var nexus = new LoopbackHost((_, response) => ProblemAnswer(response, 500, "internal_error"));
        using var client = new NexusClient(DefaultRetries(nexus));
        var token = TestContext.Current.CancellationToken;

        var error = await Assert.ThrowsAsync<NexusException>(() => client.GetConnectionAsync("conn_1", token));
        Assert.Equal(HttpStatusCode.InternalServerError, error.StatusCode);
        Assert.Equal("internal_error", error.Code);
        Assert.Single(nexus.Requests);
        var bridged = await Assert.ThrowsAsync<NexusException>(() => client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/item", UriKind.Relative)), token));
        Assert.Equal("internal_error", bridged.Code);
        Assert.Equal(2, nexus.Requests.Count);
    }

    [Fact]
    public async Task A_503_with_Retry_After_1_is_retried_after_a_second_and_the_second_answer_wins()
    {
        var calls = 0;
        using var nexus = new LoopbackHost((_, response) =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                response.Headers["Retry-After"] = "1";
                ProblemAnswer(response, 503, "refresh_unavailable");
            }
            else
            {
                JsonAnswer(response, Active);
            }
        });
        using var client = new NexusClient(DefaultRetries(nexus));

        var started = TimeProvider.System.GetTimestamp();
        var connection = await client.GetConnectionAsync("conn_1", TestContext.Current.CancellationToken);
        Assert.True(connection.IsActive);
        Assert.Equal(2, nexus.Requests.Count);
        Assert.True(TimeProvider.System.GetElapsedTime(started) >= TimeSpan.FromSeconds(1), "retried before the Retry-After");
    }

    [Fact]
    public async Task A_third_transient_failure_gives_up_after_3_attempts_with_the_last_error()
    {
        // 502, 503, then 504 (per path): the last one is the error; no Retry-After, so the backoff (250 ms, then 500 ms,
        // jittered) applies.
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var nexus = new LoopbackHost((request, response) =>
        {
            switch (seen.AddOrUpdate(request.Url!.AbsolutePath, 1, (_, n) => n + 1))
            {
                case 1: ProblemAnswer(response, 502, "upstream_unreachable"); break;
                case 2: ProblemAnswer(response, 503, "database_unavailable"); break;
                default: ProblemAnswer(response, 504, "upstream_timeout"); break;
            }
        });
        using var client = new NexusClient(DefaultRetries(nexus));
        var token = TestContext.Current.CancellationToken;

        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.GetConnectionAsync("conn_1", token));
        Assert.Equal(HttpStatusCode.GatewayTimeout, error.StatusCode);
        Assert.Equal("upstream_timeout", error.Code);
        Assert.Equal(3, nexus.Requests.Count);
        var bridged = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/item", UriKind.Relative)), token));
        Assert.Equal("upstream_timeout", bridged.Code);
        Assert.Equal(6, nexus.Requests.Count);
    }

    [Fact]
    public async Task A_Retry_After_of_30_seconds_is_not_waited_for_the_error_comes_at_once_carrying_it()
    {
        using var nexus = new LoopbackHost((request, response) =>
        {
            if (request.Url!.AbsolutePath.StartsWith("/v1/bridge/", StringComparison.Ordinal))
            {
                // Through the Bridge, as an HTTP date.
                response.Headers["Retry-After"] = DateTimeOffset.UtcNow.AddSeconds(31).ToString("r", CultureInfo.InvariantCulture);
                ProblemAnswer(response, 429, "rate_limited");
            }
            else
            {
                response.Headers["Retry-After"] = "30";
                ProblemAnswer(response, 503, "refresh_unavailable");
            }
        });
        using var client = new NexusClient(DefaultRetries(nexus));
        var token = TestContext.Current.CancellationToken;
        var started = TimeProvider.System.GetTimestamp();

        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.GetConnectionAsync("conn_1", token));
        Assert.Equal(TimeSpan.FromSeconds(30), error.RetryAfter);
        Assert.Single(nexus.Requests);
        var bridged = await Assert.ThrowsAsync<NexusRateLimitedException>(() => client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/item", UriKind.Relative)), token));
        Assert.InRange(bridged.RetryAfter!.Value.TotalSeconds, 29, 31);
        Assert.Equal(2, nexus.Requests.Count);
        Assert.True(TimeProvider.System.GetElapsedTime(started) < TimeSpan.FromSeconds(5), "waited for the Retry-After");
    }

    [Fact]
    public async Task A_connection_that_fails_before_any_answer_is_retried_for_a_GET_through_the_Bridge_too_but_not_for_a_POST()
    {
        // Nexus refuses the connection when refuseNext is set (a ConnectCallback that fails once), and hangs up without
        // answering on a POST; every answer closes its connection, so that each request needs a connection of its own.
        var refuseNext = false;
        var connects = 0;
        using var nexus = new HangingUpHost((method, path) =>
            method == "POST" ? null : path.StartsWith("/v1/bridge/", StringComparison.Ordinal) ? """{"provider":"answer"}""" : Active);
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                Interlocked.Increment(ref connects);
                if (refuseNext)
                {
                    refuseNext = false;
                    throw new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.ConnectionRefused);
                }

                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        };
        using var client = new NexusClient(new NexusClientOptions { BaseUrl = nexus.Url, ApiKey = FakeNexus.ApiKey }, handler);
        var token = TestContext.Current.CancellationToken;

        refuseNext = true;
        Assert.True((await client.GetConnectionAsync("conn_1", token)).IsActive);
        Assert.Equal((2, 1), (connects, nexus.Sent("GET", "/v1/connections/conn_1")));
        refuseNext = true;
        using var bridged = await client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/item", UriKind.Relative)), token);
        Assert.Equal(HttpStatusCode.OK, bridged.StatusCode);
        Assert.Contains("answer", await bridged.Content.ReadAsStringAsync(token), StringComparison.Ordinal);
        Assert.Equal((4, 1), (connects, nexus.Sent("GET", "/v1/bridge/conn_1/item")));

        refuseNext = true;
        await Assert.ThrowsAsync<HttpRequestException>(() => client.RefreshAsync("conn_1", token));
        refuseNext = true;
        await Assert.ThrowsAsync<HttpRequestException>(() => client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Post, new Uri("/item", UriKind.Relative)), token));
        Assert.Equal(6, connects);
        // Hung up on after it was sent, a POST without content is not sent again either, not even by SocketsHttpHandler,
        // which would send a request without content again up to 3 times (the SDK gives it an empty one).
        await Assert.ThrowsAsync<HttpRequestException>(() => client.RefreshAsync("conn_1", token));
        Assert.Equal(1, nexus.Sent("POST", "/v1/refresh/conn_1"));
        await Assert.ThrowsAsync<HttpRequestException>(() => client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Post, new Uri("/item", UriKind.Relative)), token));
        Assert.Equal(1, nexus.Sent("POST", "/v1/bridge/conn_1/item"));
    }

    [Fact]
    public async Task A_call_that_times_out_is_not_retried()
    {
        // No answer until the call is given up (the handler's token is cancelled then).
        var fake = new FakeNexus
        {
            RespondAsync = async (_, cancellationToken) =>
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
                return FakeNexus.Json(Active);
            },
        };
        var options = new NexusClientOptions { BaseUrl = new Uri("http://nexus.test"), ApiKey = FakeNexus.ApiKey, Timeout = TimeSpan.FromMilliseconds(200) };
        using var client = new NexusClient(options, fake);

        // The client's timeout of one call.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetConnectionAsync("conn_1", TestContext.Current.CancellationToken));
        Assert.Single(fake.Requests);
        // The caller's deadline.
        options.Timeout = TimeSpan.FromSeconds(30);
        using var patient = new NexusClient(options, fake);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => patient.GetConnectionAsync("conn_1", deadline.Token));
        Assert.Equal(2, fake.Requests.Count);
    }

    /// <summary>The default retry options (3 attempts, 250 ms then 500 ms, Retry-After up to 10 s) against <paramref name="nexus"/>.</summary>
    private static NexusClientOptions DefaultRetries(LoopbackHost nexus) => new() { BaseUrl = nexus.Url, ApiKey = FakeNexus.ApiKey };

    private static void ProblemAnswer(HttpListenerResponse response, int status, string code)
    {
        response.StatusCode = status;
        Answer(response, "application/problem+json", $$"""{"type":"urn:nexus:problem:{{code}}","title":"t","status":{{status}},"code":"{{code}}"}""");
    }

    private static void JsonAnswer(HttpListenerResponse response, string json) => Answer(response, "application/json", json);

    private static void Answer(HttpListenerResponse response, string contentType, string text)
    {
        var body = System.Text.Encoding.UTF8.GetBytes(text);
        response.ContentType = contentType;
        response.ContentLength64 = body.Length;
        response.OutputStream.Write(body);
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

    /// <summary>
    /// A loopback HTTP/1.1 server that can hang up on a request: for each one (read whole) <c>answer(method, path)</c>
    /// gives the JSON of a 200, or null to close the connection without answering (HttpListener cannot: its Abort sends
    /// an empty 200). Every answer closes its connection.
    /// </summary>
    private sealed class HangingUpHost : IDisposable
    {
        private readonly System.Net.Sockets.TcpListener listener = new(IPAddress.Loopback, 0);
        private readonly Func<string, string, string?> answer;
        private readonly System.Collections.Concurrent.ConcurrentQueue<(string Method, string Path)> requests = new();
        private readonly Task loop;

        public HangingUpHost(Func<string, string, string?> answer)
        {
            this.answer = answer;
            listener.Start();
            Url = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/");
            loop = ServeAsync();
        }

        public Uri Url { get; }

        public int Sent(string method, string path) => requests.Count(r => r.Method == method && r.Path == path);

        private async Task ServeAsync()
        {
            while (true)
            {
                System.Net.Sockets.TcpClient connection;
                try
                {
                    connection = await listener.AcceptTcpClientAsync().ConfigureAwait(false);
                }
                catch (Exception e) when (e is System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException)
                {
                    return; // stopped
                }

                using (connection)
                {
                    var stream = connection.GetStream();
                    var reader = new StreamReader(stream, System.Text.Encoding.ASCII, false, 1, leaveOpen: true);
                    var start = (await reader.ReadLineAsync().ConfigureAwait(false) ?? "").Split(' ');
                    var length = 0;
                    for (var line = await reader.ReadLineAsync().ConfigureAwait(false); !string.IsNullOrEmpty(line); line = await reader.ReadLineAsync().ConfigureAwait(false))
                    {
                        if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                        {
                            length = int.Parse(line["Content-Length:".Length..].Trim(), CultureInfo.InvariantCulture);
                        }
                    }

                    if (length > 0)
                    {
                        await reader.ReadBlockAsync(new char[length], 0, length).ConfigureAwait(false); // (with 0, it would wait for more)
                    }

                    requests.Enqueue((start[0], start.Length > 1 ? start[1] : ""));
                    if (answer(start[0], start.Length > 1 ? start[1] : "") is { } json)
                    {
                        var bytes = System.Text.Encoding.UTF8.GetBytes(json);
                        var head = System.Text.Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n");
                        await stream.WriteAsync(head).ConfigureAwait(false);
                        await stream.WriteAsync(bytes).ConfigureAwait(false);
                    }
                }
            }
        }

        public void Dispose()
        {
            listener.Stop();
            loop.Wait(TimeSpan.FromSeconds(5));
        }
    }

    /// <summary>A clock that moves one second each time it is read (its timers are real, and short: the poll interval).</summary>
    private sealed class SteppingClock : TimeProvider
    {
        private long seconds;

        public override DateTimeOffset GetUtcNow() => DateTimeOffset.UnixEpoch.AddSeconds(1_700_000_000 + Interlocked.Increment(ref seconds));
    }
}
