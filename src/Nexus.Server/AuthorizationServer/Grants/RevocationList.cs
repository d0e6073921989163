using System.Collections.Concurrent;
using System.Data.Common;
using Dapper;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Data;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Grants;

/// <summary>
/// What has been revoked, in memory, so that introspection, userinfo and every bearer-token check (/api/v1/me, /mcp)
/// answer without a database query: revoked grants (and so every access token issued from them), access tokens
/// revoked one by one (RFC 7009) and revoked clients.
/// <list type="bullet">
/// <item>A revocation made by this instance is added at once, after the database write.</item>
/// <item>Revocations made by other instances are read from the database every
/// <see cref="RevocationOptions.PollSeconds"/>; on PostgreSQL each revocation also sends a NOTIFY that makes every
/// listening instance read at once.</item>
/// <item>The list answers only while its last successful read began less than 2 × PollSeconds ago; otherwise
/// (at start, during an outage, PollSeconds = 0) every check asks the database, as before. So another instance's
/// revocation takes effect here within 2 × PollSeconds at worst, usually within PollSeconds.</item>
/// </list>
/// Each read re-reads the last <see cref="Overlap"/> of revocations, so a write that committed late (a lock wait) or was
/// stamped by an instance whose clock is a little behind is still seen. Entries are kept only as long as a token they
/// cover could still be accepted: grants for MaxAccessTokenLifetimeSeconds (no access token is issued from a revoked
/// grant) plus an hour, token ids until their token expired.
/// </summary>
internal sealed class RevocationList(NexusDatabase db, NexusOptions options, TimeProvider time, ILogger<RevocationList> logger) : IDisposable
{
    /// <summary>The PostgreSQL channel a revocation is announced on (the payload is empty: listeners just read).</summary>
    public const string Channel = "nexus_revocations";

    /// <summary>The listening connection's application_name in pg_stat_activity.</summary>
    public const string ListenerName = "Nexus revocation listener";

    /// <summary>How far back each read looks past the previous one.</summary>
    public static readonly TimeSpan Overlap = TimeSpan.FromMinutes(2);

    private static readonly TimeSpan TokenMargin = TimeSpan.FromMinutes(5);

    private readonly ConcurrentDictionary<string, long> grants = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<string, long> tokens = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<string, long> clients = new(StringComparer.Ordinal);

    private readonly SemaphoreSlim syncing = new(1, 1);

    /// <summary>Completed to make the poller read before its next tick; replaced by the poller before each read.</summary>
    private TaskCompletionSource wakeSignal = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>GetTimestamp() when the last successful read began; 0 before the first.</summary>
    private long syncedAt;

    /// <summary>Unix ms (this instance's clock) when the last successful read began; 0 before the first (a full read).</summary>
    private long watermark;

    private TimeSpan Poll => TimeSpan.FromSeconds(options.Revocation.PollSeconds);

    /// <summary>Whether the list is recent enough to answer without the database.</summary>
    public bool IsCurrent
    {
        get
        {
            var at = Volatile.Read(ref syncedAt);
            return at != 0 && options.Revocation.PollSeconds > 0 && time.GetElapsedTime(at) < 2 * Poll;
        }
    }

    /// <summary>Whether a validated access token was revoked: on its own, through its grant, or with its client.</summary>
    public ValueTask<bool> IsRevokedAsync(AccessTokenClaims claims, CancellationToken ct)
    {
        // Entries added by this instance count even while the list is not current.
        if (tokens.ContainsKey(claims.Jti) || (claims.GrantId is { } grant && grants.ContainsKey(grant)) || clients.ContainsKey(claims.ClientId))
        {
            return ValueTask.FromResult(true);
        }

        return IsCurrent ? ValueTask.FromResult(false) : new ValueTask<bool>(AskDatabaseAsync(claims, ct));
    }

