using System.Data.Common;
using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Npgsql;

namespace Nexus.Server.Connections.Refresh;

/// <summary>The columns of a connection the refresh engine reads under its lock. Tokens are ciphertext; times Unix ms.</summary>
internal sealed record RefreshRow
{
    public string Id { get; init; } = "";
    public string WorkspaceId { get; init; } = "";
    public string ProviderName { get; init; } = "";
    public string Status { get; init; } = "";
    public byte[]? AccessToken { get; init; }
    public byte[]? RefreshToken { get; init; }
    public string? TokenType { get; init; }
    public long? TokenExpiresAt { get; init; }
    public string? Error { get; init; }
    public string? ErrorDescription { get; init; }
    public long UpdatedAt { get; init; }
    public long? NextRefreshAt { get; init; }
    public long RefreshFailures { get; init; }
    public string? RefreshError { get; init; }
    public string? RefreshErrorDescription { get; init; }
    public long? LastRefreshedAt { get; init; }
    public string? ConnectionConfig { get; init; }

    /// <summary>The connection's scopes, space-separated: what a client_credentials connection asks for again (RefreshClient).</summary>
    public string Scopes { get; init; } = "";

    /// <summary>
    /// When the stored tokens were obtained. For an active connection nothing but activation and refresh writes
    /// updated_at, so it is the issue time of the current access token (the cached rows of the read path carry it too).
    /// </summary>
    public long IssuedAt => UpdatedAt;

    /// <summary>A connection that failed transiently and whose next attempt is not due yet.</summary>
    public bool InBackoff(long nowMs) => RefreshFailures > 0 && NextRefreshAt > nowMs;

    // Tokens are ciphertext, but still: rows never print their columns.
    public override string ToString() => $"RefreshRow({Id}, {Status})";

    /// <summary>
    /// The read path's connection, brought up to date with this row: its tokens and its refresh health too, so that an
    /// answer built from it (POST /v1/refresh's) says what the refresh left (a recovery's zero failures, a new error).
    /// </summary>
    public Connection Patch(Connection seen) => seen with
    {
        Status = Status,
        AccessToken = AccessToken,
        RefreshToken = RefreshToken,
        TokenType = TokenType,
        TokenExpiresAt = TokenExpiresAt,
        Error = Error,
        ErrorDescription = ErrorDescription,
        UpdatedAt = UpdatedAt,
        NextRefreshAt = NextRefreshAt,
        RefreshFailures = RefreshFailures,
        RefreshError = RefreshError,
        RefreshErrorDescription = RefreshErrorDescription,
        LastRefreshedAt = LastRefreshedAt,
    };
}

/// <summary>
/// A connection held for one refresh. On PostgreSQL it is a row lock (SELECT … FOR UPDATE in an open transaction):
/// no other instance can refresh the connection until it is committed or rolled back, and a process that dies
/// releases it with its database session, so nothing is ever left "refreshing". On SQLite, which runs as one
/// instance, it is an in-process lock per connection (<see cref="RefreshStore.LockAsync"/>), taken by the refresh
/// engine and by a resource token's mint alike, and nothing is held in the database while the provider is called (a
/// SQLite write lock would stop every other write meanwhile). A consent that stores new tokens (a reconnect, a step-up)
/// takes neither lock; the refresh's own write is conditional on the token it started from instead
/// (<see cref="RefreshStore.SucceedAsync"/>).
/// </summary>
internal sealed class RefreshLock(DbConnection connection, DbTransaction? transaction, RefreshRow? row, bool skipped, SemaphoreSlim? writeGate = null,
    IDisposable? held = null) : IAsyncDisposable
{
    private bool committed;

    /// <summary>The connection as it is now, read after taking the lock; null when it was deleted (or skipped).</summary>
    public RefreshRow? Row { get; } = row;

    /// <summary>Another instance holds the lock and the caller asked not to wait.</summary>
    public bool Skipped { get; } = skipped;

    public async Task<int> ExecuteAsync(string sql, object parameters)
    {
        if (writeGate is null)
        {
            return await connection.ExecuteAsync(new CommandDefinition(sql, parameters, transaction, cancellationToken: CancellationToken.None));
        }

        await writeGate.WaitAsync(CancellationToken.None);
        try
        {
            return await connection.ExecuteAsync(new CommandDefinition(sql, parameters, transaction, cancellationToken: CancellationToken.None));
        }
        finally
        {
            writeGate.Release();
        }
    }

    /// <summary>A read inside the lock's transaction (what another holder of the lock wrote before it let go).</summary>
    public Task<T?> QueryFirstOrDefaultAsync<T>(string sql, object parameters) =>
        connection.QueryFirstOrDefaultAsync<T>(new CommandDefinition(sql, parameters, transaction, cancellationToken: CancellationToken.None));

    public async Task CommitAsync()
    {
        if (transaction is not null && !committed)
        {
            await transaction.CommitAsync(CancellationToken.None);
        }

        committed = true;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (transaction is not null)
            {
                if (!committed)
                {
                    try
                    {
                        await transaction.RollbackAsync(CancellationToken.None);
                    }
                    catch (Exception e) when (e is DbException or InvalidOperationException)
                    {
                        // The session is gone; PostgreSQL rolled back and released the lock itself.
                    }
                }

                await transaction.DisposeAsync();
            }

            await connection.DisposeAsync();
        }
        finally
        {
            // The connection's lock goes back whatever closing the database connection did.
            held?.Dispose();
        }
    }
}

