using System.Text.Json;
using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.Audit;

/// <summary>The events the broker records.</summary>
internal static class AuditEvents
{
    public const string Requested = "requested";
    public const string Activated = "activated";
    public const string Failed = "failed";
    public const string TokenRead = "token_read";
    public const string Revoked = "revoked";

    /// <summary>A refresh asked for through POST /v1/refresh/{id} (automatic refreshes are not recorded one by one).</summary>
    public const string Refreshed = "refreshed";

    /// <summary>A refresh failed transiently (the first failure of a streak; retries are not recorded one by one).</summary>
    public const string RefreshFailed = "refresh_failed";

    /// <summary>The provider rejected the refresh (or the token expired without one): the user must connect again.</summary>
    public const string AttentionRequired = "attention_required";

    /// <summary>A reconnect's consent completed: new tokens replaced the old ones, which were revoked at the provider.</summary>
    public const string Reconnected = "reconnected";

    /// <summary>Refreshes work again after transient failures.</summary>
    public const string Recovered = "recovered";

    public static readonly string[] All = [Requested, Activated, Failed, TokenRead, Revoked, Refreshed, RefreshFailed, AttentionRequired, Reconnected, Recovered];
}

internal sealed record AuditEvent(string Id, DateTimeOffset At, string Actor, string? WorkspaceId, string? ConnectionId, string Event, JsonElement Detail);

/// <summary>
/// Append-only record of who did what to which connection. Callers pass details that hold no secret (ids,
/// statuses, provider error codes). Credential reads are the hot path, so they are recorded at most once per
/// connection and caller per AuditTokenReadIntervalSeconds, with the number of reads the event stands for, and
/// written off the request path: <see cref="TokenRead"/> queues the event (its time and id are taken at the read) and
/// <see cref="AuditWriter"/> writes what has queued up in one transaction. Reads spread over many connections
/// (every read the first of its interval) used to cost a commit each, which held GET /v1/token to the database's
/// commit rate (bench/scale.sh). A query of the log first waits for what this instance has queued, so an event
/// recorded before the query is in its answer; another instance's queued reads follow within its next write.
/// </summary>
internal sealed class AuditLog(NexusDatabase db, NexusOptions options, TimeProvider time, DatabaseHealth database, ILogger<AuditLog> logger)
{
    private const int MaxTrackedReaders = 100_000;

    /// <summary>Events written in one transaction at most.</summary>
    public const int MaxBatch = 500;

    /// <summary>Events queued at most; beyond this (the database has stopped keeping up) reads are counted but not recorded.</summary>
    private const int MaxQueued = 100_000;

    /// <summary>Events per INSERT statement of a batch: 700 parameters, far below PostgreSQL's and SQLite's limits.</summary>
    private const int RowsPerInsert = 100;

    private static readonly string SingleInsert = BuildInsert(1);
    private static readonly string FullInsert = BuildInsert(RowsPerInsert);

    private readonly MonotonicUlid ids = new();
    private readonly Hosting.CountedDictionary<(string Connection, string Actor), ReadWindow> reads = new();

    // Queued events, and flush requests (a TaskCompletionSource completed once everything queued before it is written).
    private readonly System.Threading.Channels.Channel<object> queue = System.Threading.Channels.Channel.CreateBounded<object>(
        new System.Threading.Channels.BoundedChannelOptions(MaxQueued) { SingleReader = true, FullMode = System.Threading.Channels.BoundedChannelFullMode.Wait });

    private long dropped;

    private sealed class ReadWindow
    {
        public long Start;
        public long Count;
    }

    /// <summary>One row of audit_events.</summary>
    private sealed record Queued(string Id, long At, string Actor, string? WorkspaceId, string? ConnectionId, string Event, string Detail);

    public Task RecordAsync(string evt, string actor, string? workspaceId, string? connectionId, object? detail = null, CancellationToken ct = default)
        => RecordAtAsync(null, evt, actor, workspaceId, connectionId, detail, ct);

    /// <summary>
    /// Records an event at the time its outcome was decided (<paramref name="at"/>), not when it is written: a refresh
    /// decides under the connection's lock and writes after releasing it, when a disconnect that waited for the lock
    /// may already have recorded "revoked"; stamped with the time under the lock, the refresh stays before it. Null: now.
    /// </summary>
    public async Task RecordAtAsync(DateTimeOffset? at, string evt, string actor, string? workspaceId, string? connectionId, object? detail, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await InsertAsync(connection, [NewEvent(evt, actor, workspaceId, connectionId, detail, at)], 0, 1, null, ct);
    }

    public async Task RecordAsync(System.Data.Common.DbConnection connection, string evt, string actor, string? workspaceId, string? connectionId, object? detail, CancellationToken ct)
    {
        await InsertAsync(connection, [NewEvent(evt, actor, workspaceId, connectionId, detail)], 0, 1, null, ct);
    }