    /// <summary>
    /// Whether this list holds the client as revoked (for tokens that are not access tokens, such as refresh tokens at
    /// introspection); the caller also checks the client through ClientRegistry, as it does for access tokens.
    /// </summary>
    public bool IsClientRevoked(string clientId) => clients.ContainsKey(clientId);

    private async Task<bool> AskDatabaseAsync(AccessTokenClaims claims, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var revoked = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT (SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = @Jti) + (SELECT COUNT(*) FROM oauth_clients WHERE client_id = @ClientId AND revoked_at IS NOT NULL)"
            + (claims.GrantId is null ? "" : " + (SELECT COUNT(*) FROM grants WHERE id = @GrantId AND revoked_at IS NOT NULL)"),
            new { claims.Jti, claims.GrantId, claims.ClientId }, cancellationToken: ct));
        // The client too: its ClientRegistry copy may be ClientCacheSeconds old, and without a current list (PollSeconds
        // 0, or a poll that has not succeeded lately) nothing else tells this instance that another one deleted it.
        return revoked > 0;
    }

    // ---- this instance's revocations (called after the database write) -----------------------------------------

    public Task GrantsRevokedAsync(DbConnection connection, IEnumerable<string> grantIds, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var any = false;
        foreach (var id in grantIds)
        {
            grants[id] = now;
            any = true;
        }

        return any ? AnnounceAsync(connection, ct) : Task.CompletedTask;
    }

    public Task TokenRevokedAsync(DbConnection connection, string jti, long expiresAtSeconds, CancellationToken ct)
    {
        tokens[jti] = expiresAtSeconds * 1000;
        return AnnounceAsync(connection, ct);
    }

    public Task ClientRevokedAsync(DbConnection connection, string clientId, CancellationToken ct)
    {
        clients[clientId] = time.GetUtcNow().ToUnixTimeMilliseconds();
        return AnnounceAsync(connection, ct);
    }

    /// <summary>PostgreSQL: tells the other instances to read now rather than at their next poll.</summary>
    private async Task AnnounceAsync(DbConnection connection, CancellationToken ct)
    {
        if (db.Engine != DatabaseEngine.Postgres)
        {
            return;
        }

        try
        {
            await connection.ExecuteAsync(new CommandDefinition($"NOTIFY {Channel}", cancellationToken: ct));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The revocation is stored; the other instances still see it at their next poll.
            logger.LogWarning(e, "Could not announce a revocation to the other instances");
        }
    }

    // ---- reading what other instances revoked -------------------------------------------------------------------

    /// <summary>
    /// Reads the revocations made since the previous read (everything still relevant the first time, which startup
    /// does, so the list answers from the first request). <paramref name="connection"/>: one to use, else a new one.
    /// </summary>
    public async Task SyncAsync(CancellationToken ct, DbConnection? connection = null)
    {
        if (options.Revocation.PollSeconds == 0)
        {
            return;
        }

        await syncing.WaitAsync(ct);
        try
        {
            var startedAt = time.GetTimestamp();
            var now = time.GetUtcNow();
            var nowMs = now.ToUnixTimeMilliseconds();
            var full = watermark == 0;
            var since = full ? 0 : watermark - (long)Overlap.TotalMilliseconds;
            var grantHorizon = now.AddSeconds(-options.MaxAccessTokenLifetimeSeconds).AddHours(-1).ToUnixTimeMilliseconds();
            var tokenHorizon = (now - TokenMargin).ToUnixTimeMilliseconds();

            var own = connection is null ? await db.OpenAsync(ct) : null;
            await using var _ = own;
            connection ??= own!;
            var revokedGrants = await connection.QueryAsync<(string Id, long RevokedAt)>(new CommandDefinition(
                "SELECT id, revoked_at FROM grants WHERE revoked_at >= @from", new { from = Math.Max(since, grantHorizon) }, cancellationToken: ct));
            var revokedTokens = await connection.QueryAsync<(string Jti, long ExpiresAt)>(new CommandDefinition(
                full ? "SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at >= @tokenHorizon"
                    : "SELECT jti, expires_at FROM revoked_access_tokens WHERE revoked_at >= @since AND expires_at >= @tokenHorizon",
                new { since, tokenHorizon }, cancellationToken: ct));
            var revokedClients = await connection.QueryAsync<(string Id, long RevokedAt)>(new CommandDefinition(
                full ? "SELECT client_id, revoked_at FROM oauth_clients WHERE revoked_at IS NOT NULL"
                    : "SELECT client_id, revoked_at FROM oauth_clients WHERE revoked_at >= @since",
                new { since }, cancellationToken: ct));

            foreach (var (id, at) in revokedGrants)
            {
                grants[id] = at;
            }

            foreach (var (jti, expiresAt) in revokedTokens)
            {
                tokens[jti] = expiresAt;
            }

            foreach (var (id, at) in revokedClients)
            {
                clients[id] = at;
            }

            Prune(grants, grantHorizon);
            Prune(tokens, tokenHorizon);
            watermark = nowMs;
            Volatile.Write(ref syncedAt, startedAt);
        }
        finally
        {
            syncing.Release();
        }
    }

    private static void Prune(ConcurrentDictionary<string, long> entries, long before)
    {
        foreach (var (key, value) in entries)
        {
            if (value < before)
            {
                entries.TryRemove(KeyValuePair.Create(key, value));
            }
        }
    }

    /// <summary>Makes the poller read now (a NOTIFY arrived).</summary>
    private void Wake() => Volatile.Read(ref wakeSignal).TrySetResult();

    /// <summary>Waits until the next read is due: PollSeconds, or sooner when woken. A wake-up during the read counts.</summary>
    private async Task WaitForNextReadAsync(TaskCompletionSource signal, CancellationToken ct)
    {
        try
        {
            await signal.Task.WaitAsync(Poll, time, ct);
        }
        catch (TimeoutException)
        {
        }
    }

    public void Dispose() => syncing.Dispose();

    /// <summary>Reads every PollSeconds, and at once when another instance announces a revocation.</summary>
    internal sealed class Poller(RevocationList list, NexusDatabase db, NexusOptions options, TimeProvider time, Data.DatabaseHealth database, ILogger<Poller> logger) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            if (options.Revocation.PollSeconds == 0)
            {
                return;
            }

            if (db.Engine == DatabaseEngine.Postgres)
            {
                _ = ListenAsync(stoppingToken);
            }

            while (!stoppingToken.IsCancellationRequested)
            {
                var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                Volatile.Write(ref list.wakeSignal, signal);
                try
                {
                    await list.SyncAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException && Data.DatabaseHealth.IsOutage(e))
                {
                    // Checks ask the database until a read succeeds again; the outage is logged once.
                    database.ReportOutage(e);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning(e, "Could not read revocations; checks ask the database until a read succeeds");
                }

                try
                {
                    await list.WaitForNextReadAsync(signal, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }

        /// <summary>
        /// PostgreSQL LISTEN on a connection of its own, outside the pool (the pool does not reset the connections it hands
        /// out: NexusDatabase.WithConnectionDefaults); reconnects after a failure (polling covers the gap).
        /// </summary>
        private async Task ListenAsync(CancellationToken ct)
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    await using var connection = await db.OpenDedicatedAsync(ListenerName, ct);
                    connection.Notification += (_, _) => list.Wake();
                    await connection.ExecuteAsync(new CommandDefinition($"LISTEN {Channel}", cancellationToken: ct));
                    list.Wake(); // anything announced while not listening
                    while (!ct.IsCancellationRequested)
                    {
                        await connection.WaitAsync(ct);
                    }
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e)
                {
                    logger.LogDebug(e, "Listening for revocations failed; polling until it reconnects");
                    try
                    {
                        await Task.Delay(TimeSpan.FromSeconds(Math.Max(1, options.Revocation.PollSeconds)), time, ct);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            }
        }
    }
}
