using System.Net;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.AuthorizationServer;

public sealed class DiscoveryTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Theory]
    [InlineData("/.well-known/oauth-authorization-server")]
    [InlineData("/.well-known/openid-configuration")]
    public async Task PublishesMetadataWhoseEndpointsWork(string path)
    {
        var server = fixture.Server;
        var metadata = JsonDocument.Parse(await server.Http.GetStringAsync(path)).RootElement;
        // RFC 8414 §3.3: the issuer is the deployment's own.
        Assert.Equal(server.BaseUrl, metadata.GetProperty("issuer").GetString());
        Assert.Equal(server.BaseUrl + "/oauth2/token", metadata.GetProperty("token_endpoint").GetString());
        Assert.Contains("client_credentials", metadata.GetProperty("grant_types_supported").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["client_secret_basic", "client_secret_post", "none"], metadata.GetProperty("token_endpoint_auth_methods_supported").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal(["S256"], metadata.GetProperty("code_challenge_methods_supported").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.True(metadata.GetProperty("authorization_response_iss_parameter_supported").GetBoolean());
        // OpenID Connect Discovery §3: omitted, request_uri_parameter_supported would mean true.
        Assert.False(metadata.GetProperty("request_parameter_supported").GetBoolean());
        Assert.False(metadata.GetProperty("request_uri_parameter_supported").GetBoolean());
        foreach (var endpoint in new[] { "authorization_endpoint", "userinfo_endpoint", "introspection_endpoint", "revocation_endpoint", "end_session_endpoint" })
        {
            Assert.StartsWith(server.BaseUrl + "/oauth2/", metadata.GetProperty(endpoint).GetString());
        }

        var jwks = JsonDocument.Parse(await server.Http.GetStringAsync(metadata.GetProperty("jwks_uri").GetString())).RootElement;
        var keys = jwks.GetProperty("keys").EnumerateArray().ToList();
        Assert.Contains(keys, k => k.GetProperty("alg").GetString() == "ES256" && k.GetProperty("kty").GetString() == "EC");
        Assert.Contains(keys, k => k.GetProperty("alg").GetString() == "RS256" && k.GetProperty("kty").GetString() == "RSA");
        // Public halves only.
        Assert.DoesNotContain(keys, k => k.TryGetProperty("d", out _) || k.TryGetProperty("p", out _));
    }

    [Fact]
    public async Task MetadataCarriesAnETagAndAMatchingIfNoneMatchIsAnswered304()
    {
        var server = fixture.Server;
        using var first = await server.Http.GetAsync("/.well-known/openid-configuration");
        var etag = first.Headers.ETag;
        Assert.NotNull(etag);
        Assert.Equal("public, max-age=300", first.Headers.CacheControl?.ToString());
        using var conditional = new HttpRequestMessage(HttpMethod.Get, "/.well-known/openid-configuration");
        conditional.Headers.TryAddWithoutValidation("If-None-Match", $"\"other\", W/{etag.Tag}");
        using var notModified = await server.Http.SendAsync(conditional);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        Assert.Empty(await notModified.Content.ReadAsByteArrayAsync());
        using var stale = new HttpRequestMessage(HttpMethod.Get, "/.well-known/openid-configuration");
        stale.Headers.TryAddWithoutValidation("If-None-Match", "\"other\"");
        using var full = await server.Http.SendAsync(stale);
        Assert.Equal(HttpStatusCode.OK, full.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await full.Content.ReadAsStringAsync());
    }
}
