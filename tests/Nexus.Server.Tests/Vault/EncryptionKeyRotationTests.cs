using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.Infrastructure;
using Nexus.Server.Vault;

namespace Nexus.Server.Tests.Vault;

public sealed class EncryptionKeyRotationTests
{
    [Fact]
    public async Task ReEncryptionMovesEverythingToTheNewKeyWithoutLoss()
    {
        await using var db = await TestDatabase.CreateAsync();
        var keyA = NexusTestServer.NewEncryptionKey();
        var keyB = NexusTestServer.NewEncryptionKey();
        string id, secret, token, issuer, apiKey;

        await using (var first = await NexusTestServer.StartAsync(db, s => s["ENCRYPTION_KEY"] = keyA))
        {
            (id, secret) = await first.CreateAppClientAsync();
            token = await first.IssueTokenAsync(id, secret);
            issuer = first.Issuer;
            apiKey = first.ApiKey;
        }

        void Same(Dictionary<string, string?> s)
        {
            s["BASE_URL"] = issuer;
            s["API_KEY"] = apiKey;
        }

        await using (var rotating = await NexusTestServer.StartAsync(db, s =>
        {
            Same(s);
            s["ENCRYPTION_KEY"] = keyB;
            s["PREVIOUS_ENCRYPTION_KEYS"] = keyA;
        }))
        {
            Assert.Equal(HttpStatusCode.OK, (await rotating.RequestTokenAsync(id, secret)).StatusCode);
            var moved = await rotating.Services.GetRequiredService<ReEncryptor>().ReEncryptAllAsync();
            Assert.True(moved >= 3, $"expected the hash key and both signing keys to move, moved {moved}");
            Assert.Equal(0, await rotating.Services.GetRequiredService<ReEncryptor>().ReEncryptAllAsync());
        }

        await using (var after = await NexusTestServer.StartAsync(db, s =>
        {
            Same(s);
            s["ENCRYPTION_KEY"] = keyB;
        }))
        {
            // The old key is gone; the client secret, the signing keys and tokens they signed still work.
            Assert.Equal(HttpStatusCode.OK, (await after.RequestTokenAsync(id, secret)).StatusCode);
            var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/me");
            request.Headers.Authorization = new("Bearer", token);
            Assert.Equal(HttpStatusCode.OK, (await after.Http.SendAsync(request)).StatusCode);
        }

        // And Nexus holding only the retired key refuses to start, naming the key it lacks.
        var (exitCode, output) = await NexusProcess.RunAsync(db, new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = keyA }, "migrate");
        Assert.Equal(1, exitCode);
        Assert.Contains("PREVIOUS_ENCRYPTION_KEYS", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoredTokensAndProviderSecretsMoveToANewEncryptionKeyWithoutLoss()
    {
        await using var fake = await FakeOAuthProvider.StartAsync();
        await using var db = await TestDatabase.CreateAsync();
        var keyA = NexusTestServer.NewEncryptionKey();
        var keyB = NexusTestServer.NewEncryptionKey();
        string provider, connectionId, accessToken;
        static void Settings(Dictionary<string, string?> s, string key, string? previous)
        {
            s["ALLOWED_RETURN_URLS"] = BrokerFixture.ReturnUrl;
            s["ENCRYPTION_KEY"] = key;
            s["PREVIOUS_ENCRYPTION_KEYS"] = previous;
        }

        await using (var first = await NexusTestServer.StartAsync(db, s => Settings(s, keyA, null)))
        {
            using var kit = new BrokerKit(first, fake);
            provider = await kit.RegisterAsync("google");
            (connectionId, _) = await kit.ConnectAsync(provider);
            accessToken = (await kit.SendAsync(HttpMethod.Get, $"/v1/token/{connectionId}")).Body.GetProperty("credentials").GetProperty("access_token").GetString()!;
        }

        await using (var rotating = await NexusTestServer.StartAsync(db, s => Settings(s, keyB, keyA)))
        {
            var moved = await rotating.Services.GetRequiredService<ReEncryptor>().ReEncryptAllAsync();
            // Hash key, state key, two signing keys, the provider's client secret, the access and refresh tokens.
            Assert.True(moved >= 7, $"moved {moved}");
        }

        await using var after = await NexusTestServer.StartAsync(db, s => Settings(s, keyB, null));
        using var afterKit = new BrokerKit(after, fake);
        var token = (await afterKit.SendAsync(HttpMethod.Get, $"/v1/token/{connectionId}")).Body;
        Assert.Equal(accessToken, token.GetProperty("credentials").GetProperty("access_token").GetString());
        // The provider's client secret still authenticates a new exchange, and deletion still revokes upstream.
        var (_, returned) = await afterKit.ConnectAsync(provider);
        Assert.Equal("active", returned["status"]);
        Assert.Equal(HttpStatusCode.NoContent, (await afterKit.SendAsync(HttpMethod.Delete, $"/v1/connections/{connectionId}")).Status);
        Assert.Contains(fake.Revocations, r => r.Token == accessToken);
    }
}
