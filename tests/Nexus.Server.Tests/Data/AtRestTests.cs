using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
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

    [Fact]
    public async Task ADatabaseFileOthersCanReadIsKeptAsItIsAndTheServerWarnsWithTheCommandThatMakesItPrivate()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // Unix file modes
        }

        await using var db = await TestDatabase.CreateAsync(admin: null);
        var open = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        await File.WriteAllBytesAsync(db.SqliteFile, []);
        File.SetUnixFileMode(db.SqliteFile, open);
        var logs = new CapturedLogs();
        string key;
        await using (var server = await NexusTestServer.StartAsync(db, services: s => s.AddSingleton<ILoggerProvider>(logs)))
        {
            await server.CreateAppClientAsync();
            key = server.EncryptionKey;
        }

        var warning = Assert.Single(logs.Lines, l => l.Contains("can be read or written by other users", StringComparison.Ordinal));
        Assert.StartsWith("Warning ", warning, StringComparison.Ordinal);
        Assert.Contains($"The SQLite database {db.SqliteFile} can be read or written by other users of this machine (mode 0644)", warning, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 '{db.SqliteFile}'*", warning, StringComparison.Ordinal);
        Assert.Equal(open, File.GetUnixFileMode(db.SqliteFile)); // the operator's file: not changed behind their back

        // Made private, it starts without a word about it.
        File.SetUnixFileMode(db.SqliteFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var quiet = new CapturedLogs();
        await using (var again = await NexusTestServer.StartAsync(db, s => s["ENCRYPTION_KEY"] = key, services: s => s.AddSingleton<ILoggerProvider>(quiet)))
        {
            await again.CreateAppClientAsync();
        }

        Assert.DoesNotContain(quiet.Lines, l => l.Contains("can be read or written by other users", StringComparison.Ordinal));
    }
}
