using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Bridge;

/// <summary>
/// api_key, basic_auth and aws_sigv4 providers end to end over HTTP: registration, credential capture (form and
/// API), GET /v1/token by strategy, and calls through the Bridge to an echo upstream that records what arrives.
/// </summary>
public sealed class CredentialStrategiesTests : IAsyncLifetime
{
    private const string ReturnUrl = "https://app.example.test/oauth/return";
    private TestDatabase db = null!;
    private NexusTestServer server = null!;
    private EchoUpstream echo = null!;

    public async ValueTask InitializeAsync()
    {
        echo = await EchoUpstream.StartAsync();
        db = await TestDatabase.CreateAsync();
        server = await NexusTestServer.StartAsync(db, s => s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/");
    }

    public async ValueTask DisposeAsync()
    {
        await server.DisposeAsync();
        await db.DisposeAsync();
        await echo.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> GatewayAsync(HttpMethod method, string path, object? json = null, string? apiKey = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-API-Key", apiKey ?? server.ApiKey);
        if (json is not null)
        {
            request.Content = JsonContent.Create(json);
        }

        using var response = await server.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private async Task<string> RegisterAsync(object provider)
    {
        var created = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", provider, HttpStatusCode.Created);
        return created.GetProperty("name").GetString()!;
    }

    private async Task<(string AuthUrl, string Id)> RequestAsync(string provider, string workspace = "ws_1", string? apiKey = null)
    {
        var (status, body) = await GatewayAsync(HttpMethod.Post, "/v1/request-connection", new { workspace_id = workspace, provider_name = provider, return_url = ReturnUrl }, apiKey);
        Assert.True(status == HttpStatusCode.Created, body.ToString());
        return (body.GetProperty("auth_url").GetString()!, body.GetProperty("connection_id").GetString()!);
    }

    [Fact]
    public async Task ApiKeyConnectionCapturedByApiIsInjectedByTheBridge()
    {
        var provider = await RegisterAsync(new { name = "acme", auth_mode = "api_key", api_base_url = echo.BaseUrl + "/v1", api_key = new { @in = "header", name = "x-api-key" } });
        var (authUrl, id) = await RequestAsync(provider);
        Assert.StartsWith(server.Issuer + "/connect/credentials?state=", authUrl);

        var (status, connection) = await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { api_key = "sk-test-123" });
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("active", connection.GetProperty("status").GetString());

        var (_, token) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal("api_key", token.GetProperty("strategy").GetProperty("type").GetString());
        Assert.Equal("header", token.GetProperty("strategy").GetProperty("in").GetString());
        Assert.Equal("x-api-key", token.GetProperty("strategy").GetProperty("name").GetString());
        Assert.Equal("sk-test-123", token.GetProperty("credentials").GetProperty("api_key").GetString());

        // A bridge-only key cannot read it, but can use it through the Bridge.
        var created = await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/api-keys", new { name = "agent", workspaces = new[] { "ws_1" }, can_read_credentials = false }, HttpStatusCode.Created);
        var agentKey = created.GetProperty("api_key").GetString()!;
        Assert.Equal(HttpStatusCode.Forbidden, (await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}", apiKey: agentKey)).Status);
        var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{id}/models?limit=2");
        request.Headers.Add("X-API-Key", agentKey);
        using var bridged = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, bridged.StatusCode);
        Assert.Equal("/v1/models", echo.Last.Path);
        Assert.Equal("?limit=2", echo.Last.Query);
        Assert.Equal("sk-test-123", echo.Last.Headers["x-api-key"]);
        Assert.False(echo.Last.Headers.ContainsKey("X-API-Key") && echo.Last.Headers["X-API-Key"] == agentKey);
        Assert.DoesNotContain("sk-test-123", await bridged.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task NewCredentialsAndProviderChangesAreUsedAtOnceByTokenReadsAndTheBridge()
    {
        // Both read a connection's credential decoded once per cached row: a new row or a new provider row must win.
        var provider = await RegisterAsync(new { name = "rotated", auth_mode = "api_key", api_base_url = echo.BaseUrl + "/v1", api_key = new { @in = "header", name = "x-api-key" } });
        var (_, id) = await RequestAsync(provider);

        async Task<(string Read, string Sent)> UsedKeyAsync()
        {
            var (status, token) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
            Assert.Equal(HttpStatusCode.OK, status);
            var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{id}/me");
            request.Headers.Add("X-API-Key", server.ApiKey);
            using var bridged = await server.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, bridged.StatusCode);
            return (token.GetProperty("credentials").GetProperty("api_key").GetString()!, echo.Last.Headers["x-api-key"]);
        }

        Assert.Equal(HttpStatusCode.OK, (await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { api_key = "sk-first" })).Status);
        Assert.Equal(("sk-first", "sk-first"), await UsedKeyAsync());
        Assert.Equal(("sk-first", "sk-first"), await UsedKeyAsync());

        Assert.Equal(HttpStatusCode.OK, (await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { api_key = "sk-second" })).Status);
        Assert.Equal(("sk-second", "sk-second"), await UsedKeyAsync());

        await server.AdminJsonAsync(HttpMethod.Patch, $"/v1/providers/{provider}", new { api_key = new { @in = "header", name = "x-api-key", prefix = "Key " } }, HttpStatusCode.OK);
        Assert.Equal(("sk-second", "Key sk-second"), await UsedKeyAsync());
    }

    [Fact]
    public async Task BasicAuthConnectionCapturedThroughTheFormRedirectsToTheApp()
    {
        var provider = await RegisterAsync(new { name = "twilio-like", auth_mode = "basic_auth", api_base_url = echo.BaseUrl });
        var (authUrl, id) = await RequestAsync(provider);
        using var browser = new Infrastructure.Browser(server);
        await browser.NavigateAsync(authUrl);
        Assert.Contains("type=\"password\"", browser.LastPage);
        Assert.Contains("<label for=\"username\">", browser.LastPage);

        // A missing field re-renders the form with the error, and the link stays usable.
        await browser.SubmitAsync("/connect/credentials", new Dictionary<string, string> { ["username"] = "AC123" });
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains("Password is required", browser.LastPage);

        var back = await browser.SubmitAsync("/connect/credentials", new Dictionary<string, string> { ["username"] = "AC123", ["password"] = "s3cret:with:colons" });
        Assert.Equal(ReturnUrl, back.GetLeftPart(UriPartial.Path));
        Assert.Equal(id, Infrastructure.Browser.Query(back)["connection_id"]);
        Assert.Equal("active", Infrastructure.Browser.Query(back)["status"]);

        // The link is single-use.
        await browser.NavigateAsync(authUrl);
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);

        var (_, token) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal("basic_auth", token.GetProperty("strategy").GetProperty("type").GetString());
        Assert.Equal("AC123", token.GetProperty("credentials").GetProperty("username").GetString());

        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/proxy/2010-04-01/Messages.json") { Content = new StringContent("To=%2B15551234567", Encoding.UTF8, "application/x-www-form-urlencoded") };
        request.Headers.Add("X-API-Key", server.ApiKey);
        request.Headers.Add("Nexus-Connection-Id", id);
        request.Headers.Authorization = new("Basic", "Y2FsbGVyOnNlY3JldA==");
        using var response = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("AC123:s3cret:with:colons")), echo.Last.Headers["Authorization"]);
        Assert.Equal("/2010-04-01/Messages.json", echo.Last.Path);
        Assert.Equal(17, echo.Last.BodyLength);
    }

    [Fact]
    public async Task AwsConnectionIsSignedWithSigV4ByTheBridge()
    {
        var provider = await RegisterAsync(new { name = "aws-api", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl, aws = new { service = "execute-api", region = "eu-west-1" } });
        var (_, id) = await RequestAsync(provider);
        var (status, problem) = await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { access_key_id = "not valid", secret_access_key = "x" });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.True(problem.GetProperty("errors").TryGetProperty("access_key_id", out _));
        Assert.DoesNotContain("not valid", problem.ToString());

        (status, _) = await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials",
            new { access_key_id = "AKIDEXAMPLE12345", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", session_token = "tok" });
        Assert.Equal(HttpStatusCode.OK, status);
        var (_, token) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal("aws_sigv4", token.GetProperty("strategy").GetProperty("type").GetString());
        Assert.Equal("eu-west-1", token.GetProperty("strategy").GetProperty("region").GetString());
        Assert.Equal("execute-api", token.GetProperty("strategy").GetProperty("service").GetString());

        var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{id}/prod/items");
        request.Headers.Add("X-API-Key", server.ApiKey);
        using var response = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE12345/", echo.Last.Headers["Authorization"]);
        Assert.Contains("/eu-west-1/execute-api/aws4_request", echo.Last.Headers["Authorization"]);
        Assert.Equal("tok", echo.Last.Headers["X-Amz-Security-Token"]);
        Assert.True(echo.Last.Headers.ContainsKey("x-amz-content-sha256"));
    }

    [Fact]
    public async Task CatalogCredentialProvidersRegisterWithTheirSchema()
    {
        var created = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new { name = "openai", catalog = "openai" }, HttpStatusCode.Created);
        Assert.Equal("api_key", created.GetProperty("auth_mode").GetString());
        Assert.False(created.GetProperty("has_client_secret").GetBoolean());
        Assert.True(created.GetProperty("credential_schema").GetProperty("properties").TryGetProperty("api_key", out _));
        var twilio = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new { name = "twilio", catalog = "twilio" }, HttpStatusCode.Created);
        Assert.Equal("basic_auth", twilio.GetProperty("auth_mode").GetString());
    }

    [Fact]
    public async Task ACredentialConnectionDeletedWhileItsCredentialsAreCheckedStoresNothingAndAnswersNotFound()
    {
        echo.AcceptedTokens["race-key"] = true;
        var provider = await RegisterAsync(new
        {
            name = "verified-race", auth_mode = "api_key", api_base_url = echo.BaseUrl, api_key = new { @in = "header", name = "Authorization", prefix = "Bearer " },
            verify = new { method = "GET", path = "/protected", expect_status = 200 },
        });
        var (_, id) = await RequestAsync(provider);
        var gate = new Gate();
        echo.ProtectedGate = gate;
        try
        {
            // The check call is at the provider; the connection is deleted meanwhile; then the provider accepts the key.
            var submitted = GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { api_key = "race-key" });
            await gate.Arrived.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(HttpStatusCode.NoContent, (await GatewayAsync(HttpMethod.Delete, $"/v1/connections/{id}")).Status);
            gate.Release();

            var (status, problem) = await submitted;
            Assert.Equal(HttpStatusCode.NotFound, status);
            Assert.Equal("not_found", problem.GetProperty("code").GetString());
        }
        finally
        {
            echo.ProtectedGate = null;
            gate.Release();
        }

        Assert.Equal(HttpStatusCode.NotFound, (await GatewayAsync(HttpMethod.Get, $"/v1/connections/{id}")).Status);
        var audit = await server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}");
        Assert.DoesNotContain(audit.GetProperty("events").EnumerateArray(), e => e.GetProperty("event").GetString() == "activated");
    }

    [Fact]
    public async Task VerificationCallRejectsBadCredentialsBeforeActivation()
    {
        echo.AcceptedTokens["good-key"] = true;
        var provider = await RegisterAsync(new
        {
            name = "verified", auth_mode = "api_key", api_base_url = echo.BaseUrl, api_key = new { @in = "header", name = "Authorization", prefix = "Bearer " },
            verify = new { method = "GET", path = "/protected", expect_status = 200 },
        });
        var (_, id) = await RequestAsync(provider);
        var (status, problem) = await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { api_key = "bad-key" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Equal("credentials_rejected", problem.GetProperty("code").GetString());
        Assert.Equal("pending", (await GatewayAsync(HttpMethod.Get, $"/v1/connections/{id}")).Body.GetProperty("status").GetString());

        Assert.Equal(HttpStatusCode.OK, (await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { api_key = "good-key" })).Status);
        Assert.Equal("Bearer good-key", echo.Last.Headers["Authorization"]);
    }

    [Fact]
    public async Task RefusesUnknownFieldsMissingConfigurationAndOtherWorkspaces()
    {
        var provider = await RegisterAsync(new { name = "strict", auth_mode = "api_key", api_base_url = echo.BaseUrl, api_key = new { @in = "query", name = "key" } });
        var (_, id) = await RequestAsync(provider, "ws_private");
        var (status, problem) = await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { api_key = "k", extra = "x" });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.True(problem.GetProperty("errors").TryGetProperty("extra", out _));

        var otherKey = (await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/api-keys", new { name = "other", workspaces = new[] { "ws_other" } }, HttpStatusCode.Created)).GetProperty("api_key").GetString()!;
        Assert.Equal(HttpStatusCode.NotFound, (await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { api_key = "k" }, otherKey)).Status);
        var bridged = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{id}/x");
        bridged.Headers.Add("X-API-Key", otherKey);
        Assert.Equal(HttpStatusCode.NotFound, (await server.Http.SendAsync(bridged)).StatusCode);

        // A pending connection cannot be used through the Bridge yet.
        var pending = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{id}/x");
        pending.Headers.Add("X-API-Key", server.ApiKey);
        using var pendingResponse = await server.Http.SendAsync(pending);
        Assert.Equal(HttpStatusCode.Conflict, pendingResponse.StatusCode);

        // Registration errors are explained.
        var bad = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new { name = "broken", auth_mode = "api_key" }, HttpStatusCode.BadRequest);
        Assert.True(bad.GetProperty("errors").TryGetProperty("api_base_url", out _));
        Assert.True(bad.GetProperty("errors").TryGetProperty("api_key", out _));
        var badAws = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new { name = "broken-aws", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl }, HttpStatusCode.BadRequest);
        Assert.True(badAws.GetProperty("errors").TryGetProperty("aws", out _));
    }

    [Fact]
    public async Task StoredCredentialsAreEncryptedAtRest()
    {
        var provider = await RegisterAsync(new { name = "secretive", auth_mode = "basic_auth", api_base_url = echo.BaseUrl });
        var (_, id) = await RequestAsync(provider);
        await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { username = "plain-user-marker", password = "plain-password-marker-42" });
        var rows = await db.DumpAllRowsAsync();
        var raw = Encoding.Latin1.GetString(db.RawSqliteBytes());
        Assert.Contains(id, rows);
        Assert.DoesNotContain("plain-password-marker-42", rows, StringComparison.Ordinal);
        Assert.DoesNotContain("plain-password-marker-42", raw, StringComparison.Ordinal);
        // The username is not a secret: it is kept as the connection's account label, and nowhere else in clear.
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(rows, "plain-user-marker"));
    }

    private static System.Text.Json.Nodes.JsonNode Schema(string[] required, params string[] properties) => System.Text.Json.Nodes.JsonNode.Parse(JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["type"] = "object",
        ["required"] = required,
        ["properties"] = properties.ToDictionary(p => p, p => (object)new Dictionary<string, object> { ["type"] = "string", ["x-secret"] = p != "access_key_id" && p != "username" }),
    }))!;

    [Fact]
    public async Task ACustomCredentialSchemaMustDefineAndRequireTheModesFieldNames()
    {
        async Task Refused(object provider)
        {
            var problem = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", provider, HttpStatusCode.BadRequest);
            Assert.Contains("must define and require", problem.GetProperty("errors").GetProperty("credential_schema")[0].GetString());
        }

        var aws = new { service = "execute-api", region = "eu-west-1" };
        var apiKey = new { @in = "header", name = "x-key" };
        await Refused(new { name = "aws-no-secret", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl, aws, credential_schema = Schema(["access_key_id"], "access_key_id") });
        await Refused(new { name = "aws-optional-secret", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl, aws, credential_schema = Schema(["access_key_id"], "access_key_id", "secret_access_key") });
        await Refused(new { name = "aws-renamed", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl, aws, credential_schema = Schema(["key", "secret"], "key", "secret") });
        await Refused(new { name = "key-renamed", auth_mode = "api_key", api_base_url = echo.BaseUrl, api_key = apiKey, credential_schema = Schema(["token"], "token") });
        await Refused(new { name = "basic-no-user", auth_mode = "basic_auth", api_base_url = echo.BaseUrl, credential_schema = Schema(["password"], "username", "password") });

        // The mode's fields, required, plus fields of the provider's own: accepted.
        await RegisterAsync(new { name = "aws-custom", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl, aws, credential_schema = Schema(["access_key_id", "secret_access_key"], "access_key_id", "secret_access_key", "session_token") });
        await RegisterAsync(new { name = "key-custom", auth_mode = "api_key", api_base_url = echo.BaseUrl, api_key = apiKey, credential_schema = Schema(["api_key"], "api_key", "application_key") });
        var basic = await RegisterAsync(new { name = "basic-custom", auth_mode = "basic_auth", api_base_url = echo.BaseUrl, credential_schema = Schema(["username", "password"], "username", "password") });

        // A PATCH that switches the mode but keeps a schema of the old one's names is refused too.
        var patched = await server.AdminJsonAsync(HttpMethod.Patch, $"/v1/providers/{basic}", new { auth_mode = "aws_sigv4", aws }, HttpStatusCode.BadRequest);
        Assert.True(patched.GetProperty("errors").TryGetProperty("credential_schema", out _));
    }

    [Fact]
    public async Task AProviderRowWithoutTheModesFieldsIsAProblemAtCaptureAndReadNeverA500()
    {
        // A provider registered before the field names were enforced: its schema has no secret_access_key.
        var name = await RegisterAsync(new { name = "aws-legacy", auth_mode = "aws_sigv4", api_base_url = echo.BaseUrl, aws = new { service = "execute-api", region = "eu-west-1" } });
        var registry = server.Services.GetRequiredService<Nexus.Server.Providers.ProviderRegistry>();
        var provider = (await registry.FindAsync(name, CancellationToken.None))!;
        await registry.UpdateAsync(provider with { Config = provider.Config with { CredentialSchema = Schema(["access_key_id"], "access_key_id", "other").AsObject() } }, CancellationToken.None);

        var (_, id) = await RequestAsync(name);
        var (status, problem) = await GatewayAsync(HttpMethod.Post, $"/v1/connections/{id}/credentials", new { access_key_id = "AKIDEXAMPLE12345" });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.True(problem.GetProperty("errors").TryGetProperty("secret_access_key", out _), problem.ToString());

        // A row stored with such a schema: GET /v1/token and the Bridge answer 409, not 500.
        var store = server.Services.GetRequiredService<Nexus.Server.Connections.ConnectionStore>();
        await store.ActivateAsync(id, provider, store.Encrypt(Nexus.Server.Connections.ConnectionStore.AccessTokenColumn, id, """{"access_key_id":"AKIDEXAMPLE12345","other":"x"}"""), null, "credential", null, CancellationToken.None);
        (status, problem) = await GatewayAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("credentials_unusable", problem.GetProperty("code").GetString());
        var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{id}/prod/items");
        request.Headers.Add("X-API-Key", server.ApiKey);
        using var response = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
    }

    [Fact]
    public void UpstreamCredentialsFromIsTotal()
    {
        Nexus.Server.Providers.Provider Of(string mode, Nexus.Server.Providers.ProviderConfig? config = null) =>
            new("p", null, "P", mode, config ?? new Nexus.Server.Providers.ProviderConfig(), [], "", null, [], DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);

        Assert.Equal("api_key", Nexus.Server.Credentials.UpstreamCredentials.From(Of("api_key"), new Dictionary<string, string>()).Problem?.Field);
        Assert.Equal("api_key", Nexus.Server.Credentials.UpstreamCredentials.From(Of("api_key"), new Dictionary<string, string> { ["a"] = "1", ["b"] = "2" }).Problem?.Field);
        Assert.IsType<Nexus.Server.Credentials.UpstreamCredential.ApiKey>(Nexus.Server.Credentials.UpstreamCredentials.From(Of("api_key"), new Dictionary<string, string> { ["token"] = "1" }).Credential);
        Assert.Equal("password", Nexus.Server.Credentials.UpstreamCredentials.From(Of("basic_auth"), new Dictionary<string, string> { ["username"] = "u" }).Problem?.Field);
        Assert.Equal("access_key_id", Nexus.Server.Credentials.UpstreamCredentials.From(Of("aws_sigv4"), new Dictionary<string, string>()).Problem?.Field);
        Assert.Equal("secret_access_key", Nexus.Server.Credentials.UpstreamCredentials.From(Of("aws_sigv4"), new Dictionary<string, string> { ["access_key_id"] = "AKID" }).Problem?.Field);
        Assert.NotNull(Nexus.Server.Credentials.UpstreamCredentials.From(Of("oauth2"), new Dictionary<string, string>()).Problem);
    }
}

/// <summary>The Bridge in front of an OAuth connection made through the real handshake.</summary>
public sealed class OAuthBridgeTests(BrokerFixture fixture) : IClassFixture<BrokerFixture>
{
    [Fact]
    public async Task ForwardsWithTheConnectionsBearerTokenAndNeverTheCallers()
    {
        await using var echo = await EchoUpstream.StartAsync();
        var provider = await fixture.Kit.RegisterAsync("github", new { api_base_url = echo.BaseUrl + "/api" });
        var (id, returned) = await fixture.Kit.ConnectAsync(provider, "ws_oauth_bridge");
        Assert.Equal("active", returned["status"]);
        var (_, token) = await fixture.Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}");
        var accessToken = token.GetProperty("credentials").GetProperty("access_token").GetString()!;

        var request = fixture.Kit.Gateway(HttpMethod.Get, $"/v1/bridge/{id}/user/repos?page=2");
        request.Headers.Authorization = new("Bearer", "caller-made-this-up");
        using var response = await fixture.Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("/api/user/repos", echo.Last.Path);
        Assert.Equal("Bearer " + accessToken, echo.Last.Headers["Authorization"]);
        Assert.False(echo.Last.Headers.ContainsKey("X-API-Key"));
    }
}
