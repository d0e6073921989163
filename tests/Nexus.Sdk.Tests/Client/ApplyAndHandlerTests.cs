using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;

namespace Nexus.Sdk.Tests.Client;

public sealed class ApplyAndHandlerTests
{
    private const string Secret = "s3cr3t-value-never-shown";

    private static NexusCredential Credential(string type, string credentials, string strategyExtra = "") =>
        NexusCredential.Parse("conn_1", System.Text.Json.JsonDocument.Parse(FakeNexus.Token(type, credentials, null, strategyExtra)).RootElement);

    [Fact]
    public async Task Each_strategy_is_applied_as_its_token_response_says()
    {
        var ct = TestContext.Current.CancellationToken;
        using var bearer = new HttpRequestMessage(HttpMethod.Get, "https://api.example/v1/me");
        await Credential("oauth2", $"\"access_token\":\"{Secret}\"").ApplyAsync(bearer, cancellationToken: ct);
        Assert.Equal("Bearer " + Secret, bearer.Headers.GetValues("Authorization").Single());

        using var header = new HttpRequestMessage(HttpMethod.Get, "https://api.example/v1/me");
        await Credential("api_key", $"\"api_key\":\"{Secret}\"", ""","in":"header","name":"X-Api-Key","prefix":"Token " """).ApplyAsync(header, cancellationToken: ct);
        Assert.Equal("Token " + Secret, header.Headers.GetValues("X-Api-Key").Single());

        using var query = new HttpRequestMessage(HttpMethod.Get, "https://api.example/v1/me?key=old&page=2#top");
        await Credential("api_key", "\"api_key\":\"a b&c\"", ""","in":"query","name":"key","prefix":"scn:" """).ApplyAsync(query, cancellationToken: ct);
        Assert.Equal("https://api.example/v1/me?page=2&key=scn%3Aa%20b%26c#top", query.RequestUri!.AbsoluteUri);

        using var basic = new HttpRequestMessage(HttpMethod.Get, "https://api.example/v1/me");
        await Credential("basic_auth", "\"username\":\"ada\",\"password\":\"p:w\"").ApplyAsync(basic, cancellationToken: ct);
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("ada:p:w")), basic.Headers.GetValues("Authorization").Single());

        using var aws = new HttpRequestMessage(HttpMethod.Post, "https://abc.execute-api.eu-west-1.amazonaws.com/prod/items") { Content = new StringContent("{}") };
        var time = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await Credential("aws_sigv4", "\"access_key_id\":\"AKIDEXAMPLE\",\"secret_access_key\":\"wJalr\",\"session_token\":\"tok\"",
            ""","region":"eu-west-1","service":"execute-api" """).ApplyAsync(aws, time, ct);
        var authorization = aws.Headers.GetValues("Authorization").Single();
        Assert.StartsWith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-1/execute-api/aws4_request", authorization, StringComparison.Ordinal);
        Assert.Contains("x-amz-security-token", authorization, StringComparison.Ordinal);
        Assert.Equal("tok", aws.Headers.GetValues("X-Amz-Security-Token").Single());
        Assert.Equal("20260101T000000Z", aws.Headers.GetValues("X-Amz-Date").Single());
    }

    [Fact]
    public async Task Applying_again_replaces_what_the_first_application_set()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://api.example/x?key=1");
        var strategy = ""","in":"query","name":"key","prefix":null""";
        await Credential("api_key", "\"api_key\":\"first\"", strategy).ApplyAsync(request, cancellationToken: TestContext.Current.CancellationToken);
        await Credential("api_key", "\"api_key\":\"second\"", strategy).ApplyAsync(request, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal("https://api.example/x?key=second", request.RequestUri!.AbsoluteUri);
    }

    [Fact]
    public void No_secret_appears_in_ToString_of_a_credential_options_or_a_requested_connection()
    {
        var credential = Credential("basic_auth", $"\"username\":\"ada\",\"password\":\"{Secret}\"");
        Assert.DoesNotContain(Secret, credential.ToString(), StringComparison.Ordinal);
        Assert.Contains("basic_auth", credential.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, Credential("aws_sigv4", $"\"access_key_id\":\"AKID\",\"secret_access_key\":\"{Secret}\",\"session_token\":\"{Secret}\"",
            ""","region":"eu-west-1","service":"s3" """).Aws!.ToString(), StringComparison.Ordinal);
        var options = FakeNexus.Options();
        Assert.DoesNotContain(FakeNexus.ApiKey, options.ToString(), StringComparison.Ordinal);
        var requested = new RequestedConnection("conn_1", new Uri($"https://idp.example/authorize?state={Secret}"));
        Assert.DoesNotContain(Secret, requested.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void No_API_key_appears_in_the_JSON_of_options_which_keeps_the_other_settings()
    {
        var options = FakeNexus.Options();
        var json = System.Text.Json.JsonSerializer.Serialize(options);
        Assert.DoesNotContain(FakeNexus.ApiKey, json, StringComparison.Ordinal);
        Assert.Contains("\"ApiKey\":\"[redacted]\"", json, StringComparison.Ordinal);
        Assert.Contains("\"BaseUrl\":\"http://nexus.test\"", json, StringComparison.Ordinal);
        Assert.Contains("\"MaxRetries\":2", json, StringComparison.Ordinal);
        var camel = System.Text.Json.JsonSerializer.Serialize(new { options }, System.Text.Json.JsonSerializerOptions.Web);
        Assert.DoesNotContain(FakeNexus.ApiKey, camel, StringComparison.Ordinal);
        Assert.Contains("\"apiKey\":\"[redacted]\"", camel, StringComparison.Ordinal);
        Assert.Contains("\"apiKey\":null", System.Text.Json.JsonSerializer.Serialize(new NexusClientOptions(), System.Text.Json.JsonSerializerOptions.Web),
            StringComparison.Ordinal);
        Assert.Equal("NexusClientOptions { BaseUrl = http://nexus.test/, ApiKey = *** }", options.ToString());
    }

    [Fact]
    public void Options_read_from_JSON_keep_their_API_key_but_a_redacted_one_is_refused()
    {
        Assert.Equal("nxk_1", System.Text.Json.JsonSerializer.Deserialize<NexusClientOptions>("""{"BaseUrl":"http://nexus.test","ApiKey":"nxk_1"}""")!.ApiKey);
        Assert.Throws<System.Text.Json.JsonException>(() => System.Text.Json.JsonSerializer.Deserialize<NexusClientOptions>("""{"ApiKey":"[redacted]"}"""));
    }

    [Theory]
    [InlineData("oauth2", "\"access_token\":\"SECRET\"", "")]
    [InlineData("api_key", "\"api_key\":\"SECRET\"", ",\"in\":\"header\",\"name\":\"X-Key\"")]
    [InlineData("basic_auth", "\"username\":\"ada\",\"password\":\"SECRET\"", "")]
    [InlineData("aws_sigv4", "\"access_key_id\":\"AKID\",\"secret_access_key\":\"SECRET\",\"session_token\":\"SECRET\"", ",\"region\":\"eu-west-1\",\"service\":\"s3\"")]
    public void No_secret_appears_in_the_JSON_of_a_credential(string type, string fields, string strategy)
    {
        var credential = Credential(type, fields.Replace("SECRET", Secret, StringComparison.Ordinal), strategy);
        var json = System.Text.Json.JsonSerializer.Serialize(credential);
        Assert.DoesNotContain(Secret, json, StringComparison.Ordinal);
        Assert.Contains(type, json, StringComparison.Ordinal);
        Assert.Contains("[redacted]", json, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, System.Text.Json.JsonSerializer.Serialize(new { credential, credential.Aws }), StringComparison.Ordinal);
        if (credential.Aws is { } aws)
        {
            var awsJson = System.Text.Json.JsonSerializer.Serialize(aws);
            Assert.DoesNotContain(Secret, awsJson, StringComparison.Ordinal);
            Assert.Contains("AKID", awsJson, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task No_secret_appears_in_an_error_message_even_when_the_answer_echoes_one()
    {
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(FakeNexus.Json($$"""{"access_token":"{{Secret}}","key":"{{FakeNexus.ApiKey}}"}""", HttpStatusCode.InternalServerError, "text/plain")),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        var error = await Assert.ThrowsAnyAsync<NexusException>(() => client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask());
        Assert.DoesNotContain(Secret, error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(FakeNexus.ApiKey, error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>Nexus and a provider behind one fake transport: /v1/* is Nexus, anything else the provider.</summary>
    private static (FakeNexus Fake, Func<int> Refreshes) NexusAndProvider(Func<string?, HttpStatusCode> provider, bool refreshRejected = false)
    {
        var generation = 1;
        var refreshes = 0;
        var fake = new FakeNexus();
        fake.Respond = request => Task.FromResult(request.RequestUri!.AbsolutePath switch
        {
            var p when p.StartsWith("/v1/token/", StringComparison.Ordinal) =>
                FakeNexus.Json(FakeNexus.Token("oauth2", $"\"access_token\":\"at-{Volatile.Read(ref generation)}\"", null)),
            var p when p.StartsWith("/v1/refresh/", StringComparison.Ordinal) => refreshRejected
                ? FakeNexus.Problem(HttpStatusCode.Conflict, "connection_not_active", ""","status":"attention_required","connection_id":"conn_1","error":"invalid_grant" """)
                : Refreshed(),
            _ => new HttpResponseMessage(provider(request.Headers.Authorization?.ToString())),
        });
        return (fake, () => refreshes);

        HttpResponseMessage Refreshed()
        {
            Interlocked.Increment(ref refreshes);
            Interlocked.Increment(ref generation);
            return FakeNexus.Json("""{"connection_id":"conn_1","status":"active","provider":"p","workspace_id":"w","scopes":[],"created_at":1,"updated_at":2}""");
        }
    }

    [Fact]
    public async Task The_handler_refreshes_once_after_a_provider_401_and_retries_a_replayable_request()
    {
        var (fake, refreshes) = NexusAndProvider(auth => auth == "Bearer at-2" ? HttpStatusCode.OK : HttpStatusCode.Unauthorized);
        using var client = new NexusClient(FakeNexus.Options(), fake);
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = fake });

        using var response = await http.PostAsync(new Uri("https://api.example/items"), new StringContent("{}"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, refreshes());
        Assert.Equal(["Bearer at-1", "Bearer at-2"], fake.Requests.Where(r => r.Uri.StartsWith("https://api.example", StringComparison.Ordinal)).Select(r => r.Authorization));
    }

    [Fact]
    public async Task Fifty_requests_refused_at_the_same_moment_share_one_forced_refresh()
    {
        const int Requests = 50;
        var generation = 1;
        var refused = 0;
        var allRefused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fake = new FakeNexus();
        fake.Respond = async request =>
        {
            var path = request.RequestUri!.AbsolutePath;
            if (path.StartsWith("/v1/token/", StringComparison.Ordinal))
            {
                return FakeNexus.Json(FakeNexus.Token("oauth2", $"\"access_token\":\"at-{Volatile.Read(ref generation)}\"", null));
            }

            if (path.StartsWith("/v1/refresh/", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref generation);
                return FakeNexus.Json("""{"connection_id":"conn_1","status":"active","provider":"p","workspace_id":"w","scopes":[],"created_at":1,"updated_at":2}""");
            }

            if (request.Headers.Authorization?.ToString() == "Bearer at-2")
            {
                return new HttpResponseMessage(HttpStatusCode.OK);
            }

            // The provider answers 401 to all 50 together, once every one of them has arrived.
            if (Interlocked.Increment(ref refused) == Requests)
            {
                allRefused.SetResult();
            }

            await allRefused.Task;
            return new HttpResponseMessage(HttpStatusCode.Unauthorized);
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = fake });
        var ct = TestContext.Current.CancellationToken;

        var responses = await Task.WhenAll(Enumerable.Range(0, Requests).Select(i => http.GetAsync(new Uri($"https://api.example/items/{i}"), ct)));

        Assert.All(responses, response => Assert.Equal(HttpStatusCode.OK, response.StatusCode));
        Assert.Equal(1, fake.Count("/v1/refresh/"));
        Assert.Equal(Requests, refused);
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task A_401_after_the_credential_was_already_renewed_retries_with_the_new_one_without_another_refresh()
    {
        var (fake, refreshes) = NexusAndProvider(auth => auth == "Bearer at-2" ? HttpStatusCode.OK : HttpStatusCode.Unauthorized);
        using var client = new NexusClient(FakeNexus.Options(), fake);
        var ct = TestContext.Current.CancellationToken;
        var stale = await client.GetCredentialsAsync("conn_1", ct);
        var renewed = await client.RenewCredentialsAsync("conn_1", stale, ct);
        Assert.Equal("at-2", renewed.AccessToken);

        // A request sent with the old credential comes back refused after the renewal: it gets the new one, no refresh.
        Assert.Equal("at-2", (await client.RenewCredentialsAsync("conn_1", stale, ct)).AccessToken);
        Assert.Equal(1, refreshes());

        // The new credential refused in its turn is renewed again.
        Assert.Equal("at-3", (await client.RenewCredentialsAsync("conn_1", renewed, ct)).AccessToken);
        Assert.Equal(2, refreshes());
    }

    [Fact]
    public async Task The_handler_retries_only_once_and_never_a_request_whose_body_cannot_be_sent_again()
    {
        var (fake, refreshes) = NexusAndProvider(_ => HttpStatusCode.Unauthorized);
        using var client = new NexusClient(FakeNexus.Options(), fake);
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = fake });
        var ct = TestContext.Current.CancellationToken;

        using (var response = await http.GetAsync(new Uri("https://api.example/me"), ct))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        Assert.Equal(1, refreshes());
        Assert.Equal(2, fake.Count("/me"));

        using var stream = new StreamContent(new MemoryStream([1, 2, 3]));
        using (var response = await http.PostAsync(new Uri("https://api.example/upload"), stream, ct))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        Assert.Equal(1, refreshes());
        Assert.Equal(1, fake.Count("/upload"));
    }

    [Fact]
    public async Task A_refresh_the_provider_rejects_surfaces_from_the_handler_as_attention_required()
    {
        var (fake, _) = NexusAndProvider(_ => HttpStatusCode.Unauthorized, refreshRejected: true);
        using var client = new NexusClient(FakeNexus.Options(), fake);
        using var http = new HttpClient(new NexusCredentialHandler(client, "conn_1") { InnerHandler = fake });

        var error = await Assert.ThrowsAsync<NexusAttentionRequiredException>(() => http.GetAsync(new Uri("https://api.example/me"), TestContext.Current.CancellationToken));
        Assert.Equal("conn_1", error.ConnectionId);
        Assert.Equal("invalid_grant", error.Reason);
    }

    [Fact]
    public async Task AddNexusCredentials_puts_the_connection_credential_on_a_named_HttpClient()
    {
        var (fake, _) = NexusAndProvider(auth => auth == "Bearer at-1" ? HttpStatusCode.OK : HttpStatusCode.Unauthorized);
        var services = new ServiceCollection();
        services.AddSingleton(new NexusClient(FakeNexus.Options(), fake));
        services.AddHttpClient("github").AddNexusCredentials("conn_1").ConfigurePrimaryHttpMessageHandler(() => fake);
        using var provider = services.BuildServiceProvider();

        var http = provider.GetRequiredService<IHttpClientFactory>().CreateClient("github");
        using var response = await http.GetAsync(new Uri("https://api.github.example/user"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task A_request_can_choose_its_connection()
    {
        var (fake, _) = NexusAndProvider(_ => HttpStatusCode.OK);
        using var client = new NexusClient(FakeNexus.Options(), fake);
        using var http = new HttpClient(new NexusCredentialHandler(client) { InnerHandler = fake });
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://api.example/me");
        request.Options.Set(NexusCredentialHandler.ConnectionIdOption, "conn_7");

        using var response = await http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(1, fake.Count("/v1/token/conn_7"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => http.GetAsync(new Uri("https://api.example/me"), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task The_Bridge_call_goes_to_the_connection_bridge_path_with_the_API_key()
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK)) };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/repos/a/b?page=2", UriKind.Relative));

        using var response = await client.SendThroughBridgeAsync("conn_1", request, TestContext.Current.CancellationToken);
        var sent = Assert.Single(fake.Requests);
        Assert.Equal("http://nexus.test/v1/bridge/conn_1/repos/a/b?page=2", sent.Uri);
        Assert.Equal(FakeNexus.ApiKey, sent.ApiKey);
    }

    [Fact]
    public async Task The_Bridge_call_throws_Nexus_s_own_refusal_as_the_typed_error_and_returns_a_provider_s_problem_as_it_is()
    {
        var fake = new FakeNexus
        {
            Respond = request => Task.FromResult(request.RequestUri!.AbsolutePath.EndsWith("/provider-problem", StringComparison.Ordinal)
                ? FakeNexus.Json("""{"type":"https://provider.example/problems/quota","title":"Quota","status":409}""", HttpStatusCode.Conflict, "application/problem+json")
                : FakeNexus.Json("""{"type":"urn:nexus:problem:connection_not_active","title":"t","code":"connection_not_active","status":"attention_required","error":"invalid_grant","connection_id":"conn_1"}""",
                    HttpStatusCode.Conflict, "application/problem+json")),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var error = await Assert.ThrowsAsync<NexusAttentionRequiredException>(() =>
            client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/me", UriKind.Relative)), TestContext.Current.CancellationToken));
        Assert.Equal(("conn_1", "invalid_grant"), (error.ConnectionId, error.Reason));

        using var passed = await client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Get, new Uri("/provider-problem", UriKind.Relative)),
            TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Conflict, passed.StatusCode);
        Assert.Contains("provider.example", await passed.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
    }
}
