using System.Net;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>POST /oauth2/introspect (RFC 7662) over HTTP.</summary>
public sealed class IntrospectionTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    [Theory]
    [InlineData("refresh_token")]
    [InlineData("access_token")]
    [InlineData(null)]
    public async Task EachTokenIsFoundWhateverTheHint(string? hint)
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();

        // RFC 7662 §2.1: a token not found as the hinted type is looked for as the other.
        var access = await IntrospectAsync(Server, clientId, secret!, tokens.GetProperty("access_token").GetString()!, hint);
        Assert.True(access.GetProperty("active").GetBoolean());
        Assert.Equal("Bearer", access.GetProperty("token_type").GetString());

        var refresh = await IntrospectAsync(Server, clientId, secret!, tokens.GetProperty("refresh_token").GetString()!, hint);
        Assert.True(refresh.GetProperty("active").GetBoolean());
        Assert.Equal("refresh_token", refresh.GetProperty("token_type").GetString());
        Assert.Equal(clientId, refresh.GetProperty("client_id").GetString());
    }

    [Fact]
    public async Task AnAccessTokenIsInactiveFromItsExpiryByTheServersClockWithoutTheResourceServersSkew()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        var (clientId, secret) = await server.CreateAppClientAsync(lifetime: 300);
        var (_, issued) = await TokenAsync(server, clientId, secret, ("grant_type", "client_credentials"));
        var token = issued.GetProperty("access_token").GetString()!;
        Assert.True((await IntrospectAsync(server, clientId, secret, token)).GetProperty("active").GetBoolean());

        // RFC 7662 §2.2: 10 s past exp is inactive, though a resource server's 30 s of clock skew would still take it.
        server.Time.Advance(TimeSpan.FromSeconds(310));
        var answer = await IntrospectAsync(server, clientId, secret, token);
        Assert.False(answer.GetProperty("active").GetBoolean());
        Assert.Single(answer.EnumerateObject());
    }

    [Fact]
    public async Task APublicClientMayNotIntrospectEvenItsOwnTokens()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server, type: "public");
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, null);
        browser.Dispose();
        var access = tokens.GetProperty("access_token").GetString()!;

        // RFC 7662 §2.1: introspection requires authorization; a public client has no secret to authenticate with.
        var byId = new HttpRequestMessage(HttpMethod.Post, "/oauth2/introspect")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = access, ["client_id"] = clientId }),
        };
        var byEmptyBasic = TokenFormRequest("/oauth2/introspect", clientId, "", access);
        foreach (var request in new[] { byId, byEmptyBasic })
        {
            using var response = await Server.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.StartsWith("Basic", response.Headers.WwwAuthenticate.ToString());
            var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("invalid_client", body.GetProperty("error").GetString());
            Assert.False(body.TryGetProperty("active", out _));
        }

        // Discovery says as much.
        var metadata = JsonDocument.Parse(await Server.Http.GetStringAsync("/.well-known/oauth-authorization-server")).RootElement;
        Assert.DoesNotContain("none", metadata.GetProperty("introspection_endpoint_auth_methods_supported").EnumerateArray().Select(m => m.GetString()));
    }

    [Fact]
    public async Task TheTokensOfARevokedApplicationAreInactiveRefreshTokensToo()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();
        var access = tokens.GetProperty("access_token").GetString()!;
        var refresh = tokens.GetProperty("refresh_token").GetString()!;
        var (resourceServerId, resourceServerSecret) = await Server.CreateAppClientAsync(["nexus:introspect"]);
        Assert.True((await IntrospectAsync(Server, resourceServerId, resourceServerSecret, access)).GetProperty("active").GetBoolean());
        Assert.True((await IntrospectAsync(Server, resourceServerId, resourceServerSecret, refresh)).GetProperty("active").GetBoolean());

        await Server.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/applications/{clientId}", expected: HttpStatusCode.NoContent);

        foreach (var hint in new string?[] { null, "refresh_token" })
        {
            Assert.False((await IntrospectAsync(Server, resourceServerId, resourceServerSecret, access, hint)).GetProperty("active").GetBoolean());
            Assert.False((await IntrospectAsync(Server, resourceServerId, resourceServerSecret, refresh, hint)).GetProperty("active").GetBoolean());
        }
    }
}