/// <summary>The refresh engine's SQL. Everything here is valid on SQLite and PostgreSQL but the row lock.</summary>
internal sealed class RefreshStore(NexusDatabase db, NexusOptions options) : IDisposable
{
    /// <summary>
    /// SQLite has one writer at a time, and Microsoft.Data.Sqlite answers a busy database by sleeping and retrying:
    /// concurrent refreshes writing at once would spend most of their time asleep (117 refreshes/s in the storm
    /// benchmark). Queued here instead, they write one after another without collisions.
    /// </summary>
    private readonly SemaphoreSlim sqliteWrites = new(1, 1);

    /// <summary>
    /// SQLite: the lock of each connection being refreshed (or having a resource token minted) in this process, with how
    /// many hold or wait for it; an entry goes when the last one leaves. PostgreSQL's row lock plays this part there.
    /// </summary>
    private readonly Dictionary<string, (SemaphoreSlim Gate, int Users)> sqliteLocks = new(StringComparer.Ordinal);

    private const string Columns = "id, workspace_id, provider_name, status, access_token, refresh_token, token_type, token_expires_at, error, error_description, " +
        "updated_at, next_refresh_at, refresh_failures, refresh_error, refresh_error_description, last_refreshed_at, connection_config, scopes";

    /// <summary>PostgreSQL's "lock_not_available", raised when lock_timeout expires.</summary>
    private const string LockNotAvailable = "55P03";

