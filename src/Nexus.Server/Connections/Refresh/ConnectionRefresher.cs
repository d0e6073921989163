using System.Collections.Concurrent;
using Nexus.Server.Audit;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections.Refresh;

/// <summary>Why a refresh is being considered; it decides what "still needed" means once the lock is held.</summary>
internal enum RefreshMode
{
    /// <summary>A credential read found the token within its margin (or expired).</summary>
    OnRead,

    /// <summary>The background refresher found the connection due; it never waits for another holder.</summary>
    Background,

    /// <summary>POST /v1/refresh/{id} or a provider's 401 through the Bridge: refresh unless someone just did.</summary>
    Force,
}

internal enum RefreshStatus
{
    /// <summary>No provider call was needed: the stored token is good (possibly because another caller just refreshed it).</summary>
    Current,

    /// <summary>This call obtained and stored a new access token.</summary>
    Refreshed,

    /// <summary>The provider rejected the grant (or the token expired without a refresh token): the user must connect again.</summary>
    AttentionRequired,

    /// <summary>A transient failure, now or earlier and still backing off: try again at RetryAtMs.</summary>
    RetryLater,

    /// <summary>The connection is pending, failed or (for automatic refreshes) needs attention.</summary>
    NotActive,

    /// <summary>Forced, but there is no refresh token (or the provider does not support refreshing).</summary>
    NotRefreshable,

    /// <summary>The connection was deleted.</summary>
    Gone,

    /// <summary>Background only: another refresher (thread or instance) holds the connection.</summary>
    Skipped,
}

/// <summary>
/// The outcome of a refresh, with the connection's state as the refresh left it (null when there is none to report):
/// every caller that shared the refresh patches its own view of the connection with it.
/// </summary>
internal sealed record RefreshResult(RefreshStatus Status, RefreshRow? Row = null, long? RetryAtMs = null, string? Error = null)
{
    /// <summary>
    /// When the refresh took the connection's lock: the time its audit events carry, so that they come before what a
    /// disconnect that waited for the lock records (null when no refresh ran under the lock).
    /// </summary>
    public DateTimeOffset? LockedAt { get; init; }

    /// <summary><paramref name="seen"/> brought up to date with the refresh.</summary>
    public Connection For(Connection seen) => Row?.Patch(seen) ?? seen;
}

/// <summary>What a credential read serves: the connection to answer from, or a problem to answer with instead.</summary>
internal readonly record struct FreshConnection(Connection? Connection, IResult? Problem);

