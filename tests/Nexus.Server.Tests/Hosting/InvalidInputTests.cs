using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>A server, an echo upstream and a gateway key shared by the tests of <see cref="InvalidInputTests"/>.</summary>
public sealed class InvalidInputFixture : IAsyncLifetime
{
    public const string ReturnUrl = "https://app.example.test/oauth/return";

    public TestDatabase Database { get; private set; } = null!;

    public NexusTestServer Server { get; private set; } = null!;

    public EchoUpstream Echo { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Echo = await EchoUpstream.StartAsync();
        Database = await TestDatabase.CreateAsync();
        Server = await NexusTestServer.StartAsync(Database, s => s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/");
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await Database.DisposeAsync();
        await Echo.DisposeAsync();
    }
}

/// <summary>
/// Input that no client should send (NUL, lone surrogates, broken base64url, header-breaking values, runaway
/// patterns, wrongly typed JSON) is refused at the edge with a 4xx in the endpoint's own error format: never a 500,
/// never a database error, never a .NET type name (issue 12, items 4, 5 and 9).
/// </summary>
public sealed class InvalidInputTests(InvalidInputFixture fixture) : IClassFixture<InvalidInputFixture>
{
    private NexusTestServer Server => fixture.Server;

    private static StringContent Json(string raw) => new(raw, Encoding.UTF8, "application/json");

    private static StringContent Form(string raw) => new(raw, Encoding.UTF8, "application/x-www-form-urlencoded");

    private async Task<(HttpStatusCode Status, string Body, string? MediaType)> SendAsync(HttpMethod method, string path, HttpContent? content = null, string? apiKey = null,
        AuthenticationHeaderValue? authorization = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        if (apiKey is not null)
        {
            request.Headers.Add("X-API-Key", apiKey);
        }

        request.Headers.Authorization = authorization;
        using var response = await Server.Http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Content.Headers.ContentType?.MediaType);
    }

    private static void AssertProblem((HttpStatusCode Status, string Body, string? MediaType) response, string code, HttpStatusCode status = HttpStatusCode.BadRequest)
    {
        Assert.True(response.Status == status, $"Expected {(int)status} {code}, got {(int)response.Status}: {response.Body}");
        Assert.Equal("application/problem+json", response.MediaType);
        Assert.Equal(code, JsonDocument.Parse(response.Body).RootElement.GetProperty("code").GetString());
        AssertNoInternals(response.Body);
    }

    private static void AssertOAuthError((HttpStatusCode Status, string Body, string? MediaType) response, string error, HttpStatusCode status = HttpStatusCode.BadRequest)
    {
        Assert.True(response.Status == status, $"Expected {(int)status} {error}, got {(int)response.Status}: {response.Body}");
        Assert.Equal("application/json", response.MediaType);
        Assert.Equal(error, JsonDocument.Parse(response.Body).RootElement.GetProperty("error").GetString());
        AssertNoInternals(response.Body);
    }

    private static void AssertNoInternals(string body)
    {
        Assert.DoesNotMatch(@"\b(System|Microsoft|Nexus|Npgsql)\.[A-Z]|Sqlite|22021|\bat [A-Z]\w+\.", body);
    }

