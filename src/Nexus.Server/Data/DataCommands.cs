using Dapper;
using Microsoft.Data.Sqlite;
using Nexus.Server.Hosting.Commands;
using SQLitePCL;

namespace Nexus.Server.Data;

/// <summary>The database's commands: <c>migrate</c>, <c>backup</c> and <c>restore</c> (SQLite; PostgreSQL has pg_dump).</summary>
internal static class DataCommands
{
    /// <summary>Pages copied per step of SQLite's online backup: small enough for a live progress bar and for writers to get in between.</summary>
    private const int PagesPerStep = 256;

    public static IServiceCollection AddDataCommands(this IServiceCollection services) => services
        .AddNexusCommand("migrate", "apply pending database migrations and exit", """
            Usage: Nexus.Server migrate [--json]
              Applies pending database migrations (PostgreSQL from DATABASE_URL, else SQLite in Nexus:DataDirectory),
              creates the first keys if there are none, and exits. The server does the same when it starts.
              --json   {"status":"up_to_date","engine":"sqlite","schema_version":N}
            """, MigrateAsync)
        .AddNexusCommand("purge", "remove expired tokens and old records now", """
            Usage: Nexus.Server purge [--json]
              Removes what the server removes every Nexus:Retention:IntervalMinutes (Data/Retention): authorization codes,
              refresh tokens, revoked token ids and grants that nothing can use any more (a day past the longest access
              token's lifetime), finished webhook deliveries older than Nexus:Retention:WebhookDeliveryDays, audit
              events older than Nexus:Retention:AuditDays when it is set, and connections holding no token (pending, or
              failed: expired or refused; not machine-to-machine ones) Nexus:Retention:AbandonedConnectionDays after their
              window closed and their last change. Safe while Nexus runs.
              --json   {"removed":{"grants":N,"audit_events":N,"webhook_deliveries":N,"abandoned_connections":N},"total":N}
            """, PurgeAsync)
        .AddNexusCommand("backup", "copy the SQLite database to a file while Nexus runs", """
            Usage: Nexus.Server backup FILE [--force] [--json]
              Copies the SQLite database (Nexus:DataDirectory/nexus.db) to FILE with SQLite's online backup API: safe while
              Nexus runs, and the copy is consistent. The copy is checked (integrity, schema) before it replaces FILE.
              --force  overwrite FILE if it exists
              --json   {"file","bytes","pages","schema_version"}
              The copy holds stored secrets encrypted under ENCRYPTION_KEY: keep the key to restore it, and keep both safe.
              PostgreSQL: use pg_dump / pg_restore (see docs/cli.md).
            """, BackupAsync, flags: ["force"], arguments: 1, needsDatabase: false)
        .AddNexusCommand("restore", "replace the SQLite database with a backup", """
            Usage: Nexus.Server restore FILE [--force] [--allow-missing-keys] [--json]
              Replaces the SQLite database with FILE (made by `backup`). FILE is checked first: a SQLite database that
              passes an integrity check, has a Nexus schema no newer than this version of Nexus, and whose stored secrets
              are encrypted under keys this Nexus has (ENCRYPTION_KEY or PREVIOUS_ENCRYPTION_KEYS): Nexus does not start
              on secrets it cannot decrypt, so such a backup is refused unless --allow-missing-keys. Stop Nexus first: a
              database in use is refused unless --force (running instances then read the restored data, but keep what
              they cached for up to a minute). The database it replaces is first copied to
              nexus.db.pre-restore-TIMESTAMP beside it; a database created by the restore is its owner's alone (0600).
              Start Nexus afterwards; it applies any newer migrations.
              --force               restore into a database in use
              --allow-missing-keys  restore a backup whose secrets are under keys this Nexus does not have (it will not
                                    start on it until ENCRYPTION_KEY or PREVIOUS_ENCRYPTION_KEYS holds them)
              --json                {"file","database","previous","bytes","pages","schema_version"}
            """, RestoreAsync, flags: ["force", "allow-missing-keys"], arguments: 1, needsDatabase: false);

