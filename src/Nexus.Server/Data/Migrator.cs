using System.Data.Common;
using System.Reflection;
using Dapper;

namespace Nexus.Server.Data;

/// <summary>
/// Versioned schema migrations: plain SQL files per engine under Data/Migrations/{sqlite,postgres}, embedded in
/// the assembly, named NNNN_description.sql. Each runs once, in its own transaction, recorded in
/// schema_migrations. Several instances starting together serialize on the startup lock (a PostgreSQL advisory lock, or a
/// lock file beside the SQLite database), so re-running is always safe.
/// </summary>
internal sealed class Migrator(NexusDatabase db, TimeProvider time, ILogger<Migrator> logger)
{
    public sealed record Migration(int Version, string Name, string Sql);

    public IReadOnlyList<Migration> Migrations { get; } = Load(db.Engine);

    /// <summary>Applies every pending migration and then runs <paramref name="afterMigrations"/> under the same lock.</summary>
    public async Task<int> MigrateAsync(Func<DbConnection, Task>? afterMigrations = null, CancellationToken ct = default)
    {
        // Not a pooled connection with Npgsql's 30 s Command Timeout: an instance waiting behind another's migrations, or a
        // long migration, must not fail for taking longer (see NexusDatabase.OpenStartupConnectionAsync).
        await using var connection = await db.OpenStartupConnectionAsync(ct);
        await using (await db.AcquireStartupLockAsync(connection, logger, ct))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                cancellationToken: ct));

            var applied = 0;
            foreach (var migration in Migrations)
            {
                await using var tx = await db.BeginLockedTransactionAsync(connection, ct);
                var done = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                    "SELECT COUNT(*) FROM schema_migrations WHERE version = @Version", new { migration.Version }, tx, cancellationToken: ct));
                if (done > 0)
                {
                    await tx.RollbackAsync(ct);
                    continue;
                }

                try
                {
                    await connection.ExecuteAsync(new CommandDefinition(migration.Sql, transaction: tx, cancellationToken: ct));
                }
                catch (DbException e)
                {
                    // docs/upgrading.md: a failed migration is rolled back, the log names it, and the process exits with
                    // code 1 and one line (StartupErrors), not a stack trace.
                    // The database's message, not the exception: a stack trace in the log helps nobody fix a migration.
                    logger.LogError("Migration {Version} {Name} failed and was rolled back: {Reason}", migration.Version, migration.Name, e.Message);
                    throw new Hosting.StartupException(
                        $"migration {migration.Version} ({migration.Name}) failed and was rolled back: {e.Message.TrimEnd('.')}. The database is as it was before it; fix the cause and start again.");
                }

                await connection.ExecuteAsync(new CommandDefinition(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (@Version, @Name, @At)",
                    new { migration.Version, migration.Name, At = time.GetUtcNow().ToUnixTimeMilliseconds() }, tx, cancellationToken: ct));
                await tx.CommitAsync(ct);
                applied++;
                logger.LogInformation("Applied migration {Version} {Name}", migration.Version, migration.Name);
            }

            if (afterMigrations is not null)
            {
                await afterMigrations(connection);
            }

            return applied;
        }
    }

    private static List<Migration> Load(DatabaseEngine engine)
    {
        var prefix = $"migrations/{(engine == DatabaseEngine.Sqlite ? "sqlite" : "postgres")}/";
        var assembly = Assembly.GetExecutingAssembly();
        var list = new List<Migration>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)))
        {
            var file = resource[prefix.Length..];
            var underscore = file.IndexOf('_', StringComparison.Ordinal);
            if (underscore <= 0 || !int.TryParse(file[..underscore], out var version))
            {
                throw new InvalidOperationException($"Migration '{resource}' must be named NNNN_description.sql.");
            }

            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            list.Add(new Migration(version, Path.GetFileNameWithoutExtension(file)[(underscore + 1)..], reader.ReadToEnd()));
        }

        list.Sort((a, b) => a.Version.CompareTo(b.Version));
        for (var i = 0; i < list.Count; i++)
        {
            if (list[i].Version != i + 1)
            {
                throw new InvalidOperationException($"Migrations must be numbered 1, 2, 3… without gaps; found {list[i].Version} at position {i + 1}.");
            }
        }

        return list;
    }
}
