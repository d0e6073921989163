using Dapper;
using Nexus.Server.Hosting;

namespace Nexus.Server.Data;

/// <summary>
/// A kind of stored row that stops being needed: each component says which of its rows those are (expired codes and
/// tokens, old delivery logs), <see cref="Retention"/> removes them. The rule decides what is safe to forget.
/// </summary>
internal interface IRetentionRule
{
    /// <summary>A short name for the purge command's JSON ("grants").</summary>
    string Key { get; }

    /// <summary>What the rows are, in the log's words ("expired authorization codes").</summary>
    string Name { get; }

    /// <summary>Removes every row no longer needed at <paramref name="now"/>; returns how many.</summary>
    Task<int> PurgeAsync(DateTimeOffset now, CancellationToken ct);
}

/// <summary>
/// Keeps the database from growing for ever: every <see cref="RetentionOptions.IntervalMinutes"/> each rule removes
/// what it no longer needs, a thousand rows per statement so that no pass holds a long write lock. Every instance may
/// run it: the deletes are idempotent, and another instance's pass only finds less to do.
/// </summary>
internal sealed class Retention(IEnumerable<IRetentionRule> rules, TimeProvider time, ILogger<Retention> logger)
{
    /// <summary>Rows per DELETE.</summary>
    public const int Batch = 1000;

    /// <summary>
    /// One pass of every rule; returns how many rows each removed (its <see cref="IRetentionRule.Key"/>). A rule that
    /// fails is logged and the others still run; a database outage ends the pass (the worker reports it).
    /// </summary>
    public async Task<IReadOnlyList<(string Rule, int Removed)>> RunOnceAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var removed = new List<(string, int)>();
        foreach (var rule in rules)
        {
            try
            {
                var count = await rule.PurgeAsync(now, ct);
                if (count > 0)
                {
                    logger.LogInformation("Retention removed {Count} {Rows}", count, rule.Name);
                }

                removed.Add((rule.Key, count));
            }
            catch (Exception e) when (e is not OperationCanceledException && !DatabaseHealth.IsOutage(e))
            {
                logger.LogWarning(e, "Retention could not remove {Rows}", rule.Name);
                removed.Add((rule.Key, 0));
            }
        }

        return removed;
    }

    /// <summary>
    /// Deletes the rows of <paramref name="table"/> matching <paramref name="where"/>, a batch at a time (a key lookup
    /// per batch: the same SQL on SQLite and PostgreSQL). The table, key and condition are this code's, never input.
    /// The condition is asked again of each row the batch deletes: on PostgreSQL a row another session changed after the
    /// batch's select read it (a connection reconnected, a delivery sent again) is re-read by the delete and kept when it
    /// no longer matches; the key alone would delete it.
    /// </summary>
    /// <param name="deleted">Told each deleted row's key (a cache to clear); null when nothing needs them.</param>
    public static async Task<int> DeleteAsync(NexusDatabase db, string table, string key, string where, object parameters, CancellationToken ct,
        Action<string>? deleted = null)
    {
        var total = 0;
        while (true)
        {
            int count;
            await using (var connection = await db.OpenAsync(ct))
            {
                var sql = $"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {where} LIMIT {Batch}) AND ({where})";
                if (deleted is null)
                {
                    count = await connection.ExecuteAsync(new CommandDefinition(sql, parameters, cancellationToken: ct));
                }
                else
                {
                    var keys = (await connection.QueryAsync<string>(new CommandDefinition(sql + $" RETURNING {key}", parameters, cancellationToken: ct))).ToList();
                    keys.ForEach(deleted);
                    count = keys.Count;
                }
            }

            total += count;
            if (count < Batch)
            {
                return total;
            }

            // Other writers (SQLite has one at a time) get their turn between batches.
            await Task.Yield();
        }
    }

    /// <summary>Runs <see cref="RunOnceAsync"/> a minute after start and every IntervalMinutes after that (never when 0).</summary>
    internal sealed class Worker(Retention retention, NexusOptions options, TimeProvider time, DatabaseHealth database, ILogger<Worker> logger) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            if (options.Retention.IntervalMinutes == 0)
            {
                return;
            }

            var wait = TimeSpan.FromMinutes(Math.Min(1, options.Retention.IntervalMinutes));
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(wait, time, stoppingToken);
                    await retention.RunOnceAsync(stoppingToken);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e) when (DatabaseHealth.IsOutage(e))
                {
                    database.ReportOutage(e);
                }
                catch (Exception e)
                {
                    logger.LogWarning(e, "Retention pass failed; trying again in {Minutes} min", options.Retention.IntervalMinutes);
                }

                wait = TimeSpan.FromMinutes(options.Retention.IntervalMinutes);
            }
        }
    }
}
