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
            ConnectionString = WithConnectionDefaults(DatabaseUrl.ToNpgsqlConnectionString(options.DatabaseUrl));
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
    /// Npgsql settings Nexus turns on unless the connection string sets them itself.
    /// <para>
    /// Automatic preparation (Max Auto Prepare=64, Auto Prepare Min Usages=2; 0 turns it off, as a PgBouncer in
    /// transaction mode older than 1.21 needs): a statement that has run twice on a connection is prepared there, and
    /// stays prepared while the pool hands the connection out again, so Nexus's hot statements (a connection's row, an
    /// API key, a refresh's updates) are parsed and planned once per connection instead of on every call.
    /// bench/scale.sh (a database read per GET /v1/token), two runs minutes apart without and with it: PostgreSQL's CPU
    /// per read fell from about 200 to 130 µs with 1,000 connections and from about 350 to 280 µs with a million, and
    /// reads/s rose by 27% and 28%.
    /// </para>
    /// <para>
    /// No Reset On Close=true: a connection goes back to the pool as it is, instead of being reset before its next use.
    /// With prepared statements to keep, Npgsql's reset is seven statements (CLOSE ALL, SET SESSION AUTHORIZATION
    /// DEFAULT, RESET ALL, DISCARD TEMP, UNLISTEN *, DISCARD SEQUENCES, pg_advisory_unlock_all()) sent with the first
    /// command of every lease, and an operation takes several leases: in a refresh storm (pg_stat_statements) they were
    /// 255,000 of the statements PostgreSQL ran for 6,000 handshakes and refreshes, and turning them off took 9–14% off
    /// PostgreSQL's CPU. Nexus leaves no session state behind for the reset to clear: its settings are SET LOCAL, its
    /// locks transaction-scoped or released by the code that took them (the startup lock), no temporary tables or
    /// cursors, and the one LISTEN runs on a connection of its own outside the pool (<see cref="OpenDedicatedAsync(string, CancellationToken)"/>).
    /// A transaction left open is rolled back by Npgsql on close either way.
    /// </para>
    /// </summary>
    internal static string WithConnectionDefaults(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        // The normalised form names only what was set, under the canonical keyword (MaxAutoPrepare → Max Auto Prepare).
        var set = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = builder.ConnectionString };
        if (!set.ContainsKey("Max Auto Prepare"))
        {
            builder.MaxAutoPrepare = 64;
            builder.AutoPrepareMinUsages = 2;
        }

        if (!set.ContainsKey("No Reset On Close"))
        {
            builder.NoResetOnClose = true;
        }

        return builder.ConnectionString;
    }

    /// <summary>
    /// A PostgreSQL connection of its own, outside the pool and named in pg_stat_activity, for session state that must
    /// never reach another lease (the revocation listener's LISTEN): closing it ends the session.
    /// </summary>
    public Task<NpgsqlConnection> OpenDedicatedAsync(string applicationName, CancellationToken ct) => OpenDedicatedAsync(applicationName, null, ct);

    /// <inheritdoc cref="OpenDedicatedAsync(string, CancellationToken)"/>
    /// <param name="applicationName">Its name in pg_stat_activity.</param>
    /// <param name="commandTimeoutSeconds">Overrides the connection string's Command Timeout (Npgsql's default 30 s) for every
    /// command on the connection; 0 for none.</param>
    /// <param name="ct">Cancels the opening.</param>
    public async Task<NpgsqlConnection> OpenDedicatedAsync(string applicationName, int? commandTimeoutSeconds, CancellationToken ct)
    {
        if (npgsql is null)
        {
            throw new InvalidOperationException("A dedicated connection is PostgreSQL's.");
        }

        var builder = new NpgsqlConnectionStringBuilder(ConnectionString) { Pooling = false, ApplicationName = applicationName };
        if (commandTimeoutSeconds is { } timeout)
        {
            builder.CommandTimeout = timeout;
        }

        var connection = new NpgsqlConnection(builder.ConnectionString);
        try
        {
            await connection.OpenAsync(ct);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
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
    /// The connection startup work (migrations, first keys) runs on, under <see cref="AcquireStartupLockAsync"/>.
    /// PostgreSQL: a connection of its own outside the pool, named <c>Nexus startup</c> in pg_stat_activity, with no
    /// command timeout: the session advisory lock must stay on the session that took it (never go back to the pool with
    /// it), waiting behind another instance's migrations can take longer than Npgsql's default 30 s Command Timeout, and
    /// so can a migration's statement (an index on a large table). SQLite: an ordinary connection.
    /// </summary>
    public async Task<DbConnection> OpenStartupConnectionAsync(CancellationToken ct = default) =>
        Engine == DatabaseEngine.Postgres ? await OpenDedicatedAsync("Nexus startup", commandTimeoutSeconds: 0, ct) : await OpenAsync(ct);

    /// <summary>
    /// A lock held by one process at a time across all instances, for startup work (migrations, first keys).
    /// PostgreSQL: a session advisory lock on <paramref name="connection"/> (from <see cref="OpenStartupConnectionAsync"/>,
    /// which has no command timeout: the wait lasts as long as the other instance's migrations). SQLite: an exclusive
    /// lock on a file beside the database, because SQLite's own write lock cannot span the several transactions startup needs.
    /// </summary>
    public async Task<IAsyncDisposable> AcquireStartupLockAsync(DbConnection connection, ILogger? logger = null, CancellationToken ct = default)
    {
        if (Engine == DatabaseEngine.Postgres)
        {
            if (!await ScalarAsync<bool>(connection, $"SELECT pg_try_advisory_lock({StartupLockId})", ct))
            {
                var holder = await ScalarAsync<object?>(connection,
                    $"SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = {StartupLockId} LIMIT 1", ct);
                logger?.LogInformation("Waiting for another instance's startup (migrations) to finish: it holds the startup lock (PostgreSQL advisory lock {LockId}, backend pid {Pid})",
                    StartupLockId, holder);
                await ExecuteAsync(connection, $"SELECT pg_advisory_lock({StartupLockId})", ct);
                logger?.LogInformation("Got the startup lock");
            }

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

    /// <summary>
    /// Creates an empty file at <paramref name="path"/> (replacing one there) with mode 0600: a copy of the database holds
    /// password hashes, API-key HMACs, email addresses and the audit log, and SQLite keeps the mode of the file it is given
    /// (its journal files take the same one).
    /// </summary>
    internal static void CreatePrivateFile(string path)
    {
        File.Delete(path);
        CreateNewPrivateFile(path);
    }

    /// <summary>An empty file at <paramref name="path"/>, mode 0600; an IOException when one is there already.</summary>
    private static void CreateNewPrivateFile(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var _ = new FileStream(path, options);
    }

    /// <summary>
    /// SQLite: creates the database file, empty and readable by its owner alone (0600), when there is none yet, before
    /// SQLite would create it with the process's umask (0644 as a rule): it holds password hashes, API-key HMACs, email
    /// addresses, the audit log and the encrypted tokens. An existing file keeps the mode it has.
    /// </summary>
    public void CreateSqliteFileIfMissing()
    {
        if (Engine == DatabaseEngine.Sqlite && !File.Exists(SqliteFile))
        {
            try
            {
                CreateNewPrivateFile(SqliteFile!);
            }
            catch (IOException) when (File.Exists(SqliteFile))
            {
                // Another instance (or process) created it a moment before: that one is used as it is.
            }
        }
    }

    /// <summary>
    /// The SQLite file's mode as octal (e.g. <c>0644</c>) when its group or others may read or write it; null when they
    /// may not, on PostgreSQL, on Windows, or when there is no file.
    /// </summary>
    public string? SqliteFileOpenToOthers()
    {
        if (Engine != DatabaseEngine.Sqlite || OperatingSystem.IsWindows() || !File.Exists(SqliteFile))
        {
            return null;
        }

        var mode = File.GetUnixFileMode(SqliteFile);
        const UnixFileMode others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
        return (mode & others) == 0 ? null : "0" + Convert.ToString((int)mode & 0x1FF, 8);
    }

    internal const long StartupLockId = 0x4E45585553;

    private static async Task<T> ScalarAsync<T>(DbConnection connection, string sql, CancellationToken ct)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var value = await command.ExecuteScalarAsync(ct);
        return value is null or DBNull ? default! : (T)value;
    }

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

    /// <summary>
    /// PostgreSQL: closes the pool's idle connections and retires the ones in use when they come back, so that none
    /// opened before a server restart is used after it (the restarted server closed them all). SQLite: nothing.
    /// </summary>
    public void ClearPool() => npgsql?.Clear();

    public async Task PingAsync(CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        await command.ExecuteScalarAsync(ct);
    }

    public void Dispose() => npgsql?.Dispose();
}
