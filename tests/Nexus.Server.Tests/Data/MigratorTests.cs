using System.Net;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;
using Npgsql;

namespace Nexus.Server.Tests.Data;

public sealed class MigratorTests
{
    [Fact]
    public async Task AppliesEveryMigrationOnceAndIsSafeToRerun()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        var migrator = server.Services.GetRequiredService<Migrator>();

        // Concurrent re-runs serialize on the migration lock and find nothing to do.
        var reruns = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => migrator.MigrateAsync()));
        Assert.All(reruns, applied => Assert.Equal(0, applied));

        await using var connection = await server.Services.GetRequiredService<NexusDatabase>().OpenAsync();
        var versions = (await connection.QueryAsync<long>("SELECT version FROM schema_migrations ORDER BY version")).ToList();
        Assert.Equal(Enumerable.Range(1, migrator.Migrations.Count).Select(v => (long)v), versions);
    }

    [Fact]
    public async Task InstancesStartingTogetherCreateOneActiveKeyPerAlgorithm()
    {
        await using var db = await TestDatabase.CreateAsync();
        var key = NexusTestServer.NewEncryptionKey();
        var servers = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => NexusTestServer.StartAsync(db, s => s["ENCRYPTION_KEY"] = key))));
        try
        {
            await using var connection = await servers[0].Services.GetRequiredService<NexusDatabase>().OpenAsync();
            var active = (await connection.QueryAsync<string>("SELECT alg FROM signing_keys WHERE retired_at IS NULL")).OrderBy(a => a).ToList();
            Assert.Equal(["ES256", "RS256"], active);

            // All instances share the same client-secret hash key: a secret made on one works on the others.
            var (id, secret) = await servers[0].CreateAppClientAsync();
            foreach (var server in servers)
            {
                Assert.Equal(HttpStatusCode.OK, (await server.RequestTokenAsync(id, secret)).StatusCode);
            }
        }
        finally
        {
            foreach (var server in servers)
            {
                await server.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task AnInstanceWaitsBehindAnothersMigrationsForLongerThanTheCommandTimeoutAndSaysSo()
    {
        Assert.SkipUnless(TestDatabase.UsePostgres, "The startup lock is a PostgreSQL advisory lock; SQLite's is a lock file.");
        await using var db = await TestDatabase.CreateAsync();
        // A Command Timeout of 1 s stands for Npgsql's default 30 s: a lock wait on an ordinary connection failed after it.
        var url = new NpgsqlConnectionStringBuilder(db.DatabaseUrl) { CommandTimeout = 1 }.ConnectionString;
        using var database = new NexusDatabase(new NexusOptions { DatabaseUrl = url, DataDirectory = db.DataDirectory });
        using var logs = new CapturedLogs();
        using var loggers = new LoggerFactory([logs]);
        var migrator = new Migrator(database, TimeProvider.System, loggers.CreateLogger<Migrator>());

        // Another instance is migrating: it holds the startup lock.
        await using var other = new NpgsqlConnection(db.DatabaseUrl);
        await other.OpenAsync(TestContext.Current.CancellationToken);
        await other.ExecuteAsync($"SELECT pg_advisory_lock({NexusDatabase.StartupLockId})");
        var migrating = migrator.MigrateAsync(ct: TestContext.Current.CancellationToken);

        await RefreshKit.EventuallyAsync(async () => migrating.IsCompleted || await other.ExecuteScalarAsync<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'Nexus startup' AND wait_event_type = 'Lock' AND now() - query_start > interval '3 seconds')"),
            "the startup connection waiting on the lock for longer than its Command Timeout");
        Assert.False(migrating.IsCompleted, migrating.Exception?.ToString());
        Assert.Contains("Waiting for another instance's startup (migrations) to finish", logs.All);

        await other.ExecuteAsync($"SELECT pg_advisory_unlock({NexusDatabase.StartupLockId})");
        Assert.Equal(migrator.Migrations.Count, await migrating);
    }

    [Fact]
    public async Task DataSurvivesARestart()
    {
        await using var db = await TestDatabase.CreateAsync();
        var key = NexusTestServer.NewEncryptionKey();
        string id, secret;
        await using (var first = await NexusTestServer.StartAsync(db, s => s["ENCRYPTION_KEY"] = key))
        {
            (id, secret) = await first.CreateAppClientAsync();
        }

        await using var second = await NexusTestServer.StartAsync(db, s => s["ENCRYPTION_KEY"] = key);
        Assert.Equal(HttpStatusCode.OK, (await second.RequestTokenAsync(id, secret)).StatusCode);
    }
}

/// <summary>Migration 0019: the grants of accounts disabled before disabling revoked grants are revoked once.</summary>
public sealed class DisabledAccountGrantsMigrationTests
{
    [Fact]
    public async Task RevokesTheGrantsOfDisabledAccountsAndNoOtherOnce()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        var (clientId, _) = await AuthorizationServer.OAuthAppHelpers.RegisterApplicationAsync(server);
        var database = server.Services.GetRequiredService<NexusDatabase>();
        await using var connection = await database.OpenAsync();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        // Three accounts as an older Nexus left them: disabled (its grant untouched), locked out after failed sign-ins, active.
        var ends = new Dictionary<string, long?> { ["disabled"] = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds(), ["locked"] = now + 300_000, ["active"] = null };
        foreach (var (state, end) in ends)
        {
            var email = $"{state}-{Guid.NewGuid():N}@example.com";
            await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = "a password of ten" }, HttpStatusCode.Created);
            var userId = await server.UserIdAsync(email);
            await connection.ExecuteAsync("UPDATE users SET lockout_enabled = @enabled, lockout_end = @end WHERE id = @userId", new { enabled = end is null ? 0 : 1, end, userId });
            await connection.ExecuteAsync("INSERT INTO grants (id, client_id, user_id, scopes, code_hash, auth_time, created_at) VALUES (@id, @clientId, @userId, 'openid', @id, @now, @now)",
                new { id = "grant-" + state, clientId, userId, now });
        }

        var migration = server.Services.GetRequiredService<Migrator>().Migrations.Single(m => m.Version == 19);
        await connection.ExecuteAsync(migration.Sql);

        var revoked = (await connection.QueryAsync<(string Id, string? Reason)>("SELECT id, revoked_reason FROM grants WHERE revoked_at IS NOT NULL AND id LIKE 'grant-%'")).ToList();
        Assert.Equal([("grant-disabled", "account_disabled")], revoked);

        // Once: the migrator has recorded it and does not run it again.
        Assert.Equal(0, await server.Services.GetRequiredService<Migrator>().MigrateAsync());
    }
}
