using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Data;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Data;

/// <summary>On PostgreSQL Nexus's statements are prepared on a connection once they have run there twice (NexusDatabase.WithAutoPrepare).</summary>
public sealed class StatementPreparationTests
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
}
