using System.Data.Common;
using Microsoft.Data.Sqlite;
using Nexus.Server.Hosting;
using Npgsql;

namespace Nexus.Server.Data;

internal enum DatabaseEngine
{
    Sqlite,
    Postgres,
}

/// <summary>
/// The one way to reach the database. Both engines speak the same SQL for everything Nexus does except for
/// a few statements that ask <see cref="Engine"/>; times are stored as Unix milliseconds (BIGINT) so that they
/// compare and index identically on both.
/// </summary>
internal sealed class NexusDatabase : IDisposable
{
    private readonly NpgsqlDataSource? npgsql;

    public NexusDatabase(NexusOptions options)
    {
        if (!string.IsNullOrWhiteSpace(options.DatabaseUrl))
        {
            Engine = DatabaseEngine.Postgres;
            ConnectionString = DatabaseUrl.ToNpgsqlConnectionString(options.DatabaseUrl);
            npgsql = NpgsqlDataSource.Create(ConnectionString);
            var parsed = new NpgsqlConnectionStringBuilder(ConnectionString);
            Description = $"PostgreSQL at {parsed.Host}:{parsed.Port}/{parsed.Database}";
        }
        else
        {
            Engine = DatabaseEngine.Sqlite;
            var directory = Path.GetFullPath(options.DataDirectory);
            Directory.CreateDirectory(directory);
            SqliteFile = Path.Combine(directory, "nexus.db");
            ConnectionString = new SqliteConnectionStringBuilder
            {
                DataSource = SqliteFile,
                Pooling = true,
                DefaultTimeout = 30,
            }.ToString();
            Description = $"SQLite at {SqliteFile}";
        }
    }

    public DatabaseEngine Engine { get; }

    public string ConnectionString { get; }

    public string Description { get; }

    public string? SqliteFile { get; }

    public async Task<DbConnection> OpenAsync(CancellationToken ct = default)
    {
        if (npgsql is not null)
        {
            return await npgsql.OpenConnectionAsync(ct);
        }

        var connection = new SqliteConnection(ConnectionString);
        await connection.OpenAsync(ct);
        // WAL lets readers proceed while one writer commits; NORMAL sync is durable across process crashes
        // (the WAL is fsynced at checkpoints), which is the trade-off SQLite recommends for WAL.
        await using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;";
        await pragma.ExecuteNonQueryAsync(ct);
        return connection;
    }

    /// <summary>
    /// A write transaction that also serializes with every other instance doing the same: SQLite takes its
    /// write lock up front (BEGIN IMMEDIATE), PostgreSQL a transaction-scoped advisory lock.
    /// </summary>
    public async Task<DbTransaction> BeginLockedTransactionAsync(DbConnection connection, CancellationToken ct = default)
    {
        if (Engine == DatabaseEngine.Sqlite)
        {
            return ((SqliteConnection)connection).BeginTransaction(deferred: false);
        }

        var tx = await connection.BeginTransactionAsync(ct);
        await using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "SELECT pg_advisory_xact_lock(5000000001)";
        await command.ExecuteNonQueryAsync(ct);
        return tx;
    }

    public async Task PingAsync(CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        await command.ExecuteScalarAsync(ct);
    }

    public void Dispose() => npgsql?.Dispose();
}
