using System.Collections.Concurrent;
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
/// connection and caller per AuditTokenReadIntervalSeconds, with the number of reads the event stands for.
/// </summary>
internal sealed class AuditLog(NexusDatabase db, NexusOptions options, TimeProvider time, DatabaseHealth database, ILogger<AuditLog> logger)
{
    private const int MaxTrackedReaders = 100_000;
    private readonly MonotonicUlid ids = new();
    private readonly ConcurrentDictionary<(string Connection, string Actor), ReadWindow> reads = new();

    private sealed class ReadWindow
    {
        public long Start;
        public long Count;
    }

    public async Task RecordAsync(string evt, string actor, string? workspaceId, string? connectionId, object? detail = null, CancellationToken ct = default)
    {
        await using var connection = await db.OpenAsync(ct);
        await RecordAsync(connection, evt, actor, workspaceId, connectionId, detail, ct);
    }

    public async Task RecordAsync(System.Data.Common.DbConnection connection, string evt, string actor, string? workspaceId, string? connectionId, object? detail, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO audit_events (id, at, actor, workspace_id, connection_id, event, detail) VALUES (@id, @at, @actor, @workspaceId, @connectionId, @evt, @detail)",
            new
            {
                // Events list newest first by time, then id: ids that count up within a millisecond keep events
                // recorded in the same millisecond (an activation and the first read) in the order they happened.
                id = ids.Next("evt_", now),
                at = now.ToUnixTimeMilliseconds(),
                actor,
                workspaceId,
                connectionId,
                evt,
                detail = JsonSerializer.Serialize(detail ?? new { }),
            }, cancellationToken: ct));
    }

    /// <summary>Counts a credential read and records a token_read event when its interval has passed. Never throws.</summary>
    public ValueTask TokenReadAsync(string actor, string workspaceId, string connectionId)
    {
        var interval = options.AuditTokenReadIntervalSeconds;
        var now = time.GetTimestamp();
        if (reads.Count > MaxTrackedReaders)
        {
            reads.Clear();
        }

        var window = reads.GetOrAdd((connectionId, actor), _ => new ReadWindow { Start = now - TimeSpan.TicksPerDay * 365 });
        long count;
        lock (window)
        {
            window.Count++;
            if (interval > 0 && time.GetElapsedTime(window.Start, now).TotalSeconds < interval)
            {
                return ValueTask.CompletedTask;
            }

            count = window.Count;
            window.Count = 0;
            window.Start = now;
        }

        return new ValueTask(RecordQuietlyAsync(actor, workspaceId, connectionId, count));
    }

    private async Task RecordQuietlyAsync(string actor, string workspaceId, string connectionId, long count)
    {
        try
        {
            await RecordAsync(AuditEvents.TokenRead, actor, workspaceId, connectionId, new { reads = count, interval_seconds = options.AuditTokenReadIntervalSeconds });
        }
        catch (Exception e) when (e is not OperationCanceledException && DatabaseHealth.IsOutage(e))
        {
            // During an outage cached reads go on; the outage is logged once, not once per read.
            database.ReportOutage(e);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The credential was already authorized; a failed audit write is logged, not turned into a failed read.
            logger.LogWarning(e, "Could not record token_read for {ConnectionId}", connectionId);
        }
    }

    /// <summary>Forgets the read counters of a deleted connection.</summary>
    public void ForgetConnection(string connectionId)
    {
        foreach (var key in reads.Keys.Where(k => k.Connection == connectionId))
        {
            reads.TryRemove(key, out _);
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
