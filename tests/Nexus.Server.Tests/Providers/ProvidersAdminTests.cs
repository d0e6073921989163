using System.Net;
using System.Text;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Providers;

public sealed class ProvidersAdminTests(BrokerFixture fixture) : IClassFixture<BrokerFixture>
{
    private NexusTestServer Server => fixture.Server;

    private static string NewName(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task ACatalogProviderTakesItsEndpointsFromTheCatalogAndNeverShowsTheSecret()
    {
        var name = NewName("github");
        var created = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name, catalog = "github", client_id = "Iv1.abc", client_secret = "shh-very-secret-value" }, HttpStatusCode.Created);
        Assert.Equal("github", created.GetProperty("catalog").GetString());
        Assert.Equal("https://github.com/login/oauth/access_token", created.GetProperty("token_url").GetString());
        Assert.Equal("application/json", created.GetProperty("token_request_headers").GetProperty("Accept").GetString());
        Assert.Equal(["read:user", "user:email"], created.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()!).ToArray());
        Assert.True(created.GetProperty("has_client_secret").GetBoolean());

        var fetched = await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/providers/{name}");
        var list = await Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers");
        foreach (var text in new[] { created.ToString(), fetched.ToString(), list.ToString() })
        {
            Assert.DoesNotContain("shh-very-secret-value", text, StringComparison.Ordinal);
            Assert.DoesNotContain("\"client_secret\"", text, StringComparison.Ordinal);
        }

        await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name, catalog = "github", client_id = "x", client_secret = "y" }, HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task PlaceholdersAreFilledFromDefaultsAndRequiredWhenTheyHaveNone()
    {
        var gitlab = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name = NewName("gitlab"), catalog = "gitlab", client_id = "a", client_secret = "b" }, HttpStatusCode.Created);
        Assert.Equal("https://gitlab.com/oauth/token", gitlab.GetProperty("token_url").GetString());

        var selfHosted = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name = NewName("gitlab"), catalog = "gitlab", client_id = "a", client_secret = "b", placeholders = new { host = "git.example.org" } }, HttpStatusCode.Created);
        Assert.Equal("https://git.example.org/oauth/authorize", selfHosted.GetProperty("authorization_url").GetString());

        // A value that differs per connection (issue 17) is not required at registration: it stays in the URLs and
        // is described for connection_config.
        var perConnection = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name = NewName("zendesk"), catalog = "zendesk", client_id = "a", client_secret = "b" }, HttpStatusCode.Created);
        Assert.Equal("https://{subdomain}.zendesk.com/oauth/tokens", perConnection.GetProperty("token_url").GetString());
        Assert.Equal("connection", perConnection.GetProperty("connection_config_schema").GetProperty("subdomain").GetProperty("source").GetString());

        // One deployment for one tenant may still fix it at registration.
        var fixedTenant = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name = NewName("zendesk"), catalog = "zendesk", client_id = "a", client_secret = "b", placeholders = new { subdomain = "acme" } }, HttpStatusCode.Created);
        Assert.Equal("https://acme.zendesk.com/oauth/tokens", fixedTenant.GetProperty("token_url").GetString());
        Assert.False(fixedTenant.TryGetProperty("connection_config_schema", out _));

        var badValue = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name = NewName("zendesk"), catalog = "zendesk", client_id = "a", client_secret = "b", placeholders = new { subdomain = "evil.com/x?" } }, HttpStatusCode.BadRequest);
        Assert.True(badValue.GetProperty("errors").TryGetProperty("placeholders.subdomain", out _));

        var unknown = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name = NewName("github"), catalog = "github", client_id = "a", client_secret = "b", placeholders = new { tenant = "x" } }, HttpStatusCode.BadRequest);
        Assert.True(unknown.GetProperty("errors").TryGetProperty("placeholders.tenant", out _));
    }

    [Theory]
    [InlineData("{\"name\":\"x1\",\"catalog\":\"nope\",\"client_id\":\"a\",\"client_secret\":\"b\"}", "catalog")]
    [InlineData("{\"name\":\"x2\",\"catalog\":\"openai\",\"client_id\":\"a\",\"client_secret\":\"b\"}", "client_id")]
    [InlineData("{\"name\":\"x3\",\"catalog\":\"github\",\"client_id\":\"a\",\"client_secret\":\"b\",\"token_url\":\"https://evil.test/t\"}", "token_url")]
    [InlineData("{\"name\":\"Bad Name\",\"catalog\":\"github\",\"client_id\":\"a\",\"client_secret\":\"b\"}", "name")]
    [InlineData("{\"name\":\"x4\",\"catalog\":\"github\",\"client_secret\":\"b\"}", "client_id")]
    [InlineData("{\"name\":\"x5\",\"catalog\":\"github\",\"client_id\":\"a\"}", "client_secret")]
    [InlineData("{\"name\":\"x6\",\"client_id\":\"a\",\"client_secret\":\"b\"}", "authorization_url")]
    [InlineData("{\"name\":\"x7\",\"authorization_url\":\"http://example.com/a\",\"token_url\":\"https://example.com/t\",\"client_id\":\"a\",\"client_secret\":\"b\"}", "authorization_url")]
    [InlineData("{\"name\":\"x8\",\"authorization_url\":\"https://example.com/a\",\"token_url\":\"ftp://example.com/t\",\"client_id\":\"a\",\"client_secret\":\"b\"}", "token_url")]
    [InlineData("{\"name\":\"x9\",\"authorization_url\":\"https://example.com/a\",\"token_url\":\"https://example.com/t\",\"client_id\":\"a\",\"client_secret\":\"b\",\"pkce\":\"maybe\"}", "pkce")]
    [InlineData("{\"name\":\"x10\",\"authorization_url\":\"https://example.com/a\",\"token_url\":\"https://example.com/t\",\"client_id\":\"a\",\"client_secret\":\"b\",\"authorization_params\":{\"state\":\"x\"}}", "authorization_params")]
    [InlineData("{\"name\":\"x11\",\"authorization_url\":\"https://example.com/a\",\"token_url\":\"https://example.com/t\",\"client_id\":\"a\",\"client_secret\":\"b\",\"token_request_headers\":{\"Authorization\":\"x\"}}", "token_request_headers")]
    [InlineData("{\"name\":\"x12\",\"auth_mode\":\"api_key\",\"authorization_url\":\"https://example.com/a\",\"token_url\":\"https://example.com/t\",\"client_id\":\"a\",\"client_secret\":\"b\"}", "authorization_url")]
    public async Task InvalidRegistrationsNameTheFieldToFix(string json, string field)
    {
        using var response = await Send(HttpMethod.Post, "/v1/providers", json);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("validation_failed", problem.GetProperty("code").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
    }

    [Theory]
    [InlineData("{\"name\":")]
    [InlineData("{\"name\":\"x\",\"surprise\":true}")]
    [InlineData("{\"name\":\"x\",\"scopes\":\"read\"}")]
    public async Task MalformedJsonIsAProblem(string json)
    {
        using var response = await Send(HttpMethod.Post, "/v1/providers", json);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_json", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public async Task PatchChangesTheGivenFieldsAndANewSecretIsUsedAtTheNextExchange()
    {
        var name = await fixture.Kit.RegisterAsync("google", new { client_secret = "wrong-secret" });
        var (_, failed) = await fixture.Kit.ConnectAsync(name);
        Assert.Equal("invalid_client", failed["error"]);

        var patched = await Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/providers/{name}", new { client_secret = fixture.Fake.ClientSecret, scopes = new[] { "openid" } });
        Assert.Equal(["openid"], patched.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()!).ToArray());
        Assert.Equal(fixture.Fake.Url("google", "token"), patched.GetProperty("token_url").GetString());
        var (_, returned) = await fixture.Kit.ConnectAsync(name);
        Assert.Equal("active", returned["status"]);

        await Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/providers/{name}", new { name = "renamed" }, HttpStatusCode.BadRequest);
        await Server.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/nope", new { scopes = new[] { "a" } }, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task AProviderWithConnectionsCannotBeDeletedUntilTheyAreGone()
    {
        var name = await fixture.Kit.RegisterAsync("google");
        var (id, _) = await fixture.Kit.ConnectAsync(name);
        var problem = await Server.AdminJsonAsync(HttpMethod.Delete, $"/v1/providers/{name}", expected: HttpStatusCode.Conflict);
        Assert.Equal("provider_in_use", problem.GetProperty("code").GetString());
        await fixture.Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}");
        await Server.AdminJsonAsync(HttpMethod.Delete, $"/v1/providers/{name}", expected: HttpStatusCode.NoContent);
        await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/providers/{name}", expected: HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task DiscoveryThatFailsIsReportedAsABadGateway()
    {
        var problem = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name = NewName("oidc"), issuer = fixture.Fake.BaseUrl + "/missing", client_id = "a", client_secret = "b" }, HttpStatusCode.BadGateway);
        Assert.Equal("discovery_failed", problem.GetProperty("code").GetString());
    }

    [Fact]
    public async Task TheProvidersApiNeedsTheAdminKey()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/v1/providers");
        request.Headers.Add("X-API-Key", await fixture.Kit.CreateApiKeyAsync(["*"]));
        using var withGatewayKey = await Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, withGatewayKey.StatusCode);
        using var anonymous = await Server.Http.GetAsync("/v1/providers");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    private Task<HttpResponseMessage> Send(HttpMethod method, string path, string json)
    {
        var request = Server.Admin(method, path);
        request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        return Server.Http.SendAsync(request);
    }
}

public sealed class UpstreamPolicyTests
{
    [Fact]
    public async Task PlainHttpLoopbackProvidersAreRefusedUnlessInsecureUpstreamsAreAllowed()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:AllowInsecureUpstreams"] = "false");
        var problem = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "loopback", authorization_url = "http://127.0.0.1:9/authorize", token_url = "http://127.0.0.1:9/token", client_id = "a", client_secret = "b",
        }, HttpStatusCode.BadRequest);
        Assert.Contains("AllowInsecureUpstreams", problem.GetProperty("errors").GetProperty("authorization_url")[0].GetString());
    }
}