    /// <summary>
    /// Takes the connection for a refresh and re-reads it under the lock. <paramref name="skipLocked"/> (the background
    /// refresher) gives up at once when another instance holds it; otherwise the caller waits, at most a little
    /// longer than the longest refresh can take, and gets <see cref="TimeoutException"/> after that.
    /// </summary>
    public async Task<RefreshLock> LockAsync(string id, bool skipLocked)
    {
        var connection = await db.OpenAsync(CancellationToken.None);
        try
        {
            if (db.Engine != DatabaseEngine.Postgres)
            {
                // The refresh engine's single flight and a resource token's mint both use the refresh token: one at a
                // time per connection, or both present the same one (a provider that rotates it, or detects its reuse,
                // then ends the grant). Waits as long as PostgreSQL's lock_timeout below, and is skipped at once likewise.
                if (await EnterAsync(id, skipLocked) is not { } entered)
                {
                    return skipLocked ? new RefreshLock(connection, null, null, true) : throw new TimeoutException("Another refresh held the connection for too long.");
                }

                try
                {
                    var current = await connection.QuerySingleOrDefaultAsync<RefreshRow>(new CommandDefinition(
                        $"SELECT {Columns} FROM connections WHERE id = @id", new { id }));
                    return new RefreshLock(connection, null, current, false, sqliteWrites, entered);
                }
                catch
                {
                    entered.Dispose();
                    throw;
                }
            }

            var tx = await connection.BeginTransactionAsync(CancellationToken.None);
            try
            {
                if (!skipLocked)
                {
                    // SET does not take parameters; the value is an integer computed here.
                    var wait = options.UpstreamTimeoutSeconds + 5;
                    await connection.ExecuteAsync(new CommandDefinition($"SET LOCAL lock_timeout = '{wait}s'", transaction: tx));
                }

                // Under READ COMMITTED, FOR UPDATE returns the row as the previous lock holder committed it: this is
                // the re-read that lets a refresh done meanwhile be reused instead of repeated.
                var row = await connection.QuerySingleOrDefaultAsync<RefreshRow>(new CommandDefinition(
                    $"SELECT {Columns} FROM connections WHERE id = @id FOR UPDATE" + (skipLocked ? " SKIP LOCKED" : ""), new { id }, tx));
                var skipped = false;
                if (row is null && skipLocked)
                {
                    // Locked by someone else, or deleted: either way not ours to refresh now.
                    skipped = true;
                }

                return new RefreshLock(connection, tx, row, skipped);
            }
            catch
            {
                await tx.DisposeAsync();
                throw;
            }
        }
        catch (PostgresException e) when (e.SqlState == LockNotAvailable)
        {
            await connection.DisposeAsync();
            throw new TimeoutException("Another instance held the connection's refresh lock for too long.", e);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>How many hold or wait for the connection's in-process lock (SQLite); for tests that stage a wait.</summary>
    internal int Holders(string id)
    {
        lock (sqliteLocks)
        {
            return sqliteLocks.TryGetValue(id, out var entry) ? entry.Users : 0;
        }
    }

    /// <summary>The connection's in-process lock (SQLite), released by disposing the result; null when not taken (skipped, or waited too long).</summary>
    private async Task<IDisposable?> EnterAsync(string id, bool skipLocked)
    {
        SemaphoreSlim gate;
        lock (sqliteLocks)
        {
            var (existing, users) = sqliteLocks.TryGetValue(id, out var entry) ? entry : (new SemaphoreSlim(1, 1), 0);
            sqliteLocks[id] = (existing, users + 1);
            gate = existing;
        }

        var entered = skipLocked ? gate.Wait(0) : await gate.WaitAsync(TimeSpan.FromSeconds(options.UpstreamTimeoutSeconds + 5));
        if (!entered)
        {
            Leave(id, gate, release: false);
            return null;
        }

        return new Entered(() => Leave(id, gate, release: true));
    }

    private void Leave(string id, SemaphoreSlim gate, bool release)
    {
        if (release)
        {
            gate.Release();
        }

        lock (sqliteLocks)
        {
            var (_, users) = sqliteLocks[id];
            if (users == 1)
            {
                sqliteLocks.Remove(id);
                gate.Dispose();
            }
            else
            {
                sqliteLocks[id] = (gate, users - 1);
            }
        }
    }

    private sealed class Entered(Action leave) : IDisposable
    {
        private int left;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref left, 1) == 0)
            {
                leave();
            }
        }
    }

    /// <summary>
    /// Stores a successful refresh atomically: the new access token with the rotated refresh token, or with the
    /// stored one when the provider sent none (RFC 6749 §6: "the client MUST discard the old refresh token" only
    /// when a new one is issued). Conditional on the row still holding the access token the refresh started from
    /// (<paramref name="seenAccessToken"/>, its ciphertext; every write of new tokens writes a new one): on SQLite
    /// nothing holds the row while the provider answers, and a reconnect or a step-up consent may have stored a new
    /// consent's tokens meanwhile, which a refresh of the old ones must not overwrite. (On PostgreSQL those writes
    /// wait for the refresh's row lock.) Returns false when the row no longer holds it, or no longer exists.
    /// </summary>
    public static async Task<bool> SucceedAsync(RefreshLock held, string id, byte[] seenAccessToken, byte[] accessToken, byte[]? refreshToken, string? tokenType, long? expiresAt,
        long? nextRefreshAt, long now) =>
        await held.ExecuteAsync(
            """
            UPDATE connections SET status = @active, access_token = @accessToken, refresh_token = COALESCE(@refreshToken, refresh_token),
                token_type = COALESCE(@tokenType, token_type), token_expires_at = @expiresAt, error = NULL, error_description = NULL,
                next_refresh_at = @nextRefreshAt, refresh_failures = 0, refresh_error = NULL, refresh_error_description = NULL, last_refreshed_at = @now, updated_at = @now,
                refresh_claimed_until = NULL
            WHERE id = @id AND access_token = @seenAccessToken
            """,
            new { id, seenAccessToken, active = ConnectionStatus.Active, accessToken, refreshToken, tokenType, expiresAt, nextRefreshAt, now }) == 1;

    /// <summary>The connection as it is now (after <see cref="SucceedAsync"/> found it changed); null when it was deleted.</summary>
    public static Task<RefreshRow?> ReadAsync(RefreshLock held, string id) =>
        held.QueryFirstOrDefaultAsync<RefreshRow>($"SELECT {Columns} FROM connections WHERE id = @id", new { id });

    /// <summary>
    /// Puts a rotated refresh token in the place of the one the refresh used up, if the row still holds that one
    /// (<paramref name="seenRefreshToken"/>, ciphertext): a new consent that issued no refresh token kept it.
    /// </summary>
    public static async Task<bool> ReplaceRefreshTokenAsync(RefreshLock held, string id, byte[] seenRefreshToken, byte[] refreshToken) =>
        await held.ExecuteAsync("UPDATE connections SET refresh_token = @refreshToken WHERE id = @id AND refresh_token = @seenRefreshToken",
            new { id, seenRefreshToken, refreshToken }) == 1;

    /// <summary>
    /// Records a transient failure: the connection stays as it is and is retried at <paramref name="retryAt"/>.
    /// Returns false when the row no longer exists (SQLite: a disconnect deleted it while the provider answered).
    /// </summary>
    public static async Task<bool> FailTransientlyAsync(RefreshLock held, string id, long failures, long retryAt, string error, string? description) =>
        await held.ExecuteAsync(
            "UPDATE connections SET refresh_failures = @failures, next_refresh_at = @retryAt, refresh_error = @error, refresh_error_description = @description, refresh_claimed_until = NULL WHERE id = @id",
            new { id, failures, retryAt, error, description = description is { Length: > 300 } ? description[..300] : description }) == 1;

    /// <summary>
    /// The provider rejected the grant: the connection needs its user, and is never refreshed automatically again.
    /// Returns false when the row no longer exists (SQLite: a disconnect deleted it while the provider answered).
    /// </summary>
    public static async Task<bool> RequireAttentionAsync(RefreshLock held, string id, string error, string? description, long now) =>
        await held.ExecuteAsync(
            """
            UPDATE connections SET status = @attention, error = @error, error_description = @description, next_refresh_at = NULL,
                refresh_failures = 0, refresh_error = NULL, refresh_error_description = NULL, updated_at = @now, refresh_claimed_until = NULL
            WHERE id = @id
            """,
            new { id, attention = ConnectionStatus.AttentionRequired, error, description, now }) == 1;

    /// <summary>Moves the background refresher's next look at a connection (no provider call was needed).</summary>
    public static Task RescheduleAsync(RefreshLock held, string id, long? nextRefreshAt) =>
        held.ExecuteAsync("UPDATE connections SET next_refresh_at = @nextRefreshAt, refresh_claimed_until = NULL WHERE id = @id", new { id, nextRefreshAt });

    /// <summary>
    /// Claims up to <paramref name="limit"/> active connections whose next look is due and that no other refresher has
    /// claimed, oldest first, until <paramref name="claimUntil"/> (Unix ms). Instances on one database claim disjoint
    /// batches: without claims each read the same oldest rows and worked through what the others were refreshing too
    /// (three instances: 546 refreshes/s together in the storm benchmark, against 1,284 for one instance). On PostgreSQL, SKIP LOCKED passes over rows another instance is claiming or refreshing at that moment.
    /// The claim is a hint, not the lock: an expired claim lets another instance take the connection, and the row lock
    /// of <see cref="LockAsync"/> still decides who refreshes it.
    /// </summary>
    public async Task<IReadOnlyList<string>> ClaimDueAsync(long now, int limit, long claimUntil, CancellationToken ct)
    {
        var sql =
            $"""
            UPDATE connections SET refresh_claimed_until = @claimUntil
            WHERE id IN (
                SELECT id FROM connections
                WHERE status = @active AND next_refresh_at IS NOT NULL AND next_refresh_at <= @now
                    AND (refresh_claimed_until IS NULL OR refresh_claimed_until <= @now)
                ORDER BY next_refresh_at LIMIT @limit{(db.Engine == DatabaseEngine.Postgres ? " FOR UPDATE SKIP LOCKED" : "")})
            RETURNING id, next_refresh_at
            """;
        var parameters = new { active = ConnectionStatus.Active, now, limit, claimUntil };
        // On SQLite the claim is a write, queued behind the others like every write of the refresh engine.
        var gate = db.Engine == DatabaseEngine.Postgres ? null : sqliteWrites;
        await using var connection = await db.OpenAsync(ct);
        IEnumerable<(string Id, long NextRefreshAt)> claimed;
        if (gate is not null)
        {
            await gate.WaitAsync(ct);
        }

        try
        {
            claimed = await connection.QueryAsync<(string Id, long NextRefreshAt)>(new CommandDefinition(sql, parameters, cancellationToken: ct));
        }
        finally
        {
            gate?.Release();
        }

        // RETURNING keeps no order: the oldest due first, as the claim chose them.
        return claimed.OrderBy(c => c.NextRefreshAt).Select(c => c.Id).ToList();
    }

    /// <summary>After a provider's refresh margin changed: every healthy connection of it is scheduled anew.</summary>
    public async Task<int> UnscheduleProviderAsync(string providerName, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET next_refresh_at = 0 WHERE provider_name = @providerName AND status = @active AND refresh_failures = 0",
            new { providerName, active = ConnectionStatus.Active }, cancellationToken: ct));
    }

    public void Dispose() => sqliteWrites.Dispose();
}