    private static async Task<int> MigrateAsync(CommandContext context, CancellationToken ct)
    {
        var db = context.Get<NexusDatabase>();
        await using var connection = await db.OpenAsync(ct);
        var version = await connection.ExecuteScalarAsync<int>(new CommandDefinition("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", cancellationToken: ct));
        return await context.ResultAsync(new { status = "up_to_date", engine = db.Engine.ToString().ToLowerInvariant(), schema_version = version },
            $"Database is up to date (schema version {version}, {db.Description}).");
    }

    private static async Task<int> PurgeAsync(CommandContext context, CancellationToken ct)
    {
        var removed = await context.Get<Retention>().RunOnceAsync(ct);
        var total = removed.Sum(r => r.Removed);
        return await context.ResultAsync(new { removed = removed.ToDictionary(r => r.Rule, r => r.Removed), total },
            total == 0 ? "Nothing to remove." : string.Join(Environment.NewLine, removed.Where(r => r.Removed > 0).Select(r => $"{r.Rule}: {r.Removed} rows removed.")));
    }

    private static async Task<int> BackupAsync(CommandContext context, CancellationToken ct)
    {
        var db = SqliteOnly(context, "backup");
        var target = Path.GetFullPath(context.Args.Argument(0, "FILE (where to write the backup)"));
        if (!File.Exists(db.SqliteFile))
        {
            throw new CommandFailedException($"There is no database to back up at {db.SqliteFile}. Check Nexus:DataDirectory.", CommandErrorCatalog.NoDatabase);
        }

        if (File.Exists(target) && !context.Args.Flag("force"))
        {
            throw new CommandFailedException($"{target} exists. Choose another file, or pass --force to overwrite it.", CommandErrorCatalog.FileExists);
        }

        if (Path.GetDirectoryName(target) is { } folder && !Directory.Exists(folder))
        {
            throw new CommandFailedException($"The folder {folder} does not exist.", CommandErrorCatalog.NoFolder);
        }

        // Written beside the target and moved into place once checked, so a failed backup never leaves half a file.
        var partial = target + ".partial";
        try
        {
            long pages;
            await using (var source = new SqliteConnection(ConnectionString(db.SqliteFile!, SqliteOpenMode.ReadOnly)))
            {
                await source.OpenAsync(ct);
                // Mode 0600 (CreatePrivateFile): the backup holds password hashes, API-key HMACs, emails and the audit log.
                pages = await CopyToNewFileAsync(source, partial, context, "Backing up", ct);
            }

            var version = await CheckAsync(partial, context.Get<Migrator>(), ct);
            File.Move(partial, target, overwrite: true);
            var bytes = new FileInfo(target).Length;
            return await context.ResultAsync(new { file = target, bytes, pages, schema_version = version },
                $"Backed up {db.SqliteFile} to {target} ({bytes} bytes, schema version {version}).");
        }
        finally
        {
            File.Delete(partial);
        }
    }

