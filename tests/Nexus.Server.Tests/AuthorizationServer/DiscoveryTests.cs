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
}
