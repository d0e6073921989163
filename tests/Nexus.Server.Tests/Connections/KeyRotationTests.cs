using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.Infrastructure;
using Nexus.Server.Vault;

namespace Nexus.Server.Tests.Connections;

public sealed class KeyRotationTests
{
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
