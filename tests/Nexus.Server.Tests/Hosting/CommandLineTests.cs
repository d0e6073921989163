using System.Diagnostics;
using System.Net;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>The maintenance commands, run as a real process the way an operator runs them.</summary>
public sealed class CommandLineTests
{
    [Fact]
    public async Task MigrateAndReencryptWorkAgainstTheSameDatabaseAsTheServer()
    {
        await using var db = await TestDatabase.CreateAsync();
        var keyA = NexusTestServer.NewEncryptionKey();
        var keyB = NexusTestServer.NewEncryptionKey();

        var migrate = await NexusProcess.RunAsync(db, new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = keyA }, "migrate");
        Assert.True(migrate.ExitCode == 0, migrate.Output);
        Assert.Contains("up to date", migrate.Output);

        string id, secret;
        await using (var server = await NexusTestServer.StartAsync(db, s => s["ENCRYPTION_KEY"] = keyA))
        {
            (id, secret) = await server.CreateAppClientAsync();
        }

        var reencrypt = await NexusProcess.RunAsync(db, new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = keyB, ["PREVIOUS_ENCRYPTION_KEYS"] = keyA }, "keys", "reencrypt");
        Assert.True(reencrypt.ExitCode == 0, reencrypt.Output);
        // The secret-hash key, the broker's state key, the two signing keys and the Data Protection key.
        Assert.Contains("Re-encrypted 5 value(s)", reencrypt.Output);

        var rotate = await NexusProcess.RunAsync(db, new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = keyB }, "keys", "rotate-signing");
        Assert.True(rotate.ExitCode == 0, rotate.Output);
        Assert.Contains("ES256", rotate.Output);

        await using var after = await NexusTestServer.StartAsync(db, s => s["ENCRYPTION_KEY"] = keyB);
        Assert.Equal(HttpStatusCode.OK, (await after.RequestTokenAsync(id, secret)).StatusCode);
        var keys = await after.AdminJsonAsync(HttpMethod.Get, "/v1/admin/signing-keys");
        Assert.Equal(4, keys.GetProperty("keys").GetArrayLength());
    }

    [Fact]
    public async Task ExplainsMissingProductionKeyAndBadConfigurationWithoutAStackTrace()
    {
        await using var db = await TestDatabase.CreateAsync();
        var noKey = await NexusProcess.RunAsync(db, new Dictionary<string, string?>(), "migrate");
        Assert.Equal(1, noKey.ExitCode);
        Assert.Contains("ENCRYPTION_KEY is required in Production", noKey.Output);
        Assert.DoesNotContain("   at ", noKey.Output);

        var badUrl = await NexusProcess.RunAsync(db, new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey(), ["BASE_URL"] = "nope" }, "migrate");
        Assert.Equal(1, badUrl.ExitCode);
        Assert.Contains("BASE_URL must be an absolute http(s) URL", badUrl.Output);

        var unknown = await NexusProcess.RunAsync(db, new Dictionary<string, string?>(), "frobnicate");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("Usage", unknown.Output);
    }
}
