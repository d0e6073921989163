namespace Nexus.Server.Hosting.Commands;

/// <summary>
/// One error code of the command line that the HTTP API has no problem type for: the <c>code</c> of
/// <c>{"error":{"code","message","errors"}}</c> that <c>--json</c> prints, the exit code it ends with and what it means.
/// </summary>
internal sealed record CommandError(string Code, int ExitCode, string Meaning);

/// <summary>
/// Every error code of the command line that is not a problem code, in one place (issue 13, item 4), like
/// <see cref="ProblemCatalog"/> and <see cref="OAuthErrorCatalog"/>: a command fails with
/// <see cref="CommandFailedException"/> and an entry of this table (or, where the API answers the same failure, the
/// API's <see cref="ProblemType"/>), never with a literal. docs/errors.md lists them (generated from <see cref="All"/>;
/// tests/Nexus.Server.Tests/Hosting/ErrorCatalogTests.cs keeps both honest).
/// </summary>
internal static class CommandErrorCatalog
{
    // Any command.
    public static readonly CommandError Failed = new("failed", ExitCodes.Failed, "The operation failed for a reason the message gives (a file or stream could not be read or written, JSON could not be read, the database refused a statement, Nexus could not start: a migration failed, the configuration is invalid).");
    public static readonly CommandError Usage = new("usage", ExitCodes.Usage, "Unknown command or option, or a missing argument or value; the message says which.");
    public static readonly CommandError UnreadableFile = new("unreadable_file", ExitCodes.Failed, "The input file (or standard input) could not be read.");

    // providers import: the error of one provider in the result.
    public static readonly CommandError SecretMissing = new("secret_missing", ExitCodes.Failed, "A \"${NAME}\" client_secret names an environment variable that is not set.");

    // backup and restore (SQLite).
    public static readonly CommandError NoDatabase = new("no_database", ExitCodes.Failed, "There is no database file to back up; check Nexus:DataDirectory.");
    public static readonly CommandError FileExists = new("file_exists", ExitCodes.Failed, "The backup's target file exists; choose another, or pass --force to overwrite it.");
    public static readonly CommandError NoFolder = new("no_folder", ExitCodes.Failed, "The folder of the backup's target file does not exist.");
    public static readonly CommandError NoFile = new("no_file", ExitCodes.Failed, "There is no file to restore at the path given.");
    public static readonly CommandError SameFile = new("same_file", ExitCodes.Failed, "The file to restore is the live database itself.");
    public static readonly CommandError DatabaseInUse = new("database_in_use", ExitCodes.Failed, "The database to restore into is in use; stop every instance first, or pass --force.");
    public static readonly CommandError NotSqlite = new("not_sqlite", ExitCodes.Failed, "backup and restore work on SQLite; for PostgreSQL use pg_dump and pg_restore.");
    public static readonly CommandError BackupFailed = new("backup_failed", ExitCodes.Failed, "SQLite could not copy the database.");
    public static readonly CommandError InvalidBackup = new("invalid_backup", ExitCodes.Failed, "The file is damaged, not a Nexus database, or of a schema newer than this Nexus knows.");
    public static readonly CommandError MissingKeys = new("missing_keys", ExitCodes.Failed, "The backup holds secrets encrypted under keys this Nexus does not have (the message names their ids); configure them in ENCRYPTION_KEY or PREVIOUS_ENCRYPTION_KEYS, or pass --allow-missing-keys.");

    /// <summary>Every entry, in declaration order (read by reflection, so it is declared last).</summary>
    public static readonly IReadOnlyList<CommandError> All = typeof(CommandErrorCatalog).GetFields()
        .Where(f => f.FieldType == typeof(CommandError)).Select(f => (CommandError)f.GetValue(null)!).ToList();
}
