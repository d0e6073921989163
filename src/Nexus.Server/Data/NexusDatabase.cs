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
            ConnectionString = WithAutoPrepare(DatabaseUrl.ToNpgsqlConnectionString(options.DatabaseUrl));
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

    /// <summary>
    /// Npgsql's automatic preparation, unless the connection string sets Max Auto Prepare itself (0 turns it off, as a
    /// PgBouncer in transaction mode older than 1.21 needs). A statement that has run twice on a connection is prepared
    /// there, and stays prepared while the pool hands the connection out again, so Nexus's hot statements (a
    /// connection's row, an API key, a refresh's updates) are parsed and planned once per connection instead of on every
    /// call. bench/scale.sh (a database read per GET /v1/token), two runs minutes apart without and with it: PostgreSQL's
    /// CPU per read fell from about 200 to 130 µs with 1,000 connections and from about 350 to 280 µs with a million,
    /// and reads/s rose by 27% and 28%.
    /// </summary>
    internal static string WithAutoPrepare(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        // The normalised form names only what was set, under the canonical keyword (MaxAutoPrepare → Max Auto Prepare).
        if (new System.Data.Common.DbConnectionStringBuilder { ConnectionString = builder.ConnectionString }.ContainsKey("Max Auto Prepare"))
        {
            return builder.ConnectionString;
        }

        builder.MaxAutoPrepare = 64;
        builder.AutoPrepareMinUsages = 2;
        return builder.ConnectionString;
    }

    public DatabaseEngine Engine { get; }

    public string ConnectionString { get; }

    public string Description { get; }

    public string? SqliteFile { get; }

    /// <summary>
    /// When set, counts the connections opened in this async flow (a test proves with it that a route never touches
    /// the database, e.g. /healthz). One read of an AsyncLocal per open when unset.
    /// </summary>
    internal static readonly AsyncLocal<System.Runtime.CompilerServices.StrongBox<int>?> OpenedInFlow = new();

    public async Task<DbConnection> OpenAsync(CancellationToken ct = default)
    {
        if (OpenedInFlow.Value is { } opened)
        {
            Interlocked.Increment(ref opened.Value);
        }

        if (npgsql is not null)
        {
            return await npgsql.OpenConnectionAsync(ct);
        }

        var connection = new SqliteConnection(ConnectionString);
        // Microsoft.Data.Sqlite has no tracing of its own: one span per connection lease (open to close) stands for
        // the statements run on it. Null, and free, when nobody listens. Activity.Current is the caller's again once
        // this method returns, so the span is a sibling of the caller's other work, not its parent.
        if (Hosting.NexusTelemetry.Source.StartActivity("sqlite", System.Diagnostics.ActivityKind.Client) is { } activity)
        {
            activity.SetTag("db.system.name", "sqlite");
            activity.SetTag("db.namespace", "nexus.db");
            connection.StateChange += (_, e) =>
            {
                if (e.CurrentState == System.Data.ConnectionState.Closed)
                {
                    activity.Dispose();
                }
            };
        }

        await connection.OpenAsync(ct);
        // WAL lets readers proceed while one writer commits; NORMAL sync is durable across process crashes
        // (the WAL is fsynced at checkpoints), which is the trade-off SQLite recommends for WAL.
        await using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;";
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

    /// <summary>
    /// A lock held by one process at a time across all instances, for startup work (migrations, first keys).
    /// PostgreSQL: a session advisory lock on <paramref name="connection"/>. SQLite: an exclusive lock on a file
    /// beside the database, because SQLite's own write lock cannot span the several transactions startup needs.
    /// </summary>
    public async Task<IAsyncDisposable> AcquireStartupLockAsync(DbConnection connection, CancellationToken ct = default)
    {
        if (Engine == DatabaseEngine.Postgres)
        {
            await ExecuteAsync(connection, $"SELECT pg_advisory_lock({StartupLockId})", ct);
            return new Releaser(() => ExecuteAsync(connection, $"SELECT pg_advisory_unlock({StartupLockId})", CancellationToken.None));
        }

        var path = SqliteFile + ".lock";
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            try
            {
                var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                return new Releaser(() =>
                {
                    stream.Dispose();
                    return Task.CompletedTask;
                });
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(25, ct);
            }
        }
    }

    private const long StartupLockId = 0x4E45585553;

    private static async Task ExecuteAsync(DbConnection connection, string sql, CancellationToken ct)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(ct);
    }

    private sealed class Releaser(Func<Task> release) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await release();
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