    private static async Task<int> RestoreAsync(CommandContext context, CancellationToken ct)
    {
        var db = SqliteOnly(context, "restore");
        var file = Path.GetFullPath(context.Args.Argument(0, "FILE (the backup to restore)"));
        if (!File.Exists(file))
        {
            throw new CommandFailedException($"There is no file at {file}.", CommandErrorCatalog.NoFile);
        }

        if (string.Equals(file, db.SqliteFile, StringComparison.Ordinal))
        {
            throw new CommandFailedException("FILE is the database itself.", CommandErrorCatalog.SameFile);
        }

        var version = await CheckAsync(file, context.Get<Migrator>(), ct);
        // Nexus decrypts its server secrets at start: a backup made under a key this Nexus lacks would stop it from
        // starting at all, so the keys are checked before anything is replaced.
        (IReadOnlyList<string> missing, IReadOnlyList<string> configured) keys;
        await using (var backup = new SqliteConnection(ConnectionString(file, SqliteOpenMode.ReadOnly)))
        {
            await backup.OpenAsync(ct);
            keys = await context.Get<IBackupKeyCheck>().CheckAsync(backup, ct);
        }

        if (keys.missing.Count > 0 && !context.Args.Flag("allow-missing-keys"))
        {
            throw new CommandFailedException(
                $"{file} holds secrets encrypted under key id(s) {string.Join(", ", keys.missing)}, which this Nexus does not have (its keys: "
                + $"{string.Join(", ", keys.configured)}); it would not start on the restored database. Set ENCRYPTION_KEY "
                + "(or PREVIOUS_ENCRYPTION_KEYS) to the key(s) in use when the backup was made and run restore again, or pass --allow-missing-keys to restore it anyway.",
                CommandErrorCatalog.MissingKeys);
        }

        var existed = File.Exists(db.SqliteFile) && new FileInfo(db.SqliteFile!).Length > 0;
        Directory.CreateDirectory(Path.GetDirectoryName(db.SqliteFile)!);
        // The restored database holds what a backup holds: its owner's alone, as the backup and the pre-restore copy
        // are; SQLite would create it with the process's default mode (0644 under the usual umask). Created only when
        // missing, never replaced: a server that created it a moment ago keeps its file (the in-use check then sees it).
        db.CreateSqliteFileIfMissing();

        await using var destination = new SqliteConnection(ConnectionString(db.SqliteFile!, SqliteOpenMode.ReadWriteCreate, timeoutSeconds: 1));
        await destination.OpenAsync(ct);
        if (!context.Args.Flag("force") && await InUseAsync(destination, ct))
        {
            throw new CommandFailedException(
                $"The database at {db.SqliteFile} is in use (is Nexus running?). Stop every instance first, or pass --force to restore into the live database.", CommandErrorCatalog.DatabaseInUse);
        }

        // What the restore replaces is kept: copied with the online backup API (so that commits still in its -wal file
        // are in the copy, and instances restored under with --force keep their files), to one self-contained file.
        string? previous = null;
        if (existed)
        {
            previous = $"{db.SqliteFile}.pre-restore-{DateTime.UtcNow:yyyyMMdd'T'HHmmss'Z'}";
            await CopyToNewFileAsync(destination, previous, context, "Keeping the previous database", ct);
        }

        long pages;
        await using (var source = new SqliteConnection(ConnectionString(file, SqliteOpenMode.ReadOnly)))
        {
            await source.OpenAsync(ct);
            pages = await CopyAsync(source, destination, context, "Restoring", ct);
        }

        await destination.CloseAsync();
        var bytes = new FileInfo(db.SqliteFile!).Length;
        return await context.ResultAsync(new { file, database = db.SqliteFile, previous, bytes, pages, schema_version = version },
            $"Restored {file} into {db.SqliteFile} (schema version {version}){(previous is null ? "" : $"; the database it replaced is in {previous}")}. "
            + "Start Nexus to apply newer migrations, if any.");
    }

    /// <summary>
    /// Copies the database open on <paramref name="source"/> into a new file at <paramref name="path"/> (replacing one
    /// there), readable by its owner alone, as one self-contained file (no -wal); returns the number of pages.
    /// </summary>
    private static async Task<long> CopyToNewFileAsync(SqliteConnection source, string path, CommandContext context, string label, CancellationToken ct)
    {
        NexusDatabase.CreatePrivateFile(path);
        await using var destination = new SqliteConnection(ConnectionString(path, SqliteOpenMode.ReadWrite));
        await destination.OpenAsync(ct);
        var pages = await CopyAsync(source, destination, context, label, ct);
        // The copy took the source's WAL mode; a backup is one self-contained file.
        await destination.ExecuteAsync(new CommandDefinition("PRAGMA journal_mode=DELETE", cancellationToken: ct));
        return pages;
    }

    private static NexusDatabase SqliteOnly(CommandContext context, string command)
    {
        var db = context.Get<NexusDatabase>();
        return db.Engine == DatabaseEngine.Sqlite ? db
            : throw new CommandFailedException($"'{command}' works on SQLite; this Nexus uses {db.Description}. Use pg_dump and pg_restore for PostgreSQL (see docs/cli.md).", CommandErrorCatalog.NotSqlite);
    }

    private static string ConnectionString(string file, SqliteOpenMode mode, int timeoutSeconds = 30) =>
        new SqliteConnectionStringBuilder { DataSource = file, Mode = mode, Pooling = false, DefaultTimeout = timeoutSeconds }.ToString();

