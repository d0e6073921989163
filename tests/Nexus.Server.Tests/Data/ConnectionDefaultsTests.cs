using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.AuthorizationServer.Grants;
using Nexus.Server.Data;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Data;

/// <summary>
/// What NexusDatabase.WithConnectionDefaults turns on for PostgreSQL: statements prepared on a connection once they have
/// run there twice, and pooled connections handed out again without Npgsql's reset, so nothing Nexus does on a lease may
/// outlive it (its settings are SET LOCAL; the revocation listener's LISTEN is on a connection of its own, outside the pool).
/// </summary>
public sealed class ConnectionDefaultsTests
{
    [Fact]
    public async Task AStatementRunTwiceOnAConnectionIsPreparedThereAndStillAnswers()
    {
        Assert.SkipUnless(TestDatabase.UsePostgres, "Prepared statements are PostgreSQL's; SQLite runs in the process.");
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        var database = server.Services.GetRequiredService<NexusDatabase>();

        await using var connection = await database.OpenAsync();
        const string sql = "SELECT count(*) FROM connections WHERE workspace_id = @workspace";
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(0L, await connection.ExecuteScalarAsync<long>(sql, new { workspace = $"ws_prepared_{i}" }));
        }

        var prepared = await connection.QueryAsync<string>("SELECT statement FROM pg_prepared_statements");
        Assert.Contains(prepared, statement => statement.Contains("FROM connections WHERE workspace_id = $1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ALeaseFindsNeitherTheLastOnesLocalSettingNorAnyListenAndTheListenerHasAConnectionOfItsOwn()
    {
        Assert.SkipUnless(TestDatabase.UsePostgres, "The pool's reset is Npgsql's; SQLite has none.");
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        var database = server.Services.GetRequiredService<NexusDatabase>();

        int backend;
        await using (var connection = await database.OpenAsync())
        {
            backend = await connection.ExecuteScalarAsync<int>("SELECT pg_backend_pid()");
            await using var tx = await connection.BeginTransactionAsync();
            await connection.ExecuteAsync("SET LOCAL lock_timeout = '3s'", transaction: tx); // as RefreshStore.LockAsync does
            await tx.CommitAsync();
        }

        // Every lease until the same backend comes back (the pool hands out the most recently returned one first).
        var leases = new List<System.Data.Common.DbConnection>();
        try
        {
            for (var i = 0; i < 20; i++)
            {
                var connection = await database.OpenAsync();
                leases.Add(connection);
                Assert.Equal("0", await connection.ExecuteScalarAsync<string>("SHOW lock_timeout"));
                Assert.Empty(await connection.QueryAsync<string>("SELECT pg_listening_channels()"));
                if (await connection.ExecuteScalarAsync<int>("SELECT pg_backend_pid()") == backend)
                {
                    break;
                }
            }
        }
        finally
        {
            foreach (var connection in leases)
            {
                await connection.DisposeAsync();
            }
        }

        await using var check = await database.OpenAsync();
        const string listening = "SELECT query FROM pg_stat_activity WHERE application_name = @name AND datname = current_database()";
        // Its last statement is the LISTEN once it listens (before that, Npgsql's own startup queries on the new session).
        await RefreshKit.EventuallyAsync(async () => (await check.QueryAsync<string>(listening, new { name = RevocationList.ListenerName })).Contains($"LISTEN {RevocationList.Channel}"),
            "the revocation listener listening on a connection of its own");
        Assert.Single(await check.QueryAsync<string>(listening, new { name = RevocationList.ListenerName }));
    }
}
