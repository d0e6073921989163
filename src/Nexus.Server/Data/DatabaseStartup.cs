using System.Data.Common;
using Microsoft.Extensions.Options;
using Nexus.Server.Hosting;

namespace Nexus.Server.Data;

/// <summary>Before Nexus serves requests: reach the database, migrate it, and run the components' startup steps on the migration connection.</summary>
internal sealed partial class DatabasePreparation(Migrator migrator, IEnumerable<IStartupStep> steps, NexusDatabase db, NexusOptions options, TimeProvider time, ILogger<DatabasePreparation> logger) : IStartupPreparation
{
    public async Task PrepareAsync(StartupPurpose purpose, CancellationToken ct)
    {
        try
        {
            db.CreateSqliteFileIfMissing();
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            // A data directory owned by another user, or a read-only file system: one line that says so, not a stack trace.
            throw new StartupException($"cannot create the SQLite database at {db.SqliteFile}: {e.Message.TrimEnd('.')}. Check that Nexus:DataDirectory is writable by the user Nexus runs as.");
        }

        if (purpose == StartupPurpose.Server && db.SqliteFileOpenToOthers() is { } mode)
        {
            // Nexus creates the file 0600; one from before that (or copied in) keeps its mode, which is the operator's to change.
            LogSqliteFileOpenToOthers(logger, db.SqliteFile!, mode);
        }

        await CheckDatabaseAsync(ct);
        await migrator.MigrateAsync(async connection =>
        {
            foreach (var step in steps)
            {
                await step.RunAsync(connection, purpose, ct);
            }
        }, ct);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The SQLite database {Path} can be read or written by other users of this machine (mode {Mode}): it holds password hashes, API-key HMACs, email addresses, the audit log and the encrypted tokens. Nexus creates it readable by its owner alone; make this one and its journal files so too: chmod 600 '{Path}'*")]
    private static partial void LogSqliteFileOpenToOthers(ILogger logger, string path, string mode);

    /// <summary>
    /// The first contact with the database, bounded by Nexus:StartupDatabaseTimeoutSeconds: an unreachable
    /// database or one that never answers ends startup with a <see cref="StartupException"/> that names it.
    /// </summary>
    private async Task CheckDatabaseAsync(CancellationToken ct)
    {
        var timeout = TimeSpan.FromSeconds(options.StartupDatabaseTimeoutSeconds);
        using var bounded = new Deadline(timeout, time, ct);
        try
        {
            // WaitAsync as well as the token: Npgsql does not always notice cancellation while a server that
            // accepted the connection withholds its handshake, and would wait out its own 15 s connect timeout.
            await db.PingAsync(bounded.Token).WaitAsync(timeout, time, ct);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && (e is OperationCanceledException || e.InnerException is OperationCanceledException or TimeoutException || e is TimeoutException))
        {
            throw new StartupException(
                $"the database ({db.Description}) accepted no query within {options.StartupDatabaseTimeoutSeconds} s. Check DATABASE_URL points at PostgreSQL and that the server is healthy (Nexus:StartupDatabaseTimeoutSeconds sets the wait).");
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is DbException or System.Net.Sockets.SocketException or IOException)
        {
            var reason = (e.InnerException as System.Net.Sockets.SocketException)?.Message ?? e.Message;
            throw new StartupException($"cannot reach the database ({db.Description}): {reason.TrimEnd('.')}. Check DATABASE_URL and that the database server is running.");
        }
    }
}

/// <summary>The database part of the startup banner.</summary>
internal sealed class DatabaseBannerItem(NexusDatabase db) : IStartupBannerItem
{
    public int Order => 20;

    public string Name => "database";

    public string Value => db.Description;
}

/// <summary>/readyz: the database answers (within 2 s), and no outage is under way.</summary>
internal sealed class DatabaseReadiness(NexusDatabase db, DatabaseHealth health) : IReadinessCheck
{
    public async Task<Readiness> CheckAsync(CancellationToken ct) =>
        new(await health.IsReadyAsync(ct), [new("database", db.Engine.ToString().ToLowerInvariant())], DatabaseHealth.RetryAfterSeconds);
}

/// <summary>
/// A database outage is temporary: 503 with Retry-After (RFC 9110 §10.2.3), logged once per outage by
/// <see cref="DatabaseHealth"/> rather than once per request; in the protocol's own format where one covers the path
/// (<see cref="IUnavailableResponder"/>: RFC 6749 temporarily_unavailable on the OAuth endpoints).
/// </summary>
internal sealed class DatabaseOutageAnswer(DatabaseHealth database, IEnumerable<IUnavailableResponder> protocols) : IExceptionAnswer
{
    public async ValueTask<bool> TryAnswerAsync(HttpContext context, Exception exception)
    {
        if (!DatabaseHealth.IsOutage(exception))
        {
            return false;
        }

        database.ReportOutage(exception);
        context.Response.Headers.RetryAfter = DatabaseHealth.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        const string description = "The database is temporarily unavailable. Retry after the number of seconds in Retry-After.";
        if (protocols.FirstOrDefault(p => p.Covers(context.Request.Path)) is { } protocol)
        {
            await protocol.RespondAsync(context, description);
        }
        else
        {
            await Problems.Create(ProblemCatalog.DatabaseUnavailable, description)
                .ExecuteAsync(context);
        }

        return true;
    }
}

/// <summary>DATABASE_URL, checked at startup with the other settings (NexusOptionsValidator).</summary>
internal sealed class DatabaseOptionsValidator : IValidateOptions<NexusOptions>
{
    public ValidateOptionsResult Validate(string? name, NexusOptions options)
    {
        if (string.IsNullOrEmpty(options.DatabaseUrl))
        {
            return ValidateOptionsResult.Success;
        }

        try
        {
            _ = DatabaseUrl.ToNpgsqlConnectionString(options.DatabaseUrl);
            return ValidateOptionsResult.Success;
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            // ArgumentException too: whatever Npgsql refuses is a setting to fix, said in one line, never a stack trace.
            return ValidateOptionsResult.Fail($"DATABASE_URL is not usable: {e.Message} Use postgres://user:password@host:5432/database or an Npgsql connection string (Host=...;Database=...).");
        }
    }
}
