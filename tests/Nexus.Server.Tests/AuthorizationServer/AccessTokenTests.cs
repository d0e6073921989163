using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>Access tokens verified by an independent JWT library and accepted or refused by GET /api/v1/me.</summary>
public sealed class AccessTokenTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    internal static async Task<TokenValidationResult> ValidateWithIdentityModelAsync(NexusTestServer server, string token, string? audience = null)
    {
        var jwks = new JsonWebKeySet(await server.Http.GetStringAsync("/oauth2/jwks"));
        return await new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = server.Issuer,
            ValidAudience = audience ?? server.Issuer,
            IssuerSigningKeys = jwks.GetSigningKeys(),
            ValidTypes = ["at+jwt"],
            ValidAlgorithms = ["ES256", "RS256"],
        });
    }

    [Fact]
    public async Task NoTokenOutlivesAMaximumLifetimeTheOperatorLoweredAfterTheClientChoseALongerOne()
    {
        await using var db = await TestDatabase.CreateAsync();
        string id, secret, key;
        await using (var before = await NexusTestServer.StartAsync(db, s => s["Nexus:MaxAccessTokenLifetimeSeconds"] = "7200"))
        {
            (id, secret) = await before.CreateAppClientAsync(lifetime: 7200);
            key = before.EncryptionKey;
        }

        await using var server = await NexusTestServer.StartAsync(db, s =>
        {
            s["Nexus:MaxAccessTokenLifetimeSeconds"] = "3600";
            s["ENCRYPTION_KEY"] = key;
        });
        var token = new JsonWebToken(await server.IssueTokenAsync(id, secret));
        Assert.Equal(3600, (token.ValidTo - token.IssuedAt).TotalSeconds);
    }

    [Fact]
    public async Task ATokenIssuedForLongerThanTheMaximumTheOperatorLoweredSinceIsNoLongerAccepted()
    {
        // The revocation list remembers a revoked grant only for the current maximum (plus an hour): a token issued for
        // longer would come back to life after that.
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:MaxAccessTokenLifetimeSeconds"] = "7200");
        var (id, secret) = await server.CreateAppClientAsync(lifetime: 7200);
        var token = await server.IssueTokenAsync(id, secret);
        Assert.True((await OAuthAppHelpers.IntrospectAsync(server, id, secret, token)).GetProperty("active").GetBoolean());

        // The operator lowers the maximum (a restart with the new setting; the same instance here, so that the issuer,
        // its port included, stays the same).
        server.Services.GetRequiredService<Nexus.Server.Hosting.NexusOptions>().MaxAccessTokenLifetimeSeconds = 3600;

        Assert.False((await OAuthAppHelpers.IntrospectAsync(server, id, secret, token)).GetProperty("active").GetBoolean());
        Assert.True((await OAuthAppHelpers.IntrospectAsync(server, id, secret, await server.IssueTokenAsync(id, secret))).GetProperty("active").GetBoolean());
    }

    [Fact]
    public async Task TokenVerifiesAgainstJwksWithStandardLibraryAndCarriesRfc9068Claims()
    {
        var (id, secret) = await Server.CreateAppClientAsync(["read", "write"], lifetime: 600);
        var token = await Server.IssueTokenAsync(id, secret, "read");

        var result = await ValidateWithIdentityModelAsync(Server, token);
        Assert.True(result.IsValid, result.Exception?.ToString());
        var jwt = (JsonWebToken)result.SecurityToken;
        Assert.Equal("at+jwt", jwt.Typ);
        Assert.Equal("ES256", jwt.Alg);
        Assert.Equal(Server.BaseUrl, jwt.Issuer);
        Assert.Equal(id, jwt.Subject);
        Assert.Equal([Server.BaseUrl], jwt.Audiences);
        Assert.Equal(id, jwt.GetClaim("client_id").Value);
        Assert.Equal("read", jwt.GetClaim("scope").Value);
        Assert.False(string.IsNullOrEmpty(jwt.Id));
        Assert.Equal(600, (jwt.ValidTo - jwt.IssuedAt).TotalSeconds);
        Assert.NotNull(jwt.Kid);
    }

    [Fact]
    public async Task TokensHaveUniqueIds()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        var a = new JsonWebToken(await Server.IssueTokenAsync(id, secret));
        var b = new JsonWebToken(await Server.IssueTokenAsync(id, secret));
        Assert.NotEqual(a.Id, b.Id);
    }

    [Fact]
    public async Task MeReturnsSubjectAndScopesForValidToken()
    {
        var (id, secret) = await Server.CreateAppClientAsync(["read", "write"]);
        var token = await Server.IssueTokenAsync(id, secret);
        using var response = await Get(token);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(id, body.GetProperty("sub").GetString());
        Assert.Equal(["read", "write"], body.GetProperty("scopes").EnumerateArray().Select(e => e.GetString()!).ToArray());
    }

    [Fact]
    public async Task MeChallengesRequestWithoutToken()
    {
        using var response = await Server.Http.GetAsync("/api/v1/me");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var challenge = response.Headers.WwwAuthenticate.Single();
        Assert.Equal("Bearer", challenge.Scheme);
        Assert.DoesNotContain("error=", challenge.Parameter);
    }

    [Fact]
    public async Task MeRejectsTamperedToken()
    {
        var (id, secret) = await Server.CreateAppClientAsync(["read"]);
        var token = await Server.IssueTokenAsync(id, secret);
        var parts = token.Split('.');
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1])).Replace("\"read\"", "\"admin\"", StringComparison.Ordinal);
        var tampered = $"{parts[0]}.{Base64UrlEncoder.Encode(payload)}.{parts[2]}";
        await AssertInvalidTokenAsync(tampered);

        // A signature from another token does not transfer either.
        var other = await Server.IssueTokenAsync(id, secret);
        await AssertInvalidTokenAsync($"{parts[0]}.{parts[1]}.{other.Split('.')[2]}");
        await AssertInvalidTokenAsync("not.a.jwt");
        await AssertInvalidTokenAsync("garbage");
    }

    [Fact]
    public async Task MeRejectsUnsignedToken()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        var parts = (await Server.IssueTokenAsync(id, secret)).Split('.');
        var none = Base64UrlEncoder.Encode("{\"alg\":\"none\",\"typ\":\"at+jwt\"}");
        await AssertInvalidTokenAsync($"{none}.{parts[1]}.");
    }

    [Fact]
    public async Task MeRejectsExpiredToken()
    {
        await using var db = await TestDatabase.CreateAsync();
        var time = new OffsetTimeProvider();
        await using var server = await NexusTestServer.StartAsync(db, time: time);
        var (id, secret) = await server.CreateAppClientAsync(lifetime: 60);
        var token = await server.IssueTokenAsync(id, secret);
        using (var ok = await Get(token, server))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        time.Advance(TimeSpan.FromMinutes(2));
        await AssertInvalidTokenAsync(token, server, "expired");
    }

    [Fact]
    public async Task MeRejectsTokenForAnotherAudience()
    {
        // Two instances of one deployment (same database, keys and issuer); the first issues tokens for another API.
        await using var db = await TestDatabase.CreateAsync();
        await using var api = await NexusTestServer.StartAsync(db);
        await using var issuing = await NexusTestServer.StartAsync(db, s =>
        {
            s["Nexus:AccessTokenAudience"] = "https://other-api.example";
            s["BASE_URL"] = api.Issuer;
            s["ENCRYPTION_KEY"] = api.EncryptionKey;
        });
        var (id, secret) = await issuing.CreateAppClientAsync();
        var token = await issuing.IssueTokenAsync(id, secret);
        Assert.True((await ValidateWithIdentityModelAsync(issuing, token, "https://other-api.example")).IsValid);
        using (var ok = await Get(await api.IssueTokenAsync(id, secret), api))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        await AssertInvalidTokenAsync(token, api, "aud");
    }

    [Fact]
    public async Task MeRejectsTokenOfRevokedClient()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        var token = await Server.IssueTokenAsync(id, secret);
        await Server.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/clients/{id}", expected: HttpStatusCode.NoContent);
        await AssertInvalidTokenAsync(token, expectedInDescription: "revoked");
    }

    [Fact]
    public async Task MeRejectsTokenFromAnotherNexus()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var stranger = await NexusTestServer.StartAsync(db);
        var (id, secret) = await stranger.CreateAppClientAsync();
        await AssertInvalidTokenAsync(await stranger.IssueTokenAsync(id, secret));
    }

    private Task<HttpResponseMessage> Get(string token, NexusTestServer? server = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/me");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return (server ?? Server).Http.SendAsync(request);
    }

    private async Task AssertInvalidTokenAsync(string token, NexusTestServer? server = null, string? expectedInDescription = null)
    {
        using var response = await Get(token, server);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var challenge = response.Headers.WwwAuthenticate.Single();
        Assert.Equal("Bearer", challenge.Scheme);
        Assert.Contains("error=\"invalid_token\"", challenge.Parameter);
        if (expectedInDescription is not null)
        {
            Assert.Contains(expectedInDescription, challenge.Parameter, StringComparison.OrdinalIgnoreCase);
        }

        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}
