using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.AuthorizationServer;

public sealed class SigningKeyRotationTests
{
    [Fact]
    public async Task RotationKeepsOldTokensValidUntilTheyExpire()
    {
        await using var db = await TestDatabase.CreateAsync();
        var time = new OffsetTimeProvider();
        await using var server = await NexusTestServer.StartAsync(db, s =>
        {
            s["Nexus:MaxAccessTokenLifetimeSeconds"] = "3600";
            s["Nexus:SigningKeyOverlapSeconds"] = "3600";
        }, time: time);
        var (id, secret) = await server.CreateAppClientAsync(lifetime: 3600);
        var before = await server.IssueTokenAsync(id, secret);
        var oldKid = new JsonWebToken(before).Kid;

        var rotated = await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/signing-keys/rotate");
        Assert.Equal(2, rotated.GetProperty("keys").GetArrayLength());

        var after = await server.IssueTokenAsync(id, secret);
        Assert.NotEqual(oldKid, new JsonWebToken(after).Kid);

        var kids = await KidsAsync(server);
        Assert.Contains(oldKid, kids);
        Assert.Contains(new JsonWebToken(after).Kid, kids);
        Assert.True((await AccessTokenTests.ValidateWithIdentityModelAsync(server, before)).IsValid);
        Assert.Equal(HttpStatusCode.OK, (await MeAsync(server, before)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await MeAsync(server, after)).StatusCode);

        var listed = await server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/signing-keys");
        Assert.Contains(listed.GetProperty("keys").EnumerateArray(), k => k.GetProperty("kid").GetString() == oldKid && k.GetProperty("status").GetString() == "retired");

        // Past the overlap window the retired key leaves the JWKS; every token it signed has expired by then.
        time.Advance(TimeSpan.FromHours(1) + TimeSpan.FromMinutes(1));
        await server.Services.GetRequiredService<SigningKeys>().ReloadAsync();
        Assert.DoesNotContain(oldKid, await KidsAsync(server));
        Assert.Equal(HttpStatusCode.Unauthorized, (await MeAsync(server, before)).StatusCode);
    }

    [Fact]
    public async Task TheJwksCarriesAnETagThatAnswers304UntilARotationChangesIt()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        using var first = await server.Http.GetAsync("/oauth2/jwks");
        var etag = first.Headers.ETag;
        Assert.NotNull(etag);
        Assert.False(etag.IsWeak);
        Assert.Equal("application/json", first.Content.Headers.ContentType?.MediaType);
        Assert.Equal(etag, (await server.Http.GetAsync("/.well-known/jwks.json")).Headers.ETag);

        // RFC 9110 §13.1.2: a matching If-None-Match is answered 304 without a body.
        using var conditional = new HttpRequestMessage(HttpMethod.Get, "/oauth2/jwks");
        conditional.Headers.IfNoneMatch.Add(etag);
        using var notModified = await server.Http.SendAsync(conditional);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        Assert.Empty(await notModified.Content.ReadAsByteArrayAsync());
        Assert.Equal(etag, notModified.Headers.ETag);

        await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/signing-keys/rotate");
        using var again = new HttpRequestMessage(HttpMethod.Get, "/oauth2/jwks");
        again.Headers.IfNoneMatch.Add(etag);
        using var changed = await server.Http.SendAsync(again);
        Assert.Equal(HttpStatusCode.OK, changed.StatusCode);
        Assert.NotEqual(etag, changed.Headers.ETag);
        var keysBefore = JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement.GetProperty("keys").GetArrayLength();
        Assert.True(JsonDocument.Parse(await changed.Content.ReadAsStringAsync()).RootElement.GetProperty("keys").GetArrayLength() > keysBefore);
    }

    [Fact]
    public async Task ARetiredKeyStaysPublishedForTheTokensAnotherInstanceSignedWithItBeforeItReadTheRotation()
    {
        await using var db = await TestDatabase.CreateAsync();
        var time = new OffsetTimeProvider();
        void Configure(Dictionary<string, string?> s)
        {
            s["Nexus:MaxAccessTokenLifetimeSeconds"] = "3600";
            s["Nexus:SigningKeyOverlapSeconds"] = "3600";
            s["Nexus:SigningKeyRefreshSeconds"] = "300";
        }

        await using var first = await NexusTestServer.StartAsync(db, Configure, time: time);
        await using var second = await NexusTestServer.StartAsync(db, s =>
        {
            Configure(s);
            s["BASE_URL"] = first.Issuer;
            s["ENCRYPTION_KEY"] = first.EncryptionKey;
            s["API_KEY"] = first.ApiKey;
        }, time: time);
        var (id, secret) = await first.CreateAppClientAsync(lifetime: 3600);
        var oldKid = new JsonWebToken(await first.IssueTokenAsync(id, secret)).Kid;
        await first.AdminJsonAsync(HttpMethod.Post, "/v1/admin/signing-keys/rotate");

        // The second instance has not read the rotation yet (it reads the keys every 300 s): it still signs with the old key.
        time.Advance(TimeSpan.FromSeconds(200));
        var late = await second.IssueTokenAsync(id, secret);
        Assert.Equal(oldKid, new JsonWebToken(late).Kid);

        // Past the overlap counted from the rotation, before the token's expiry: its key is still published.
        time.Advance(TimeSpan.FromSeconds(3600 - 200 + 100));
        await first.Services.GetRequiredService<SigningKeys>().ReloadAsync();
        Assert.Contains(oldKid, await KidsAsync(first));
        Assert.Equal(HttpStatusCode.OK, (await MeAsync(first, late)).StatusCode);
    }

    [Fact]
    public async Task AnotherInstanceVerifiesTokensSignedWithAKeyRotatedElsewhere()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var first = await NexusTestServer.StartAsync(db);
        await using var second = await NexusTestServer.StartAsync(db, s =>
        {
            s["BASE_URL"] = first.Issuer;
            s["ENCRYPTION_KEY"] = first.EncryptionKey;
            s["API_KEY"] = first.ApiKey;
        });
        var (id, secret) = await first.CreateAppClientAsync();
        await first.AdminJsonAsync(HttpMethod.Post, "/v1/admin/signing-keys/rotate");
        var token = await first.IssueTokenAsync(id, secret);
        Assert.Equal(HttpStatusCode.OK, (await MeAsync(second, token)).StatusCode);
    }

    private static async Task<List<string>> KidsAsync(NexusTestServer server) =>
        JsonDocument.Parse(await server.Http.GetStringAsync("/oauth2/jwks")).RootElement.GetProperty("keys").EnumerateArray()
            .Select(k => k.GetProperty("kid").GetString()!).ToList();

    private static Task<HttpResponseMessage> MeAsync(NexusTestServer server, string token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/me");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return server.Http.SendAsync(request);
    }
}
