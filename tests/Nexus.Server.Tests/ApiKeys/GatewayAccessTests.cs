using System.Net;
using System.Text;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.ApiKeys;

/// <summary>Who may do what on the gateway API: API keys, workspaces, credential reads, return URLs, bad input.</summary>
public sealed class GatewayAccessTests(BrokerFixture fixture) : IClassFixture<BrokerFixture>
{
    private BrokerKit Kit => fixture.Kit;

    [Fact]
    public async Task AKeyBoundToOneWorkspaceCannotSeeAnotherWorkspacesConnectionsAtAll()
    {
        var provider = await Kit.RegisterAsync("google");
        var keyA = await Kit.CreateApiKeyAsync(["ws_a"]);
        var keyB = await Kit.CreateApiKeyAsync(["ws_b"]);
        var (connectionB, _) = await Kit.ConnectAsync(provider, "ws_b", apiKey: keyB);
        var (connectionA, _) = await Kit.ConnectAsync(provider, "ws_a", apiKey: keyA);

        // Read, list, credentials and delete of workspace B's connection: 404, exactly like an unknown id.
        foreach (var (method, path) in new[]
        {
            (HttpMethod.Get, $"/v1/connections/{connectionB}"), (HttpMethod.Get, $"/v1/token/{connectionB}"),
            (HttpMethod.Get, "/v1/connections?workspace_id=ws_b"), (HttpMethod.Delete, $"/v1/connections/{connectionB}"),
        })
        {
            var (status, problem) = await Kit.SendAsync(method, path, apiKey: keyA);
            Assert.True(status == HttpStatusCode.NotFound, $"{method} {path} answered {(int)status}");
            Assert.Equal("not_found", problem.GetProperty("code").GetString());
        }

        var mine = (await Kit.SendAsync(HttpMethod.Get, "/v1/connections", apiKey: keyA)).Body.GetProperty("connections");
        Assert.Equal([connectionA], mine.EnumerateArray().Select(c => c.GetProperty("connection_id").GetString()!).ToArray());
        Assert.Equal(HttpStatusCode.OK, (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{connectionA}", apiKey: keyA)).Status);

        // B's connection survived A's delete attempt and B still reads it.
        Assert.Equal(HttpStatusCode.OK, (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{connectionB}", apiKey: keyB)).Status);

        var (requestStatus, requestProblem) = await Kit.SendAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_b", provider_name = provider, return_url = BrokerFixture.ReturnUrl }, keyA);
        Assert.Equal(HttpStatusCode.Forbidden, requestStatus);
        Assert.Equal("workspace_not_allowed", requestProblem.GetProperty("code").GetString());
    }

    [Fact]
    public async Task ABridgeOnlyKeyManagesConnectionsButMayNotReadCredentials()
    {
        var provider = await Kit.RegisterAsync("google");
        var bridge = await Kit.CreateApiKeyAsync(["ws_bridge"], canReadCredentials: false);
        var (id, returned) = await Kit.ConnectAsync(provider, "ws_bridge", apiKey: bridge);
        Assert.Equal("active", returned["status"]);
        Assert.Equal(HttpStatusCode.OK, (await Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}", apiKey: bridge)).Status);
        var (status, problem) = await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}", apiKey: bridge);
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("credentials_not_readable", problem.GetProperty("code").GetString());
    }

    [Fact]
    public async Task ApiKeysAreShownOnceStoredHashedAndStopWorkingWhenRevoked()
    {
        var created = await fixture.Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/api-keys", new { name = "agent", workspaces = new[] { "ws_k" } }, HttpStatusCode.Created);
        var id = created.GetProperty("id").GetString()!;
        var key = created.GetProperty("api_key").GetString()!;
        Assert.StartsWith("nxk_", key);
        Assert.True(created.GetProperty("can_read_credentials").GetBoolean());
        var list = await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/api-keys");
        Assert.DoesNotContain(key, list.ToString());
        Assert.Contains(list.GetProperty("api_keys").EnumerateArray(), k => k.GetProperty("id").GetString() == id);

        Assert.Equal(HttpStatusCode.OK, (await Kit.SendAsync(HttpMethod.Get, "/v1/connections", apiKey: key)).Status);
        await fixture.Server.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/api-keys/{id}", expected: HttpStatusCode.NoContent);
        Assert.Equal("revoked", (await fixture.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/api-keys/{id}")).GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, (await Kit.SendAsync(HttpMethod.Get, "/v1/connections", apiKey: key)).Status);
    }

    [Theory]
    [InlineData("{\"name\":\"k\"}")]
    [InlineData("{\"name\":\"k\",\"workspaces\":[]}")]
    [InlineData("{\"name\":\"k\",\"workspaces\":[\"*\",\"a\"]}")]
    [InlineData("{\"name\":\"k\",\"workspaces\":[\"has space\"]}")]
    [InlineData("{\"workspaces\":[\"a\"]}")]
    public async Task AnApiKeyNeedsANameAndAnExplicitWorkspaceList(string json)
    {
        var request = fixture.Server.Admin(HttpMethod.Post, "/v1/admin/api-keys");
        request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await fixture.Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("validation_failed", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task TheWildcardKeyActsForEveryWorkspace()
    {
        var provider = await Kit.RegisterAsync("google");
        var all = await Kit.CreateApiKeyAsync(["*"]);
        var (id, _) = await Kit.ConnectAsync(provider, "ws_any_" + Guid.NewGuid().ToString("N")[..6]);
        Assert.Equal(HttpStatusCode.OK, (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}", apiKey: all)).Status);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-key-0123456789")]
    [InlineData("nxk_not-a-real-key")]
    public async Task TheGatewayRequiresAnApiKey(string? key)
    {
        foreach (var path in new[] { "/v1/connections", "/v1/token/conn_x", "/v1/connections/conn_x" })
        {
            var request = new HttpRequestMessage(HttpMethod.Get, path);
            if (key is not null)
            {
                request.Headers.Add("X-API-Key", key);
            }

            using var response = await fixture.Server.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }
    }

    [Theory]
    [InlineData("https://evil.example.test/oauth/return")]
    [InlineData("https://app.example.test.evil.test/oauth/return")]
    [InlineData("https://app.example.test/other")]
    [InlineData("https://app.example.test/oauthx")]
    [InlineData("https://app.example.test/oauth/%2e%2e/other")]
    [InlineData("https://app.example.test/oauth/%2E./other")]
    [InlineData("https://app.example.test/oauth/..%2Fother")]
    [InlineData("https://app.example.test/oauth/..%5cother")]
    [InlineData("https://app.example.test/oauth/../other")]
    [InlineData("http://app.example.test/oauth/return")]
    [InlineData("https://app.example.test/oauth/return#fragment")]
    [InlineData("https://user@app.example.test/oauth/return")]
    [InlineData("javascript:alert(1)")]
    [InlineData("/relative")]
    public async Task AReturnUrlOutsideTheAllowListIsRefusedAtRequestTime(string returnUrl)
    {
        var provider = await Kit.RegisterAsync("google");
        var (status, problem) = await Kit.SendAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_r", provider_name = provider, return_url = returnUrl });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("return_url_not_allowed", problem.GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("https://app.example.test/oauth/return?tab=connections")]
    [InlineData("https://other.example.test/anything")]
    [InlineData("https://other.example.test/files/a%2Fb")] // an origin entry has no prefix that an encoded slash could escape
    public async Task AReturnUrlUnderAnAllowedPrefixOrOriginIsAcceptedAndKeepsItsQuery(string returnUrl)
    {
        var provider = await Kit.RegisterAsync("google");
        var (status, _) = await Kit.SendAsync(HttpMethod.Post, "/v1/request-connection", new { workspace_id = "ws_r", provider_name = provider, return_url = returnUrl });
        Assert.Equal(HttpStatusCode.Created, status);
    }

    [Fact]
    public async Task TheBaseUrlOriginIsAlwaysAnAllowedReturnUrl()
    {
        var provider = await Kit.RegisterAsync("google");
        var (status, _) = await Kit.SendAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_r", provider_name = provider, return_url = fixture.Server.Issuer + "/done" });
        Assert.Equal(HttpStatusCode.Created, status);
    }

    [Theory]
    [InlineData("{\"workspace_id\":")]
    [InlineData("[1]")]
    [InlineData("{\"workspace_id\":\"w\",\"provider_name\":\"p\",\"return_url\":\"https://app.example.test/oauth/r\",\"surprise\":1}")]
    [InlineData("{\"workspace_id\":\"w\",\"provider_name\":\"p\",\"return_url\":\"https://app.example.test/oauth/r\",\"scopes\":\"read\"}")]
    [InlineData("null")]
    public async Task MalformedJsonIsAProblem(string json)
    {
        var request = Kit.Gateway(HttpMethod.Post, "/v1/request-connection");
        request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await fixture.Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("invalid_json", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("{\"provider_name\":\"p\",\"return_url\":\"https://app.example.test/oauth/r\"}", "workspace_id")]
    [InlineData("{\"workspace_id\":\"w\",\"return_url\":\"https://app.example.test/oauth/r\"}", "provider_name")]
    [InlineData("{\"workspace_id\":\"w\",\"provider_name\":\"p\"}", "return_url")]
    [InlineData("{\"workspace_id\":\"w\",\"provider_name\":\"p\",\"return_url\":\"https://app.example.test/oauth/r\",\"scopes\":[\"a b\"]}", "scopes")]
    public async Task MissingOrInvalidFieldsAreNamed(string json, string field)
    {
        var request = Kit.Gateway(HttpMethod.Post, "/v1/request-connection");
        request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await fixture.Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("validation_failed", problem.GetProperty("code").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _));
    }

    [Fact]
    public async Task AnUnknownProviderIsABadRequest()
    {
        var (status, problem) = await Kit.SendAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_u", provider_name = "no-such-provider", return_url = BrokerFixture.ReturnUrl });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("unknown_provider", problem.GetProperty("code").GetString());
    }

    [Fact]
    public async Task UnknownConnectionsAreNotFound()
    {
        Assert.Equal(HttpStatusCode.NotFound, (await Kit.SendAsync(HttpMethod.Get, "/v1/connections/conn_01HXYZ0000000000000000000")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await Kit.SendAsync(HttpMethod.Get, "/v1/token/conn_01HXYZ0000000000000000000")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await Kit.SendAsync(HttpMethod.Delete, "/v1/connections/conn_01HXYZ0000000000000000000")).Status);
    }
}
