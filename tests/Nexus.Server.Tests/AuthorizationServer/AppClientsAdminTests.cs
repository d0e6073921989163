using System.Net;
using System.Text;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.AuthorizationServer;

public sealed class AppClientsAdminTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    [Fact]
    public async Task CreatesClientAndShowsSecretOnlyOnce()
    {
        var created = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/clients",
            new { name = "Billing worker", scopes = new[] { "invoices:read" }, grant_types = new[] { "client_credentials" }, access_token_lifetime_seconds = 1200 },
            HttpStatusCode.Created);
        var id = created.GetProperty("client_id").GetString()!;
        var secret = created.GetProperty("client_secret").GetString()!;
        Assert.StartsWith("nxc_", id);
        Assert.StartsWith("nxs_", secret);
        // 32 random bytes in base64url: at least 256 bits of entropy.
        Assert.Equal(43, secret.Length - 4);
        Assert.Equal("active", created.GetProperty("status").GetString());
        Assert.Equal(1200, created.GetProperty("access_token_lifetime_seconds").GetInt32());

        var fetched = await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/clients/{id}");
        Assert.False(fetched.TryGetProperty("client_secret", out _));
        Assert.Equal("Billing worker", fetched.GetProperty("name").GetString());
        var list = await Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/clients");
        Assert.Contains(list.GetProperty("clients").EnumerateArray(), c => c.GetProperty("client_id").GetString() == id);
        Assert.DoesNotContain(secret, list.ToString());
    }

    [Fact]
    public async Task DefaultsToClientCredentialsAndOneHour()
    {
        var created = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/clients", new { name = "defaults" }, HttpStatusCode.Created);
        Assert.Equal(["client_credentials"], created.GetProperty("grant_types").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal(3600, created.GetProperty("access_token_lifetime_seconds").GetInt32());
        Assert.Empty(created.GetProperty("scopes").EnumerateArray());
    }

    [Fact]
    public async Task PatchChangesOnlyGivenFieldsAndTakesEffectAtTheTokenEndpoint()
    {
        var (id, secret) = await Server.CreateAppClientAsync(["a", "b"]);
        var patched = await Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/clients/{id}", new { scopes = new[] { "a" } });
        Assert.Equal("test client", patched.GetProperty("name").GetString());
        Assert.Equal(["a"], patched.GetProperty("scopes").EnumerateArray().Select(e => e.GetString()!).ToArray());
        using var response = await Server.RequestTokenAsync(id, secret, "b");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("invalid_scope", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task DeleteRevokesAndKeepsTheRecord()
    {
        var (id, _) = await Server.CreateAppClientAsync();
        await Server.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/clients/{id}", expected: HttpStatusCode.NoContent);
        var fetched = await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/clients/{id}");
        Assert.Equal("revoked", fetched.GetProperty("status").GetString());
        await Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/clients/{id}/secret", expected: HttpStatusCode.Conflict);
        await Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/clients/{id}", new { name = "x" }, HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task UnknownClientIsNotFound()
    {
        await Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/clients/nxc_nope", expected: HttpStatusCode.NotFound);
        await Server.AdminJsonAsync(HttpMethod.Delete, "/v1/admin/clients/nxc_nope", expected: HttpStatusCode.NotFound);
        await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/clients/nxc_nope/secret", expected: HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("{\"name\":\"\"}", "name")]
    [InlineData("{\"scopes\":[\"a\"]}", "name")]
    [InlineData("{\"name\":\"x\",\"scopes\":[\"has space\"]}", "scopes")]
    [InlineData("{\"name\":\"x\",\"scopes\":[\"quo\\\"te\"]}", "scopes")]
    [InlineData("{\"name\":\"x\",\"grant_types\":[\"password\"]}", "grant_types")]
    [InlineData("{\"name\":\"x\",\"grant_types\":[]}", "grant_types")]
    [InlineData("{\"name\":\"x\",\"access_token_lifetime_seconds\":5}", "access_token_lifetime_seconds")]
    [InlineData("{\"name\":\"x\",\"access_token_lifetime_seconds\":99999999}", "access_token_lifetime_seconds")]
    public async Task RejectsInvalidFieldsWithProblemDetails(string json, string field)
    {
        using var response = await Send(json);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("validation_failed", problem.GetProperty("code").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _));
    }

    [Theory]
    [InlineData("{\"name\":")]
    [InlineData("[1,2]")]
    [InlineData("{\"name\":\"x\",\"unknown_field\":1}")]
    [InlineData("{\"name\":\"x\",\"access_token_lifetime_seconds\":\"soon\"}")]
    [InlineData("null")]
    [InlineData("")]
    public async Task RejectsMalformedJsonWithProblemDetails(string json)
    {
        using var response = await Send(json);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task RejectsNonJsonContentType()
    {
        using var response = await Send("name=x", "text/plain");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-key-0123456789")]
    public async Task AdminApiRequiresTheApiKey(string? key)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/v1/admin/clients");
        if (key is not null)
        {
            request.Headers.Add("X-API-Key", key);
        }

        using var response = await Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    private Task<HttpResponseMessage> Send(string body, string contentType = "application/json")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/admin/clients") { Content = new StringContent(body, Encoding.UTF8, contentType) };
        request.Headers.Add("X-API-Key", Server.ApiKey);
        return Server.Http.SendAsync(request);
    }
}

public sealed class AdminApiDisabledTests
{
    [Fact]
    public async Task AdminApiIsDisabledWithoutApiKey()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["API_KEY"] = null);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/admin/clients");
        request.Headers.Add("X-API-Key", "anything-at-all-123");
        using var response = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("admin_api_disabled", await response.Content.ReadAsStringAsync());
    }
}
