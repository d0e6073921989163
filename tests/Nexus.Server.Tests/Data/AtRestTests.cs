using System.Text;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Data;

/// <summary>What the database holds must be useless to someone who copies it.</summary>
public sealed class AtRestTests
{
    [Fact]
    public async Task DatabaseHoldsNoPlaintextSecrets()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        var (id, secret) = await server.CreateAppClientAsync();
        var rotated = (await server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/clients/{id}/secret")).GetProperty("client_secret").GetString()!;
        var token = await server.IssueTokenAsync(id, rotated);

        var rows = await db.DumpAllRowsAsync();
        Assert.Contains(id, rows); // the scan does see the data
        var raw = Encoding.Latin1.GetString(db.RawSqliteBytes());
        foreach (var plaintext in new[] { secret, rotated, token, server.EncryptionKey, server.ApiKey, secret["nxs_".Length..] })
        {
            Assert.DoesNotContain(plaintext, rows, StringComparison.Ordinal);
            Assert.DoesNotContain(plaintext, raw, StringComparison.Ordinal);
        }

        // Private signing keys are stored only as ciphertext: no PKCS#8 or PEM structure is visible.
        Assert.DoesNotContain("PRIVATE KEY", rows, StringComparison.Ordinal);
        Assert.DoesNotContain("\"d\":", rows, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ADatabaseFileNexusCreatesIsReadableByItsOwnerAloneAndSoIsItsJournal()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // Unix file modes
        }

        await using var db = await TestDatabase.CreateAsync(admin: null);
        Assert.False(File.Exists(db.SqliteFile));
        var probe = Path.Combine(db.DataDirectory, "probe");
        await File.WriteAllTextAsync(probe, "");
        Assert.SkipWhen((File.GetUnixFileMode(probe) & UnixFileMode.OtherRead) == 0, "The umask makes every new file private already: nothing to tell apart.");
        await using var server = await NexusTestServer.StartAsync(db);
        await server.CreateAppClientAsync();

        // Created before SQLite would create it with the umask (0644 as a rule); SQLite gives the WAL the database's mode.
        var owner = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        Assert.Equal(owner, File.GetUnixFileMode(db.SqliteFile));
        Assert.Equal(owner, File.GetUnixFileMode(db.SqliteFile + "-wal"));
    }
}