    private Queued NewEvent(string evt, string actor, string? workspaceId, string? connectionId, object? detail, DateTimeOffset? at = null) =>
        NewEvent(evt, actor, workspaceId, connectionId, JsonSerializer.Serialize(detail ?? new { }), at);

    private Queued NewEvent(string evt, string actor, string? workspaceId, string? connectionId, string detailJson, DateTimeOffset? at = null)
    {
        var now = at ?? time.GetUtcNow();
        // Events list newest first by time, then id: ids that count up within a millisecond keep events recorded in
        // the same millisecond (an activation and the first read) in the order they happened.
        return new Queued(ids.Next("evt_", now), now.ToUnixTimeMilliseconds(), actor, workspaceId, connectionId, evt, detailJson);
    }

    /// <summary>Counts a credential read and queues a token_read event when its interval has passed. Never throws, never waits.</summary>
    public void TokenRead(string actor, string workspaceId, string connectionId)
    {
        var interval = options.AuditTokenReadIntervalSeconds;
        long count = 1;
        if (interval > 0)
        {
            // Only an interval needs the reads counted per connection and caller; without one every read is an event.
            var now = time.GetTimestamp();
            var key = (connectionId, actor);
            if (!reads.TryGetValue(key, out var window))
            {
                if (reads.Count >= MaxTrackedReaders)
                {
                    // A bound on memory: forgetting the counters costs at most one more event per connection and caller.
                    reads.Clear();
                }

                window = reads.GetOrAdd(key, new ReadWindow { Start = now - TimeSpan.TicksPerDay * 365 });
            }

            lock (window)
            {
                window.Count++;
                if (time.GetElapsedTime(window.Start, now).TotalSeconds < interval)
                {
                    return;
                }

                count = window.Count;
                window.Count = 0;
                window.Start = now;
            }
        }

        // The detail written directly ({"reads":N,"interval_seconds":S}): no serializer on the read path.
        var detail = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{{\"reads\":{count},\"interval_seconds\":{interval}}}");
        if (!queue.Writer.TryWrite(NewEvent(AuditEvents.TokenRead, actor, workspaceId, connectionId, detail)))
        {
            Interlocked.Increment(ref dropped);
        }
    }

    /// <summary>Waits (at most <paramref name="timeout"/>) until every event queued so far is written, or could not be.</summary>
    public async Task FlushAsync(TimeSpan timeout, CancellationToken ct)
    {
        var written = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (queue.Writer.TryWrite(written))
        {
            try
            {
                await written.Task.WaitAsync(timeout, time, ct);
            }
            catch (TimeoutException)
            {
                // The writer is behind (or not running, as in a command that never starts the host): answer with what is written.
            }
        }
    }

    /// <summary>
    /// The writer's loop (<see cref="AuditWriter"/>): everything queued since the last write goes into one transaction
    /// (at most <see cref="MaxBatch"/> events), so the commits follow the load instead of one per event. Returns when
    /// <paramref name="stopping"/> is cancelled and the queue has been written.
    /// </summary>
    public async Task WriteQueuedAsync(CancellationToken stopping)
    {
        var batch = new List<Queued>(MaxBatch);
        var flushes = new List<TaskCompletionSource>();
        var reader = queue.Reader;
        while (true)
        {
            try
            {
                if (!await reader.WaitToReadAsync(stopping))
                {
                    return;
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                // Stopping: what is queued is still written (below, once), then the loop ends.
            }

            while (batch.Count < MaxBatch && reader.TryRead(out var item))
            {
                if (item is TaskCompletionSource flush)
                {
                    flushes.Add(flush);
                    if (batch.Count > 0)
                    {
                        break; // a flush waits for what was queued before it, no more
                    }
                }
                else
                {
                    batch.Add((Queued)item);
                }
            }

            if (batch.Count > 0)
            {
                await WriteAsync(batch);
                batch.Clear();
            }

            foreach (var flush in flushes)
            {
                flush.TrySetResult();
            }

            flushes.Clear();
            if (Interlocked.Exchange(ref dropped, 0) is var lost and > 0)
            {
                logger.LogWarning("{Count} token_read audit events were not recorded: the database did not keep up with the reads.", lost);
            }

            if (stopping.IsCancellationRequested && !reader.TryPeek(out _))
            {
                return;
            }
        }
    }

    private async Task WriteAsync(List<Queued> batch)
    {
        try
        {
            await using var connection = await db.OpenAsync(CancellationToken.None);
            await using var transaction = await connection.BeginTransactionAsync();
            // One commit for the batch, and one statement per RowsPerInsert events (a round trip each on PostgreSQL).
            for (var start = 0; start < batch.Count; start += RowsPerInsert)
            {
                await InsertAsync(connection, batch, start, Math.Min(RowsPerInsert, batch.Count - start), transaction, CancellationToken.None);
            }

            await transaction.CommitAsync();
        }
        catch (Exception e) when (DatabaseHealth.IsOutage(e))
        {
            // During an outage cached reads go on; the outage is logged once, not once per read.
            database.ReportOutage(e);
        }
        catch (Exception e)
        {
            // The credentials were already handed out; a failed audit write is logged, not turned into failed reads.
            logger.LogWarning(e, "Could not record {Count} token_read events", batch.Count);
        }
    }

    /// <summary>events[start..start+rows] as one INSERT statement (the one place the columns and parameters are named).</summary>
    private static Task<int> InsertAsync(System.Data.Common.DbConnection connection, IReadOnlyList<Queued> events, int start, int rows,
        System.Data.Common.DbTransaction? transaction, CancellationToken ct)
    {
        var parameters = new DynamicParameters();
        for (var i = 0; i < rows; i++)
        {
            var e = events[start + i];
            parameters.Add("id" + i, e.Id);
            parameters.Add("at" + i, e.At);
            parameters.Add("actor" + i, e.Actor);
            parameters.Add("ws" + i, e.WorkspaceId);
            parameters.Add("conn" + i, e.ConnectionId);
            parameters.Add("evt" + i, e.Event);
            parameters.Add("detail" + i, e.Detail);
        }

        var sql = rows switch { 1 => SingleInsert, RowsPerInsert => FullInsert, _ => BuildInsert(rows) };
        return connection.ExecuteAsync(new CommandDefinition(sql, parameters, transaction, cancellationToken: ct));
    }

    private static string BuildInsert(int rows)
    {
        var sql = new System.Text.StringBuilder("INSERT INTO audit_events (id, at, actor, workspace_id, connection_id, event, detail) VALUES ");
        for (var i = 0; i < rows; i++)
        {
            sql.Append(i == 0 ? "" : ", ").Append(System.Globalization.CultureInfo.InvariantCulture,
                $"(@id{i}, @at{i}, @actor{i}, @ws{i}, @conn{i}, @evt{i}, @detail{i})");
        }

        return sql.ToString();
    }

    /// <summary>Forgets the read counters of a deleted connection.</summary>
    public void ForgetConnection(string connectionId)
    {
        foreach (var (key, _) in reads)
        {
            if (key.Connection == connectionId)
            {
                reads.TryRemove(key);
            }
        }
    }

    private sealed class Row
    {
        public string Id { get; init; } = "";
        public long At { get; init; }
        public string Actor { get; init; } = "";
        public string? WorkspaceId { get; init; }
        public string? ConnectionId { get; init; }
        public string Event { get; init; } = "";
        public string Detail { get; init; } = "{}";
    }

    public async Task<IReadOnlyList<AuditEvent>> QueryAsync(string? workspaceId, string? connectionId, string? evt, int limit, CancellationToken ct)
    {
        // Events recorded before the query are in its answer, queued reads included.
        await FlushAsync(TimeSpan.FromSeconds(30), ct);
        var where = new List<string>();
        if (workspaceId is not null)
        {
            where.Add("workspace_id = @workspaceId");
        }

        if (connectionId is not null)
        {
            where.Add("connection_id = @connectionId");
        }

        if (evt is not null)
        {
            where.Add("event = @evt");
        }

        var sql = "SELECT id, at, actor, workspace_id, connection_id, event, detail FROM audit_events"
            + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "") + " ORDER BY at DESC, id DESC LIMIT @limit";
        await using var connection = await db.OpenAsync(ct);
        var rows = await connection.QueryAsync<Row>(new CommandDefinition(sql, new { workspaceId, connectionId, evt, limit }, cancellationToken: ct));
        return rows.Select(r => new AuditEvent(r.Id, DateTimeOffset.FromUnixTimeMilliseconds(r.At), r.Actor, r.WorkspaceId, r.ConnectionId, r.Event,
            JsonDocument.Parse(r.Detail).RootElement.Clone())).ToList();
    }
}

/// <summary>
/// ULIDs in the order this process makes them (the ULID spec's monotonicity): within one millisecond, and if the
/// clock steps back, the random part of the previous one counts up instead of being drawn again.
/// </summary>
internal sealed class MonotonicUlid
{
    private readonly Lock gate = new();
    private long lastMs = long.MinValue;
    private UInt128 last;

    public string Next(string prefix, DateTimeOffset now)
    {
        long ms;
        UInt128 random;
        lock (gate)
        {
            ms = Math.Max(now.ToUnixTimeMilliseconds(), lastMs);
            if (ms == lastMs && last < SecretGenerator.UlidRandomMask)
            {
                random = last + UInt128.One;
            }
            else
            {
                // A new millisecond (or, in theory, a full one): draw again, with the top bit clear so that there
                // is room to count up.
                ms = ms == lastMs ? ms + 1 : ms;
                random = SecretGenerator.Random80() >> 1;
            }

            lastMs = ms;
            last = random;
        }

        return SecretGenerator.Ulid(prefix, ms, random);
    }
}
