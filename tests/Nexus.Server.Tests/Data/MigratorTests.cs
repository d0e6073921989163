using System.Net;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Data;
using Nexus.Server.Tests.Infrastructure;

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
