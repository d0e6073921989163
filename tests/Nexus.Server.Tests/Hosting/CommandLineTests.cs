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

    [Theory]
    [InlineData("--Logging:LogLevel:Default", "Warning")]
    [InlineData("--Logging:LogLevel:Default=Warning")]
    public async Task AHostOptionWrittenBeforeTheCommandWordStillRunsTheCommandRatherThanTheServer(params string[] hostOption)
    {
        await using var db = await TestDatabase.CreateAsync();
        // Started as the server, the process would never exit (the two-minute wait would end the test in failure).
        var migrate = await NexusProcess.RunAsync(db, new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey() }, [.. hostOption, "migrate"]);
        Assert.True(migrate.ExitCode == 0, migrate.Output);
        Assert.Contains("up to date", migrate.Output);
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

    [Fact]
    public async Task AFailedMigrationIsNamedRolledBackAndExitsWithOneWithoutAStackTrace()
    {
        await using var db = await TestDatabase.CreateAsync();
        var env = new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey() };
        Assert.Equal(0, (await NexusProcess.RunAsync(db, env, "migrate")).ExitCode);
        // As if migration 20 had not run: running it again fails, its index exists.
        await using (var connection = db.Engine == "sqlite"
            ? (System.Data.Common.DbConnection)new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db.SqliteFile};Pooling=False")
            : new Npgsql.NpgsqlConnection(db.DatabaseUrl))
        {
            await connection.OpenAsync(TestContext.Current.CancellationToken);
            await using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM schema_migrations WHERE version = 20";
            Assert.Equal(1, await command.ExecuteNonQueryAsync(TestContext.Current.CancellationToken));
        }

        var (exitCode, stdout, stderr) = await NexusProcess.RunSeparatelyAsync(db, env, "migrate", "--json");
        Assert.True(exitCode == 1, stdout + stderr);
        Assert.DoesNotContain("Exception", stdout + stderr);
        Assert.DoesNotMatch(@"\n\s+at [\w.`<>]+\(", stderr);
        Assert.Contains("Migration 20 connections_reconnecting_index failed and was rolled back", stderr);
        var error = System.Text.Json.JsonDocument.Parse(stdout).RootElement.GetProperty("error");
        Assert.Equal("failed", error.GetProperty("code").GetString());
        Assert.StartsWith("Nexus cannot start: migration 20 (connections_reconnecting_index) failed and was rolled back: ", error.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData(new[] { "--help" }, "Usage: Nexus.Server [command]")]
    [InlineData(new[] { "-h" }, "Usage: Nexus.Server [command]")]
    [InlineData(new[] { "help" }, "Usage: Nexus.Server [command]")]
    [InlineData(new[] { "migrate", "--help" }, "Usage: Nexus.Server migrate")]
    [InlineData(new[] { "keys", "reencrypt", "--help" }, "Usage: Nexus.Server keys reencrypt")]
    [InlineData(new[] { "keys", "rotate-signing", "--help" }, "Usage: Nexus.Server keys rotate-signing")]
    [InlineData(new[] { "users", "promote", "--help" }, "Usage: Nexus.Server users promote EMAIL")]
    [InlineData(new[] { "users", "demote", "someone@example.com", "--help" }, "Usage: Nexus.Server users demote EMAIL")]
    [InlineData(new[] { "help", "migrate" }, "Usage: Nexus.Server migrate")]
    [InlineData(new[] { "clients", "create", "--help" }, "Usage: Nexus.Server clients create")]
    [InlineData(new[] { "help", "restore" }, "Usage: Nexus.Server restore FILE")]
    [InlineData(new[] { "serve", "--help" }, "Usage: Nexus.Server [serve]")]
    public async Task HelpPrintsUsageAndNeverStartsTheServer(string[] args, string expected)
    {
        await using var db = await TestDatabase.CreateAsync();
        // No ENCRYPTION_KEY in Production: anything beyond printing usage would fail.
        var help = await NexusProcess.RunAsync(db, new Dictionary<string, string?>(), args);
        Assert.True(help.ExitCode == 0, help.Output);
        Assert.StartsWith(expected, help.Output.TrimStart());
        Assert.False(File.Exists(db.SqliteFile), "--help touched the database");
    }

    [Fact]
    public async Task WithJsonStandardOutputHoldsTheResultAloneAndBadInputExitsWithTwo()
    {
        await using var db = await TestDatabase.CreateAsync();
        var env = new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey(), ["Logging__LogLevel__Default"] = "Information" };
        // A first run logs the migrations, on standard error; a command arms no setup token (only the server does), so prints none.
        var (exitCode, stdout, stderr) = await NexusProcess.RunSeparatelyAsync(db, env, "api-keys", "create", "--name", "ci", "--workspaces", "*", "--json");
        Assert.True(exitCode == 0, stdout + stderr);
        var created = System.Text.Json.JsonDocument.Parse(stdout).RootElement;
        Assert.StartsWith("nxk_", created.GetProperty("api_key").GetString());
        Assert.DoesNotContain("setup token", stdout + stderr);
        Assert.Contains("Applied migration", stderr);

        var (usageCode, usageOut, usageError) = await NexusProcess.RunSeparatelyAsync(db, env, "api-keys", "create", "--name");
        Assert.Equal(2, usageCode);
        Assert.Contains("--name needs a value", usageError);
        Assert.DoesNotContain("Exception", usageOut + usageError);
    }

    [Fact]
    public async Task ARestoreIntoADatabaseThatDoesNotExistYetCreatesItReadableByItsOwnerAlone()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        // backup and restore are SQLite's: both databases are SQLite files whatever engine the suite runs on.
        await using var source = await TestDatabase.CreateAsync(null);
        var env = new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey() };
        Assert.Equal(0, (await NexusProcess.RunAsync(source, env, "migrate")).ExitCode);
        var backup = Path.Combine(source.DataDirectory, "backup.db");
        var made = await NexusProcess.RunAsync(source, env, "backup", backup);
        Assert.True(made.ExitCode == 0, made.Output);

        await using var target = await TestDatabase.CreateAsync(null);
        Assert.False(File.Exists(target.SqliteFile));
        var restored = await NexusProcess.RunAsync(target, env, "restore", backup);
        Assert.True(restored.ExitCode == 0, restored.Output);
        // It holds password hashes, API-key HMACs, emails and the audit log, as the backup does: its owner's alone.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(target.SqliteFile));
        var migrate = await NexusProcess.RunAsync(target, env, "migrate");
        Assert.True(migrate.ExitCode == 0, migrate.Output);
    }

    [Fact]
    public async Task AStoredValueDapperCannotReadEndsACommandWithOneLineAndExitCodeOne()
    {
        // A created_at that is text, not a number: SQLite stores it, Dapper cannot map it (PostgreSQL would refuse it).
        await using var db = await TestDatabase.CreateAsync(null);
        var env = new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey() };
        Assert.Equal(0, (await NexusProcess.RunAsync(db, env, "migrate")).ExitCode);
        await db.ScalarAsync("INSERT INTO api_keys (id, name, key_hash, workspaces, can_read_credentials, created_at, revoked_at) "
            + "VALUES ('ak_broken', 'broken', 'secret-looking-value', '[\"*\"]', 1, 'not-a-number', NULL)");

        var (exitCode, stdout, stderr) = await NexusProcess.RunSeparatelyAsync(db, env, "api-keys", "list");
        Assert.True(exitCode == 1, stdout + stderr);
        Assert.DoesNotContain("Exception", stdout + stderr);
        Assert.DoesNotMatch(@"\n\s+at [\w.`<>]+\(", stdout + stderr);
        Assert.DoesNotContain("not-a-number", stdout + stderr);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.DoesNotContain(lines, l => l.StartsWith("fail:", StringComparison.Ordinal) || l.StartsWith("crit:", StringComparison.Ordinal));
        Assert.Contains("created_at", Assert.Single(lines, l => l.Contains("cannot read", StringComparison.Ordinal)));

        (exitCode, stdout, stderr) = await NexusProcess.RunSeparatelyAsync(db, env, "api-keys", "list", "--json");
        Assert.True(exitCode == 1, stdout + stderr);
        var error = System.Text.Json.JsonDocument.Parse(stdout).RootElement.GetProperty("error");
        Assert.Equal("failed", error.GetProperty("code").GetString());
        Assert.Contains("created_at", error.GetProperty("message").GetString());
    }

    /// <summary>Exit code 1 and exactly one line that says what to fix: no stack trace, no host log noise.</summary>
    private static string AssertOneLineFailure((int ExitCode, string Output) run)
    {
        Assert.True(run.ExitCode == 1, $"exit {run.ExitCode}: {run.Output}");
        var lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // Other output may precede it (a first start prints the one-time setup token), but no log errors or stack frames.
        Assert.DoesNotContain(lines, l => l.StartsWith("at ", StringComparison.Ordinal) || l.StartsWith("fail:", StringComparison.Ordinal)
            || l.StartsWith("crit:", StringComparison.Ordinal) || l.Contains("Exception", StringComparison.Ordinal));
        return Assert.Single(lines, l => l.StartsWith("Nexus cannot start: ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ASqliteDatabaseNexusCannotCreateEndsStartupWithOneLineThatSaysWhere()
    {
        await using var db = await TestDatabase.CreateAsync(admin: null);
        // A directory where the database file would go: it cannot be created (as in a read-only or foreign-owned data
        // directory, which root, running these tests, would write to anyway).
        Directory.CreateDirectory(db.SqliteFile);
        var run = await NexusProcess.RunAsync(db, new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey() },
            "--urls", $"http://127.0.0.1:{LoopbackHost.FreePort()}");
        var line = AssertOneLineFailure(run);
        Assert.Contains($"cannot create the SQLite database at {db.SqliteFile}", line);
        Assert.Contains("Nexus:DataDirectory", line);
    }

    [Fact]
    public async Task AnUnreachablePostgreSqlEndsStartupWithOneLineThatNamesIt()
    {
        await using var db = await TestDatabase.CreateAsync();
        var port = LoopbackHost.FreePort();
        var run = await NexusProcess.RunAsync(db, new Dictionary<string, string?>
        {
            ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey(),
            ["DATABASE_URL"] = $"postgres://nexus:secret@127.0.0.1:{port}/nexus",
        }, "--urls", $"http://127.0.0.1:{LoopbackHost.FreePort()}");
        var line = AssertOneLineFailure(run);
        Assert.Contains($"cannot reach the database (PostgreSQL at 127.0.0.1:{port}/nexus)", line);
        Assert.Contains("DATABASE_URL", line);
        Assert.DoesNotContain("secret", line);
    }

    [Fact]
    public async Task ADatabaseThatAcceptsButNeverAnswersEndsStartupWithinTheBound()
    {
        await using var db = await TestDatabase.CreateAsync();
        using var silent = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        var accepted = new List<System.Net.Sockets.TcpClient>();
        using var stop = new CancellationTokenSource();
        var acceptor = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    accepted.Add(await silent.AcceptTcpClientAsync(stop.Token));
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        var clock = Stopwatch.StartNew();
        var run = await NexusProcess.RunAsync(db, new Dictionary<string, string?>
        {
            ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey(),
            ["DATABASE_URL"] = $"postgres://nexus:secret@127.0.0.1:{port}/nexus",
            ["Nexus__StartupDatabaseTimeoutSeconds"] = "2",
        }, "--urls", $"http://127.0.0.1:{LoopbackHost.FreePort()}");
        clock.Stop();
        await stop.CancelAsync();
        await acceptor;
        var line = AssertOneLineFailure(run);
        Assert.Contains($"the database (PostgreSQL at 127.0.0.1:{port}/nexus) accepted no query within 2 s", line);
        Assert.NotEmpty(accepted);
        // Npgsql alone waits 15 s; the bound is 2 s plus the process's own start.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(12), $"took {clock.Elapsed}");
        foreach (var client in accepted)
        {
            client.Dispose();
        }
    }

    [Fact]
    public async Task ABusyPortEndsStartupWithOneLineThatSaysWhatToDo()
    {
        await using var db = await TestDatabase.CreateAsync();
        using var squatter = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
        var run = await NexusProcess.RunAsync(db, new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey() },
            "--urls", $"http://127.0.0.1:{port}");
        var line = AssertOneLineFailure(run);
        Assert.Contains($"http://127.0.0.1:{port}: address already in use", line);
        Assert.Contains("--urls", line);
    }
}