    private async Task<string> RegisterAsync(string name, object? credentialSchema = null, string @in = "header")
    {
        var body = new Dictionary<string, object?>
        {
            ["name"] = name, ["auth_mode"] = "api_key", ["api_base_url"] = fixture.Echo.BaseUrl + "/v1", ["api_key"] = new { @in, name = "x-api-key" },
        };
        if (credentialSchema is not null)
        {
            body["credential_schema"] = credentialSchema;
        }

        return (await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", body, HttpStatusCode.Created)).GetProperty("name").GetString()!;
    }

    private async Task<(string AuthUrl, string Id)> RequestConnectionAsync(string provider)
    {
        var created = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_1", provider_name = provider, return_url = InvalidInputFixture.ReturnUrl }, HttpStatusCode.Created);
        return (created.GetProperty("auth_url").GetString()!, created.GetProperty("connection_id").GetString()!);
    }

    [Theory]
    [InlineData("a.b.c.d")]
    [InlineData("a.b.c.!!!!")]
    [InlineData("conn_1.nonce.1.x")]
    [InlineData("...")]
    public async Task ABrokerStateThatIsNotBase64UrlIsRefusedNotA500(string state)
    {
        AssertProblem(await SendAsync(HttpMethod.Get, $"/auth/callback?state={Uri.EscapeDataString(state)}&code=x"), "invalid_state");
        var form = await SendAsync(HttpMethod.Get, $"/connect/credentials?state={Uri.EscapeDataString(state)}");
        Assert.Equal(HttpStatusCode.BadRequest, form.Status);
        Assert.Contains("This link is not valid", form.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ANulInAnHtmlFormIsRefusedAsSuchNotAsAnExpiredForm()
    {
        // Found by SignedInHostileInputTests: the antiforgery check read the form first and reported the framework's
        // refusal of the NUL as a missing token ("Form expired").
        using var browser = new Browser(fixture.Server);
        await browser.NavigateAsync("/account/signin");
        await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = "someone\0@example.com", ["password"] = "x" });

        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains("Form not accepted", System.Text.RegularExpressions.Regex.Match(browser.LastPage, "<main>.*</main>", System.Text.RegularExpressions.RegexOptions.Singleline).Value);
        Assert.Contains("not allowed (such as NUL)", browser.LastPage);
        Assert.DoesNotContain("Form expired", browser.LastPage);
    }

    [Fact]
    public async Task AMultipartFormWhoseBodyIsNotMultipartIsRefusedNotA500()
    {
        // Found by HostileInputTests (seed 12): the framework's multipart reader ran off the end of the body.
        using var http = new HttpClient { BaseAddress = new Uri(fixture.Server.BaseUrl) };
        using var content = new StringContent("response_type=&error_description=x", Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=x");
        using var response = await http.PostAsync("/account/signin", content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("does not match its content type", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ANulInAClientIdIsAnInvalidRequestOnEveryOAuthEndpoint()
    {
        foreach (var path in new[] { "/oauth2/token", "/nexus/oauth2/token", "/oauth2/introspect", "/oauth2/revoke", "/api/v1/oauth/exchange" })
        {
            AssertOAuthError(await SendAsync(HttpMethod.Post, path, Form("grant_type=client_credentials&token=t&code=c&client_id=app%00x&client_secret=s")), "invalid_request");
            // The same client id in HTTP Basic (RFC 6749 §2.3.1: form-urlencoded, then base64).
            AssertOAuthError(await SendAsync(HttpMethod.Post, path, Form("grant_type=client_credentials&token=t&code=c"),
                authorization: new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("app%00x:secret")))), "invalid_request");
        }

        AssertOAuthError(await SendAsync(HttpMethod.Post, "/api/v1/oauth/exchange?client_id=a%00&client_secret=s&code=c"), "invalid_request");
        AssertOAuthError(await SendAsync(HttpMethod.Get, "/oauth2/authorize?response_type=code&client_id=app%00x&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcb"), "invalid_request");
        AssertOAuthError(await SendAsync(HttpMethod.Get, "/api/oauth/authorize?client_id=%00"), "invalid_request");
    }

    [Fact]
    public async Task NulAttemptsAtClientAuthenticationCountTowardsTheFailedAuthenticationLimit()
    {
        await using var db = await TestDatabase.CreateAsync();
        // A limit of 1 per client allows 10 failures per address in total.
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedClientAuthenticationLimit"] = "1");
        var (id, secret) = await server.CreateAppClientAsync();
        for (var i = 0; i < 10; i++)
        {
            using var hostile = await server.Http.PostAsync("/oauth2/token", Form($"grant_type=client_credentials&client_id=x{i}%00&client_secret=s"));
            Assert.Equal(HttpStatusCode.BadRequest, hostile.StatusCode);
        }

        using var throttled = await server.RequestTokenAsync(id, secret);
        Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        Assert.Equal("invalid_client", JsonDocument.Parse(await throttled.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public async Task NulAndLoneSurrogatesInAdminJsonAuditFiltersAndPathsAreProblems()
    {
        AssertProblem(await SendAsync(HttpMethod.Post, "/v1/admin/api-keys", Json("""{"name":"a\u0000b","workspaces":["ws_1"]}"""), Server.ApiKey), "invalid_json");
        AssertProblem(await SendAsync(HttpMethod.Post, "/v1/admin/api-keys", Json("""{"name":"a\ud800b","workspaces":["ws_1"]}"""), Server.ApiKey), "invalid_json");
        AssertProblem(await SendAsync(HttpMethod.Post, "/v1/admin/clients", Json("""{"name":"ok","scopes":["read\u0000"]}"""), Server.ApiKey), "invalid_json");
        AssertProblem(await SendAsync(HttpMethod.Post, "/v1/providers", Json("""{"name":"p\udc00","auth_mode":"api_key"}"""), Server.ApiKey), "invalid_json");
        AssertProblem(await SendAsync(HttpMethod.Post, "/v1/providers", Json("""{"name":"lone-x","auth_mode":"api_key","credential_schema":{"type":"object","properties":{"api_key":{"type":"string","title":"\ud800"}},"required":["api_key"]}}"""), Server.ApiKey), "invalid_json");
        AssertProblem(await SendAsync(HttpMethod.Get, "/v1/admin/audit?connection_id=%00", apiKey: Server.ApiKey), "invalid_input");
        AssertProblem(await SendAsync(HttpMethod.Get, "/v1/admin/audit?workspace_id=ws%00&event=connection.activated", apiKey: Server.ApiKey), "invalid_input");
        // Kestrel itself refuses an encoded NUL in the path (a bare 400 before any endpoint runs).
        foreach (var path in new[] { "/v1/connections/conn_%00", "/v1/token/conn_%00", "/v1/providers/x%00", "/v1/bridge/conn_%00/anything", "/v1/proxy/x%00" })
        {
            Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(HttpMethod.Get, path, apiKey: Server.ApiKey)).Status);
        }
        // A legitimate request still works.
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Get, "/v1/admin/audit?connection_id=conn_none", apiKey: Server.ApiKey)).Status);
    }

    [Fact]
    public async Task NulAndLoneSurrogatesInCredentialsAreValidationErrorsNotA500()
    {
        var provider = await RegisterAsync("strange-" + Guid.NewGuid().ToString("N")[..6]);
        var (authUrl, id) = await RequestConnectionAsync(provider);
        foreach (var raw in new[] { """{"api_key":"\ud800"}""", """{"api_key":"a\udfffb"}""", """{"api_key":"sk\u0000x"}""", """{"api\u0000key":"x"}""" })
        {
            AssertProblem(await SendAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", Json(raw), Server.ApiKey), "invalid_json");
        }

        // The browser form: a NUL in a field is refused before anything is stored.
        var state = Uri.UnescapeDataString(authUrl[(authUrl.IndexOf("state=", StringComparison.Ordinal) + 6)..]);
        var form = await SendAsync(HttpMethod.Post, "/connect/credentials", Form($"state={Uri.EscapeDataString(state)}&api_key=a%00b"));
        Assert.Equal(HttpStatusCode.BadRequest, form.Status);
        AssertNoInternals(form.Body);
        Assert.Equal("pending", (await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/connections/{id}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task ABacktrackingCredentialPatternAnswersAValidationErrorQuickly()
    {
        var provider = await RegisterAsync("regex-" + Guid.NewGuid().ToString("N")[..6], new
        {
            type = "object",
            required = new[] { "api_key" },
            properties = new { api_key = new { type = "string", title = "API key", pattern = "^(a+)+$" } },
        });
        var (_, id) = await RequestConnectionAsync(provider);
        var watch = Stopwatch.StartNew();
        var response = await SendAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", Json($$"""{"api_key":"{{new string('a', 40)}}!"}"""), Server.ApiKey);
        AssertProblem(response, "validation_failed");
        Assert.Contains("api_key", JsonDocument.Parse(response.Body).RootElement.GetProperty("errors").EnumerateObject().Select(p => p.Name));
        // Backtracking on 41 characters would take hours; a linear-time match takes microseconds. The bound leaves room
        // for a machine busy with the rest of the suite.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"The match took {watch.Elapsed}.");
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", Json("""{"api_key":"aaaa"}"""), Server.ApiKey)).Status);

        // A pattern the linear-time engine cannot run (a backreference) is refused at registration.
        var refused = await SendAsync(HttpMethod.Post, "/v1/providers", Json("""
            {"name":"backref","auth_mode":"api_key","api_base_url":"https://api.example.test","api_key":{"in":"header","name":"x-api-key"},
             "credential_schema":{"type":"object","required":["api_key"],"properties":{"api_key":{"type":"string","pattern":"^(a)\\1$"}}}}
            """), Server.ApiKey);
        AssertProblem(refused, "validation_failed");
    }

    [Theory]
    [InlineData("https://app.example.test/oauth/return\r\nSet-Cookie: a=b")]
    [InlineData("https://app.example.test/oauth/return\n")]
    [InlineData("https://app.example.test/oauth/re\tturn")]
    [InlineData("https://app.example.test/oauth/ré")]
    public async Task AReturnUrlWithControlOrNonAsciiCharactersIsRefusedAtRequestConnection(string returnUrl)
    {
        var provider = await RegisterAsync("crlf-" + Guid.NewGuid().ToString("N")[..6]);
        var response = await SendAsync(HttpMethod.Post, "/v1/request-connection",
            Json(JsonSerializer.Serialize(new { workspace_id = "ws_1", provider_name = provider, return_url = returnUrl })), Server.ApiKey);
        AssertProblem(response, "return_url_not_allowed");
    }

    [Theory]
    [InlineData("sk\u0001x")]
    [InlineData("sk\nx")]
    [InlineData("ключ")]
    public async Task AnApiKeyThatIsNotAValidHeaderValueIsRefusedAtCapture(string key)
    {
        var provider = await RegisterAsync("hdr-" + Guid.NewGuid().ToString("N")[..6]);
        var (_, id) = await RequestConnectionAsync(provider);
        var response = await SendAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", Json(JsonSerializer.Serialize(new { api_key = key })), Server.ApiKey);
        AssertProblem(response, "validation_failed");
        Assert.Contains("api_key", JsonDocument.Parse(response.Body).RootElement.GetProperty("errors").EnumerateObject().Select(p => p.Name));
        Assert.Equal("pending", (await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/connections/{id}")).GetProperty("status").GetString());

        // In the query string any text can be sent (it is percent-encoded), so there the same key is accepted.
        var queryProvider = await RegisterAsync("qry-" + Guid.NewGuid().ToString("N")[..6], @in: "query");
        var (_, queryId) = await RequestConnectionAsync(queryProvider);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, $"/v1/connections/{queryId}/credentials", Json(JsonSerializer.Serialize(new { api_key = key })), Server.ApiKey)).Status);
    }

    [Theory]
    [InlineData("""{"name":5,"workspaces":["ws_1"]}""", "name", "a string")]
    [InlineData("""{"name":"k","workspaces":"ws_1"}""", "workspaces", "an array")]
    [InlineData("""{"name":"k","workspaces":[7]}""", "workspaces[0]", "a string")]
    [InlineData("""{"name":"k","workspaces":["ws_1"],"can_read_credentials":"yes"}""", "can_read_credentials", "true or false")]
    [InlineData("""{"name":"k","workspaces":["ws_1"],"nmae":"x"}""", "nmae", "not a field")]
    [InlineData("""{"name":"k",""", "", "not valid JSON")]
    [InlineData("""[1,2]""", "", "an object")]
    public async Task AJsonErrorNamesTheFieldAndTheJsonTypeNeverADotNetType(string raw, string field, string expected)
    {
        var response = await SendAsync(HttpMethod.Post, "/v1/admin/api-keys", Json(raw), Server.ApiKey);
        AssertProblem(response, "invalid_json");
        var detail = JsonDocument.Parse(response.Body).RootElement.GetProperty("detail").GetString()!;
        Assert.Contains(expected, detail, StringComparison.Ordinal);
        if (field.Length > 0)
        {
            Assert.Contains($"'{field}'", detail, StringComparison.Ordinal);
        }
    }
}