/// <summary>
/// The refresh engine. Exactly one refresh per connection at a time, across threads and instances: callers in this
/// process share one in-flight refresh per connection (single flight), and that refresh holds the connection's row
/// lock (PostgreSQL) for its whole duration. Under the lock the row is read again, so a refresh that another thread
/// or instance has just finished is reused, never repeated: with providers that rotate refresh tokens and treat
/// reuse as theft (RFC 9700 §4.14.2), a repeated refresh would revoke the user's whole grant.
/// <para>
/// Failure policy: a rejected grant (invalid_grant or the provider's equivalent) moves the connection to
/// attention_required and it is never retried automatically; a transient failure (network, timeout, 5xx, 429)
/// keeps it active and retries with exponential backoff and jitter, while reads keep getting the current token as
/// long as it is valid and 503 with Retry-After once it is not.
/// </para>
/// </summary>
internal sealed class ConnectionRefresher(
    RefreshStore store,
    ConnectionStore connections,
    ProviderRegistry registry,
    ProviderClient providerClient,
    RefreshClient client,
    ConnectionNotifier notifier,
    AuditLog audit,
    NexusOptions options,
    TimeProvider time,
    ILogger<ConnectionRefresher> logger,
    Observability.NexusMetrics metrics,
    IEnumerable<IProviderModeHandler> modeHandlers)
{
    private const int MaxBackoffEntries = 100_000;

    /// <summary>A refresh in flight; <see cref="SeenUpdatedAt"/> is the version a forced refresh started from.</summary>
    private sealed record Flight(RefreshMode Mode, long? SeenUpdatedAt, Task<RefreshResult> Task);

    private readonly ConcurrentDictionary<string, Flight> flights = new(StringComparer.Ordinal);

    private long joins;

    /// <summary>The refreshes in flight on this instance, whoever started them: shutdown waits for them (RefreshWorker.StopAsync).</summary>
    internal IEnumerable<Task> InFlight => flights.Values.Select(f => (Task)f.Task);

    /// <summary>How many callers (reads, forced refreshes) have joined or started a refresh on this instance: each has read the row it compares with by then. Lets a test hold the provider until every concurrent caller is in.</summary>
    internal long Joins => Interlocked.Read(ref joins);

    /// <summary>
    /// Connections of this instance that failed transiently, with their next attempt (Unix ms), so that reads during
    /// a provider outage are answered from memory instead of queueing on the database lock one after another.
    /// </summary>
    private readonly ConcurrentDictionary<string, long> backoff = new(StringComparer.Ordinal);

    private readonly ShortLivedCache<Provider> providers = new(time, () => options.ConnectionCacheSeconds);

    private RefreshOptions Settings => options.Refresh;

    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>A provider as the refresh engine sees it: cached like connection rows, since reads consult it.</summary>
    public ValueTask<Provider?> FindProviderAsync(string name) =>
        providers.GetAsync(name, registry, static (n, registry) => registry.FindAsync(n, CancellationToken.None));

    /// <summary>Drops a cached provider (its refresh settings changed).</summary>
    public void ForgetProvider(string name) => providers.Invalidate(name);

    /// <summary>
    /// GET /v1/token's step before answering: refreshes an access token that is within its margin of expiry and
    /// returns the connection to answer from. Costs nothing for a token in the first half of its lifetime, which is
    /// nearly every read; a connection that is not active is returned unchanged, for the caller's own 409.
    /// </summary>
    public ValueTask<FreshConnection> EnsureFreshAsync(Connection connection, CancellationToken ct)
    {
        if (connection.Status != ConnectionStatus.Active || connection.AccessToken is null || connection.TokenExpiresAt is not { } expiresAt)
        {
            return new(new FreshConnection(connection, null));
        }

        // The effective margin is at most half the lifetime, so a token in its first half is never due: no lookup.
        var now = Now;
        if (expiresAt - now > (expiresAt - connection.UpdatedAt) / 2)
        {
            return new(new FreshConnection(connection, null));
        }

        return EnsureFreshSlowAsync(connection, expiresAt, now, ct);
    }

    private async ValueTask<FreshConnection> EnsureFreshSlowAsync(Connection connection, long expiresAt, long now, CancellationToken ct)
    {
        var provider = await FindProviderAsync(connection.ProviderName);
        var canRefresh = RefreshSchedule.CanRefresh(connection.RefreshToken is not null, provider);
        var dueAt = RefreshSchedule.ReadDueAt(canRefresh, connection.UpdatedAt, expiresAt, RefreshSchedule.MarginMs(Settings, provider));
        if (dueAt > now)
        {
            return new FreshConnection(connection, null);
        }

        if (backoff.TryGetValue(connection.Id, out var retryAt))
        {
            if (retryAt > now)
            {
                return Serve(connection, new RefreshResult(RefreshStatus.RetryLater, null, retryAt), now);
            }

            backoff.TryRemove(KeyValuePair.Create(connection.Id, retryAt));
        }

        // The reader stops waiting when its request ends; the refresh itself always completes.
        var (mode, flight) = Join(connection.Id, RefreshMode.OnRead, null);
        var result = await flight.WaitAsync(ct);
        if (mode == RefreshMode.Background && result.Status == RefreshStatus.Skipped)
        {
            // The background flight this read joined did not wait for the connection's lock (another refresh, or a
            // resource token's mint, held it): the read waits for it in a flight of its own.
            result = await Join(connection.Id, RefreshMode.OnRead, null).Task.WaitAsync(ct);
        }
        else if (mode == RefreshMode.Background && result.Status == RefreshStatus.Current
            && result.For(connection) is var current && current.TokenExpiresAt is { } currentExpiry
            && RefreshSchedule.ReadDueAt(canRefresh, current.UpdatedAt, currentExpiry, RefreshSchedule.MarginMs(Settings, provider)) <= Now)
        {
            // The background refresh this read joined decided by its own schedule and clock (too early to look,
            // or backing off) and left the token as it was: that is no answer for a read whose token is due. As
            // ForceRefreshAsync does, it then runs its own, which refreshes, or reports the backoff or the expiry.
            result = await Join(connection.Id, RefreshMode.OnRead, null).Task.WaitAsync(ct);
        }

        return Serve(connection, result, Now);
    }

    private static FreshConnection Serve(Connection seen, RefreshResult result, long now)
    {
        var current = result.For(seen);
        switch (result.Status)
        {
            case RefreshStatus.Gone:
                return new FreshConnection(null, Problems.NotFound("Connection"));
            case RefreshStatus.RetryLater when current.Status == ConnectionStatus.Active && current.TokenExpiresAt <= now:
                // A token that is still valid is still a good answer; only an expired one makes the read fail.
                return new FreshConnection(null, Unavailable(current.Id, result.RetryAtMs ?? now + 1000, now, result.Error));
            default:
                return new FreshConnection(current, null);
        }
    }

    /// <summary>503 with Retry-After (RFC 9110 §15.6.4, §10.2.3): the token expired and the provider cannot renew it right now.</summary>
    public static IResult Unavailable(string connectionId, long retryAtMs, long nowMs, string? error)
    {
        var seconds = (int)Math.Clamp((retryAtMs - nowMs + 999) / 1000, 1, 86_400);
        var extensions = new Dictionary<string, object?> { ["connection_id"] = connectionId, ["status"] = ConnectionStatus.Active, ["retry_after"] = seconds };
        if (error is not null)
        {
            extensions["error"] = error;
        }

        return new RetryAfterResult(seconds, Problems.Create(ProblemCatalog.RefreshUnavailable,
            $"The connection stays active and Nexus keeps retrying; try again in {seconds} s.", extensions));
    }

    /// <summary>
    /// A refresh regardless of expiry (POST /v1/refresh/{id}; the Bridge after a provider's 401), unless one finished
    /// after <paramref name="seen"/> was read, whose token is then returned. Also the way back from
    /// attention_required when the provider accepts the stored refresh token after all.
    /// </summary>
    public async Task<RefreshResult> ForceRefreshAsync(Connection seen, CancellationToken ct)
    {
        var (mode, task) = Join(seen.Id, RefreshMode.Force, seen.UpdatedAt);
        var result = await task.WaitAsync(ct);
        // Joining a read's or the background's refresh that found nothing to do does not give this caller the new
        // token it asked for: then it runs its own.
        // A background flight that did not wait for the lock (Skipped) did nothing either.
        if (mode != RefreshMode.Force && (result.Status == RefreshStatus.Skipped
            || (result.Status == RefreshStatus.Current && (result.Row is null || result.Row.UpdatedAt == seen.UpdatedAt))))
        {
            result = await Join(seen.Id, RefreshMode.Force, seen.UpdatedAt).Task.WaitAsync(ct);
        }

        return result;
    }

    /// <summary>The background refresher's entry: skipped when a refresh of the connection is already in flight here.</summary>
    public Task<RefreshResult> RefreshInBackgroundAsync(string connectionId)
    {
        var completion = new TaskCompletionSource<RefreshResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var flight = new Flight(RefreshMode.Background, null, completion.Task);
        if (!flights.TryAdd(connectionId, flight))
        {
            return Task.FromResult(new RefreshResult(RefreshStatus.Skipped));
        }

        _ = FlyAsync(connectionId, flight, completion);
        return completion.Task;
    }

    /// <summary>Joins the refresh in flight for the connection, or starts one.</summary>
    private (RefreshMode Mode, Task<RefreshResult> Task) Join(string id, RefreshMode mode, long? seenUpdatedAt)
    {
        Interlocked.Increment(ref joins);
        while (true)
        {
            if (flights.TryGetValue(id, out var existing))
            {
                return (existing.Mode, existing.Task);
            }

            var completion = new TaskCompletionSource<RefreshResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            var flight = new Flight(mode, seenUpdatedAt, completion.Task);
            if (flights.TryAdd(id, flight))
            {
                _ = FlyAsync(id, flight, completion);
                return (mode, completion.Task);
            }
        }
    }

    private async Task FlyAsync(string id, Flight flight, TaskCompletionSource<RefreshResult> completion)
    {
        // The flight leaves the table before its result is handed out: a caller that looks again on that result (a
        // read after a skipped or idle background flight) starts a flight of its own instead of finding this one.
        RefreshResult result;
        try
        {
            result = await RefreshLockedAsync(id, flight);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Refresh of connection {ConnectionId} failed unexpectedly", id);
            flights.TryRemove(KeyValuePair.Create(id, flight));
            completion.SetException(e);
            _ = completion.Task.Exception; // observed: every caller awaiting it rethrows it
            return;
        }

        flights.TryRemove(KeyValuePair.Create(id, flight));
        completion.SetResult(result);
    }

    /// <summary>
    /// One refresh under the connection's lock. Runs to the end whatever happens to the callers: once the provider
    /// has rotated the refresh token, abandoning the write would lose the only valid one.
    /// </summary>
    private async Task<RefreshResult> RefreshLockedAsync(string id, Flight flight)
    {
        RefreshLock held;
        try
        {
            held = await store.LockAsync(id, skipLocked: flight.Mode == RefreshMode.Background);
        }
        catch (TimeoutException)
        {
            logger.LogWarning("Connection {ConnectionId} stayed locked by another refresher; answering from the current token", id);
            return new RefreshResult(RefreshStatus.RetryLater, null, Now + 1000, "refresh_lock_timeout");
        }

        await using (held)
        {
            if (held.Skipped)
            {
                return new RefreshResult(RefreshStatus.Skipped);
            }

            if (held.Row is not { } row)
            {
                connections.Invalidate(id);
                return new RefreshResult(RefreshStatus.Gone);
            }

            var lockedAt = time.GetUtcNow();
            var result = await DecideAndRefreshAsync(held, row, flight, lockedAt);
            await held.CommitAsync();
            // This instance's cached row may be older than what the database holds now (another instance refreshed,
            // or this refresh did): the next read loads it again.
            connections.Invalidate(id);
            return result with { LockedAt = lockedAt };
        }
    }

    private async Task<RefreshResult> DecideAndRefreshAsync(RefreshLock held, RefreshRow row, Flight flight, DateTimeOffset lockedAt)
    {
        var now = Now;
        var recovering = flight.Mode == RefreshMode.Force && row.Status == ConnectionStatus.AttentionRequired && row.RefreshToken is not null;
        if ((row.Status != ConnectionStatus.Active && !recovering) || row.AccessToken is null)
        {
            return new RefreshResult(RefreshStatus.NotActive, row);
        }

        var provider = await FindProviderAsync(row.ProviderName);
        var canRefresh = RefreshSchedule.CanRefresh(row.RefreshToken is not null, provider);
        var marginMs = RefreshSchedule.MarginMs(Settings, provider);
        switch (flight.Mode)
        {
            case RefreshMode.OnRead:
                if (RefreshSchedule.ReadDueAt(canRefresh, row.IssuedAt, row.TokenExpiresAt, marginMs) is not { } readDue || readDue > now)
                {
                    return new RefreshResult(RefreshStatus.Current, row);
                }

                if (row.InBackoff(now))
                {
                    RememberBackoff(row.Id, row.NextRefreshAt!.Value);
                    return new RefreshResult(RefreshStatus.RetryLater, row, row.NextRefreshAt, row.RefreshError);
                }

                break;
            case RefreshMode.Background:
                if (row.InBackoff(now))
                {
                    return new RefreshResult(RefreshStatus.Current, row);
                }

                var backgroundDue = RefreshSchedule.BackgroundDueAt(canRefresh, row.IssuedAt, row.TokenExpiresAt, marginMs,
                    Settings.IntervalSeconds * 1000L, Settings.KeepAliveSeconds * 1000L);
                if (backgroundDue is not { } due || due > now)
                {
                    // Looked at too early (a new connection, a changed margin): just record when to come back.
                    if (row.NextRefreshAt != backgroundDue)
                    {
                        await RefreshStore.RescheduleAsync(held, row.Id, backgroundDue);
                    }

                    return new RefreshResult(RefreshStatus.Current, row);
                }

                break;
            case RefreshMode.Force:
                if (row.UpdatedAt != flight.SeenUpdatedAt && row.Status == ConnectionStatus.Active)
                {
                    // Refreshed (or re-established) since the caller looked: that is the new token it wants.
                    return new RefreshResult(RefreshStatus.Current, row);
                }

                if (!canRefresh)
                {
                    return new RefreshResult(RefreshStatus.NotRefreshable, row);
                }

                break;
        }

        if (!canRefresh)
        {
            // Due without a way to refresh means expired without a refresh token: only the user can renew it.
            var (error, description) = provider is null
                ? ("provider_missing", "The provider of this connection no longer exists.")
                : ("token_expired", "The access token expired and the provider issued no refresh token; the user must connect again.");
            return await RequireAttentionAsync(held, row, error, description, lockedAt);
        }

        // Null only for a client_credentials connection (RefreshSchedule.CanRefresh), which asks for a new token instead.
        var refreshToken = row.RefreshToken is null ? null : connections.Decrypt(ConnectionStore.RefreshTokenColumn, row.Id, row.RefreshToken);
        // The connection's own values ({shop}, {subdomain}, …) in the token URL (issue 17).
        var applied = ConnectionValues.Apply(provider!, ConnectionValues.Parse(row.ConnectionConfig));
        var started = time.GetTimestamp();
        // A client_credentials connection asks for its own scopes again (a step-up may have widened them), not the provider's.
        IReadOnlyList<string>? machineScopes = provider!.Config.Mcp?.IsClientCredentials == true ? row.Scopes.Split(' ', StringSplitOptions.RemoveEmptyEntries) : null;
        var attempt = await client.RefreshAsync(applied, refreshToken, CancellationToken.None, machineScopes);
        if (!attempt.Succeeded && attempt.Error == "invalid_client" && modeHandlers.FirstOrDefault(h => h.AuthMode == provider!.AuthMode) is { } handler)
        {
            // MCP authorization / RFC 7591 §3: an authorization server that no longer knows a client Nexus registered
            // itself (deleted, expired, secret rotated) gets a new registration, and the refresh is retried once with it.
            // Where the refresh token was bound to the old client, the retry's invalid_grant asks the person to connect
            // again (attention_required), which then works with the new client, instead of failing as misconfigured forever.
            await handler.ClientRejectedAsync(provider!, CancellationToken.None);
            ForgetProvider(provider!.Name);
            if (await registry.FindAsync(provider.Name, CancellationToken.None) is { } renewed && renewed.ClientId != provider.ClientId)
            {
                logger.LogInformation("Provider {Provider} registered anew after invalid_client; retrying the refresh of connection {ConnectionId} once", provider.Name, row.Id);
                provider = renewed;
                applied = ConnectionValues.Apply(renewed, ConnectionValues.Parse(row.ConnectionConfig));
                attempt = await client.RefreshAsync(applied, refreshToken, CancellationToken.None, machineScopes);
            }
        }

        metrics.Refresh(provider!.Name, attempt.Succeeded ? "succeeded" : attempt.Kind == RefreshFailureKind.Rejected ? "rejected" : "failed", time.GetElapsedTime(started));
        if (attempt.Succeeded)
        {
            return await StoreSuccessAsync(held, row, applied, attempt.Tokens!, refreshToken, recovering, lockedAt);
        }

        if (attempt.Kind != RefreshFailureKind.Rejected)
        {
            return await StoreFailureAsync(held, row, attempt, lockedAt);
        }

        logger.LogInformation("Provider {Provider} rejected the refresh of connection {ConnectionId} ({Error}); it needs the user's attention",
            row.ProviderName, row.Id, attempt.Error);
        return row.Status == ConnectionStatus.AttentionRequired
            ? new RefreshResult(RefreshStatus.AttentionRequired, row, Error: attempt.Error)
            : await RequireAttentionAsync(held, row, attempt.Error, attempt.Description, lockedAt);
    }

    /// <param name="presented">The refresh token the provider was given (plaintext), null for a client_credentials connection.</param>
    private async Task<RefreshResult> StoreSuccessAsync(RefreshLock held, RefreshRow row, Provider provider, TokenExchangeResult tokens, string? presented, bool recovering, DateTimeOffset lockedAt)
    {
        var now = Now;
        long? expiresAt = tokens.ExpiresIn is { } seconds ? now + (seconds * 1000) : null;
        var access = connections.Encrypt(ConnectionStore.AccessTokenColumn, row.Id, tokens.AccessToken!);
        var refresh = tokens.RefreshToken is null ? null : connections.Encrypt(ConnectionStore.RefreshTokenColumn, row.Id, tokens.RefreshToken);
        // The connection keeps its refresh token when the provider sends no new one.
        var next = RefreshSchedule.BackgroundDueAt(Settings, provider, hasRefreshToken: true, now, expiresAt);
        // Written only over the access token this refresh started from (never null here: DecideAndRefreshAsync refreshes none without one).
        var seen = row.AccessToken!;
        for (var tries = 0; !await RefreshStore.SucceedAsync(held, row.Id, seen, access, refresh, tokens.TokenType, expiresAt, next, now); tries++)
        {
            var current = await RefreshStore.ReadAsync(held, row.Id);
            if (tries < 3 && current?.AccessToken is { } reencrypted && string.Equals(connections.Decrypt(ConnectionStore.AccessTokenColumn, row.Id, reencrypted),
                    connections.Decrypt(ConnectionStore.AccessTokenColumn, row.Id, seen), StringComparison.Ordinal))
            {
                // The same token under a new ciphertext (keys reencrypt): nobody replaced it, so this refresh still does.
                seen = reencrypted;
                continue;
            }

            return await LostAsync(held, row, current, provider, tokens, refresh, presented);
        }

        await held.CommitAsync();
        backoff.TryRemove(row.Id, out _);
        if (recovering)
        {
            await notifier.ActivatedAsync(row.Id, row.WorkspaceId, row.ProviderName, expiresAt, "refreshed");
        }
        else if (row.RefreshFailures > 0)
        {
            // The failures of a streak stopped: once, since the success just reset the count to 0 under the lock.
            await notifier.RecoveredAsync(row.Id, row.WorkspaceId, row.ProviderName, row.RefreshFailures, expiresAt);
            await RecordQuietlyAsync(AuditEvents.Recovered, row, new { provider = row.ProviderName, failures = row.RefreshFailures }, lockedAt);
        }

        return new RefreshResult(RefreshStatus.Refreshed, row with
        {
            Status = ConnectionStatus.Active,
            AccessToken = access,
            RefreshToken = refresh ?? row.RefreshToken,
            TokenType = tokens.TokenType ?? row.TokenType,
            TokenExpiresAt = expiresAt,
            Error = null,
            ErrorDescription = null,
            UpdatedAt = now,
            NextRefreshAt = next,
            RefreshFailures = 0,
            RefreshError = null,
            RefreshErrorDescription = null,
            LastRefreshedAt = now,
        });
    }

    /// <summary>
    /// The row changed while the provider answered, so the refresh's tokens were not stored (SQLite only: on PostgreSQL
    /// the row lock keeps every other write out until the refresh commits). Deleted: the disconnect revoked what the row
    /// held, and the new tokens must not stay usable at the provider either. Given a new consent's tokens (a reconnect
    /// or a step-up completed): those are the connection's now, and the caller is served them; the refresh's, from the
    /// grant they replaced, are revoked as a reconnect revokes the tokens it replaces (a revocation that would end the
    /// whole grant, and so the new tokens too, is not sent). A rotated refresh token whose predecessor the row kept (the
    /// consent issued none) takes its place instead of being revoked: that predecessor is used up.
    /// </summary>
    private async Task<RefreshResult> LostAsync(RefreshLock held, RefreshRow row, RefreshRow? current, Provider provider, TokenExchangeResult tokens, byte[]? refresh,
        string? presented)
    {
        if (current is null)
        {
            logger.LogInformation("Connection {ConnectionId} was deleted during its refresh; revoking the new tokens at the provider", row.Id);
            await providerClient.RevokeAsync(provider, tokens.AccessToken, tokens.RefreshToken, CancellationToken.None);
            return new RefreshResult(RefreshStatus.Gone);
        }

        var revokedRefresh = tokens.RefreshToken;
        if (refresh is not null && presented is not null && current.RefreshToken is { } kept
            && string.Equals(connections.Decrypt(ConnectionStore.RefreshTokenColumn, row.Id, kept), presented, StringComparison.Ordinal)
            && await RefreshStore.ReplaceRefreshTokenAsync(held, row.Id, kept, refresh))
        {
            revokedRefresh = null;
            current = current with { RefreshToken = refresh };
        }

        logger.LogInformation("Connection {ConnectionId} got a new consent's tokens during its refresh; they stay, and the refresh's are revoked at the provider", row.Id);
        await providerClient.RevokeAsync(provider, tokens.AccessToken, revokedRefresh, CancellationToken.None, grantContinues: true);
        return new RefreshResult(current.Status == ConnectionStatus.Active ? RefreshStatus.Current : RefreshStatus.NotActive, current);
    }

    private async Task<RefreshResult> StoreFailureAsync(RefreshLock held, RefreshRow row, RefreshAttempt attempt, DateTimeOffset lockedAt)
    {
        var now = Now;
        var failures = row.RefreshFailures + 1;
        var retryAt = now + (long)RefreshSchedule.RetryDelay(Settings, (int)Math.Min(failures, int.MaxValue), attempt.RetryAfter, Random.Shared.NextDouble()).TotalMilliseconds;
        if (!await RefreshStore.FailTransientlyAsync(held, row.Id, failures, retryAt, attempt.Error, attempt.Description))
        {
            // Deleted while the provider answered (SQLite: nothing holds the row meanwhile; on PostgreSQL the delete
            // waits for this lock). The disconnect already said connection.revoked: a refresh_failed webhook or audit
            // entry for a connection that no longer exists would tell the app to wait for a retry that never comes.
            return await GoneAsync(held, row);
        }

        await held.CommitAsync();
        RememberBackoff(row.Id, retryAt);
        if (attempt.Kind == RefreshFailureKind.Misconfigured)
        {
            logger.LogError("Provider {Provider} rejected Nexus's client while refreshing connection {ConnectionId} ({Error}): fix the provider registration (client_id, client_secret); retrying at {RetryAt:O}",
                row.ProviderName, row.Id, attempt.Error, DateTimeOffset.FromUnixTimeMilliseconds(retryAt));
        }
        else
        {
            logger.LogWarning("Refresh of connection {ConnectionId} with provider {Provider} failed ({Error}, failure {Failures}); retrying at {RetryAt:O}",
                row.Id, row.ProviderName, attempt.Error, failures, DateTimeOffset.FromUnixTimeMilliseconds(retryAt));
        }

        if (failures == 1 && row.Status == ConnectionStatus.Active)
        {
            // Once per streak: a provider outage must not become one webhook per connection per retry.
            await notifier.RefreshFailedAsync(row.Id, row.WorkspaceId, row.ProviderName, attempt.Error, attempt.Description, failures, retryAt, row.TokenExpiresAt);
            await RecordQuietlyAsync(AuditEvents.RefreshFailed, row, new { provider = row.ProviderName, error = attempt.Error, retry_at = retryAt / 1000 }, lockedAt);
        }

        return new RefreshResult(RefreshStatus.RetryLater, row with { RefreshFailures = failures, NextRefreshAt = retryAt, RefreshError = attempt.Error, RefreshErrorDescription = attempt.Description }, retryAt, attempt.Error);
    }

    private async Task<RefreshResult> RequireAttentionAsync(RefreshLock held, RefreshRow row, string error, string? description, DateTimeOffset lockedAt)
    {
        var now = Now;
        if (!await RefreshStore.RequireAttentionAsync(held, row.Id, error, description, now))
        {
            // Deleted while the provider answered (SQLite; see StoreFailureAsync): no attention_required webhook or
            // audit entry asks anybody to reconnect a connection the app just disconnected.
            return await GoneAsync(held, row);
        }

        await held.CommitAsync();
        backoff.TryRemove(row.Id, out _);
        await notifier.AttentionRequiredAsync(row.Id, row.WorkspaceId, row.ProviderName, error, description);
        await RecordQuietlyAsync(AuditEvents.AttentionRequired, row, new { provider = row.ProviderName, error, error_description = description }, lockedAt);
        return new RefreshResult(RefreshStatus.AttentionRequired, row with
        {
            Status = ConnectionStatus.AttentionRequired,
            Error = error,
            ErrorDescription = description,
            UpdatedAt = now,
            NextRefreshAt = null,
            RefreshFailures = 0,
            RefreshError = null,
            RefreshErrorDescription = null,
        }, Error: error);
    }

    /// <summary>The refresh found its connection deleted when it came to write: nothing to report, nothing to retry.</summary>
    private async Task<RefreshResult> GoneAsync(RefreshLock held, RefreshRow row)
    {
        await held.CommitAsync();
        backoff.TryRemove(row.Id, out _);
        logger.LogInformation("Connection {ConnectionId} was deleted during its refresh; its failure is not reported", row.Id);
        return new RefreshResult(RefreshStatus.Gone);
    }

    private void RememberBackoff(string id, long retryAt)
    {
        if (backoff.Count >= MaxBackoffEntries)
        {
            backoff.Clear();
        }

        backoff[id] = retryAt;
    }

    /// <summary>Records the refresh's event at <paramref name="lockedAt"/> (see <see cref="AuditLog.RecordAtAsync"/>); a failed write is logged.</summary>
    private async Task RecordQuietlyAsync(string evt, RefreshRow row, object detail, DateTimeOffset lockedAt)
    {
        try
        {
            await audit.RecordAtAsync(lockedAt, evt, "refresher", row.WorkspaceId, row.Id, detail, CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning(e, "Could not record {Event} for {ConnectionId}", evt, row.Id);
        }
    }
}