    /// <summary>
    /// Whether another connection has the database open. Leaving WAL mode needs the database to itself (SQLite
    /// refuses while other connections use the WAL), so a refusal means someone else is there. Nexus turns WAL on
    /// again at its next start.
    /// </summary>
    private static async Task<bool> InUseAsync(SqliteConnection connection, CancellationToken ct)
    {
        try
        {
            var mode = await connection.ExecuteScalarAsync<string>(new CommandDefinition("PRAGMA journal_mode=DELETE", cancellationToken: ct));
            return !string.Equals(mode, "delete", StringComparison.OrdinalIgnoreCase);
        }
        catch (SqliteException e) when (e.SqliteErrorCode is raw.SQLITE_BUSY or raw.SQLITE_LOCKED)
        {
            return true;
        }
    }

    /// <summary>
    /// Copies <paramref name="source"/> into <paramref name="destination"/> with SQLite's online backup API (what
    /// <see cref="SqliteConnection.BackupDatabase(SqliteConnection)"/> runs in one step), a few pages per step so that the
    /// progress shows and writers to the source are not held up; returns the number of pages.
    /// </summary>
    private static async Task<long> CopyAsync(SqliteConnection source, SqliteConnection destination, CommandContext context, string label, CancellationToken ct)
    {
        using var backup = raw.sqlite3_backup_init(destination.Handle, "main", source.Handle, "main")
            ?? throw new CommandFailedException("SQLite could not start the copy: " + raw.sqlite3_errmsg(destination.Handle).utf8_to_string(), CommandErrorCatalog.BackupFailed);
        CommandProgress? progress = null;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var rc = raw.sqlite3_backup_step(backup, PagesPerStep);
            var total = raw.sqlite3_backup_pagecount(backup);
            progress ??= context.Progress(label, total);
            progress.Report(total - raw.sqlite3_backup_remaining(backup));
            if (rc == raw.SQLITE_DONE)
            {
                return total;
            }

            if (rc is raw.SQLITE_BUSY or raw.SQLITE_LOCKED)
            {
                // Another connection holds a lock for a moment; the next step continues where this one stopped.
                await Task.Delay(50, ct);
                continue;
            }

            if (rc != raw.SQLITE_OK)
            {
                throw new CommandFailedException($"The copy failed: {raw.sqlite3_errstr(rc).utf8_to_string()}.", CommandErrorCatalog.BackupFailed);
            }
        }
    }

    /// <summary>
    /// Checks that <paramref name="file"/> is a Nexus database this version can run: SQLite, intact, with a schema no newer
    /// than the newest migration it knows. Returns the schema version.
    /// </summary>
    private static async Task<int> CheckAsync(string file, Migrator migrator, CancellationToken ct)
    {
        try
        {
            await using var connection = new SqliteConnection(ConnectionString(file, SqliteOpenMode.ReadOnly));
            await connection.OpenAsync(ct);
            var check = await connection.ExecuteScalarAsync<string>(new CommandDefinition("PRAGMA quick_check", cancellationToken: ct));
            if (check != "ok")
            {
                throw new CommandFailedException($"{file} is damaged: SQLite's integrity check reports '{check}'.", CommandErrorCatalog.InvalidBackup);
            }

            var hasSchema = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'", cancellationToken: ct));
            if (hasSchema == 0)
            {
                throw new CommandFailedException($"{file} is a SQLite database, but not a Nexus one (it has no schema_migrations table).", CommandErrorCatalog.InvalidBackup);
            }

            var version = await connection.ExecuteScalarAsync<int>(new CommandDefinition("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", cancellationToken: ct));
            var newest = migrator.Migrations.Count;
            return version <= newest ? version
                : throw new CommandFailedException($"{file} has schema version {version}, newer than this Nexus knows ({newest}). Restore it with a newer Nexus.", CommandErrorCatalog.InvalidBackup);
        }
        catch (SqliteException e)
        {
            throw new CommandFailedException($"{file} is not a readable SQLite database ({e.Message.Replace("SQLite Error ", "", StringComparison.Ordinal)}).", CommandErrorCatalog.InvalidBackup);
        }
    }
}
