using System.Collections.Immutable;
using System.Data.Common;
using Dapper;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Credentials;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Vault;

namespace Nexus.Server.Connections;

/// <summary>The statuses of the product contract.</summary>
internal static class ConnectionStatus
{
    /// <summary>The user has not completed consent yet.</summary>
    public const string Pending = "pending";

    /// <summary>Tokens are stored; the connection is usable.</summary>
    public const string Active = "active";

    /// <summary>A refresh failed; the user must reconnect (set by the refresh engine).</summary>
    public const string AttentionRequired = "attention_required";

    /// <summary>The handshake failed or was never completed.</summary>
    public const string Failed = "failed";
}

/// <summary>A connection row. Tokens and the PKCE verifier are ciphertext; times are Unix milliseconds.</summary>
internal sealed record Connection(
    string Id,
    string WorkspaceId,
    string ProviderName,
    string Status,
    string Scopes,
    string ReturnUrl,
    string? StateNonce,
    long StateExpiresAt,
    long? StateUsedAt,
    byte[]? PkceVerifier,
    byte[]? AccessToken,
    byte[]? RefreshToken,
    string? TokenType,
    long? TokenExpiresAt,
    string? Error,
    string? ErrorDescription,
    string CreatedBy,
    long CreatedAt,
    long UpdatedAt)
{
    public IReadOnlyList<string> ScopeList => Scopes.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The per-connection values of the provider's URL placeholders, as JSON (ConnectionValues); null when none.</summary>
    public string? ConnectionConfig { get; init; }

    /// <summary>The scope the provider said it granted (RFC 6749 §5.1), space-separated; null when it did not say.</summary>
    public string? GrantedScopes { get; init; }

    /// <summary>The refresh engine's bookkeeping (Unix ms; see RefreshStore), for the health fields of the API.</summary>
    public long? NextRefreshAt { get; init; }

    public long RefreshFailures { get; init; }

    public string? RefreshError { get; init; }

    public string? RefreshErrorDescription { get; init; }

    public long? LastRefreshedAt { get; init; }

    /// <summary>Non-null while a reconnect of this connection waits for consent: the scopes it asks for.</summary>
    public string? ReconnectScopes { get; init; }

    public IReadOnlyDictionary<string, string> Values => ConnectionValues.Parse(ConnectionConfig);

    /// <summary>A pending connection whose consent window has closed is failed, whether or not a write said so yet.</summary>
    /// <summary>A pending connection, or a reconnect of one with tokens, whose consent window closed (<see cref="ConnectionStore.ExpireStaleAsync"/> ends it).</summary>
    public bool IsStalePending(long nowMs) => (Status == ConnectionStatus.Pending || ReconnectScopes is not null) && StateExpiresAt <= nowMs;
}

/// <summary>
/// Connections and their tokens. GET /v1/token reads through a short-lived cache of rows (ciphertext only, the
/// plaintext is never cached): every write made here invalidates the entry at once, and writes made by another
/// instance are seen within ConnectionCacheSeconds.
/// </summary>
internal sealed class ConnectionStore(NexusDatabase db, KeyRing keyRing, NexusOptions options, TimeProvider time) : ICredentialDeletions
{
    public static readonly EncryptedColumn AccessTokenColumn = new("connections", "id", "access_token", "connections.access_token:");
    public static readonly EncryptedColumn RefreshTokenColumn = new("connections", "id", "refresh_token", "connections.refresh_token:");
    public static readonly EncryptedColumn PkceVerifierColumn = new("connections", "id", "pkce_verifier", "connections.pkce_verifier:");

    public const string ExpiredError = "expired";

    private const string Columns = "id, workspace_id, provider_name, status, scopes, return_url, state_nonce, state_expires_at, state_used_at, pkce_verifier, " +
        "access_token, refresh_token, token_type, token_expires_at, error, error_description, created_by, created_at, updated_at, connection_config";

    /// <summary>What reads select: the inserted columns and the bookkeeping others write.</summary>
    private const string SelectColumns = Columns + ", granted_scopes, next_refresh_at, refresh_failures, refresh_error, refresh_error_description, last_refreshed_at, reconnect_scopes";

    private readonly ShortLivedCache<Connection> cache = new(time, () => options.ConnectionCacheSeconds, admitOnSecondRead: true);

    private sealed class Row
    {
        public string Id { get; init; } = "";
        public string WorkspaceId { get; init; } = "";
        public string ProviderName { get; init; } = "";
        public string Status { get; init; } = "";
        public string Scopes { get; init; } = "";
        public string ReturnUrl { get; init; } = "";
        public string? StateNonce { get; init; }
        public long StateExpiresAt { get; init; }
        public long? StateUsedAt { get; init; }
        public byte[]? PkceVerifier { get; init; }
        public byte[]? AccessToken { get; init; }
        public byte[]? RefreshToken { get; init; }
        public string? TokenType { get; init; }
        public long? TokenExpiresAt { get; init; }
        public string? Error { get; init; }
        public string? ErrorDescription { get; init; }
        public string CreatedBy { get; init; } = "";
        public long CreatedAt { get; init; }
        public long UpdatedAt { get; init; }
        public string? ConnectionConfig { get; init; }
        public string? GrantedScopes { get; init; }
        public long? NextRefreshAt { get; init; }
        public long RefreshFailures { get; init; }
        public string? RefreshError { get; init; }
        public string? RefreshErrorDescription { get; init; }
        public long? LastRefreshedAt { get; init; }
        public string? ReconnectScopes { get; init; }

        public Connection ToConnection() => new(Id, WorkspaceId, ProviderName, Status, Scopes, ReturnUrl, StateNonce, StateExpiresAt, StateUsedAt, PkceVerifier,
            AccessToken, RefreshToken, TokenType, TokenExpiresAt, Error, ErrorDescription, CreatedBy, CreatedAt, UpdatedAt)
        {
            ConnectionConfig = ConnectionConfig,
            GrantedScopes = GrantedScopes,
            NextRefreshAt = NextRefreshAt,
            RefreshFailures = RefreshFailures,
            RefreshError = RefreshError,
            RefreshErrorDescription = RefreshErrorDescription,
            LastRefreshedAt = LastRefreshedAt,
            ReconnectScopes = ReconnectScopes,
        };
    }

    public KeyRing KeyRing => keyRing;

    public byte[] Encrypt(EncryptedColumn column, string connectionId, string plaintext) => keyRing.Encrypt(plaintext, column.ContextFor(connectionId));

    public string Decrypt(EncryptedColumn column, string connectionId, byte[] ciphertext) => keyRing.DecryptString(ciphertext, column.ContextFor(connectionId));

    /// <summary>The connection as GET /v1/token sees it (cached, single-flight).</summary>
    public ValueTask<Connection?> FindCachedAsync(string id, CancellationToken ct) =>
        // The shared load is not cancelled with one caller's request: other callers may be awaiting it.
        cache.GetAsync(id, this, static (key, store) => store.FindAsync(key, CancellationToken.None));

    /// <summary>Drops a cached row after a write made elsewhere (the refresh engine writes tokens itself).</summary>
    public void Invalidate(string id) => cache.Invalidate(id);

    public async Task<Connection?> FindAsync(string id, CancellationToken ct)
    {
        if (id.Length > 100)
        {
            return null;
        }

        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
            $"SELECT {SelectColumns} FROM connections WHERE id = @id", new { id }, cancellationToken: ct));
        return row?.ToConnection();
    }

    /// <summary>
    /// Connections in the given workspaces (null = all), newest first, optionally of one status and provider, after a
    /// position (the created_at and id of the last row of the previous page: keyset pagination, stable under inserts).
    /// </summary>
    public async Task<IReadOnlyList<Connection>> ListAsync(IReadOnlyCollection<string>? workspaces, string? status, string? provider, (long CreatedAt, string Id)? after,
        int limit, CancellationToken ct)
    {
        if (ListQuery(workspaces, status, provider, after, limit) is not var (sql, parameters))
        {
            return [];
        }

        await using var connection = await db.OpenAsync(ct);
        var rows = await connection.QueryAsync<Row>(new CommandDefinition(sql, parameters, cancellationToken: ct));
        return rows.Select(r => r.ToConnection()).ToList();
    }

    /// <summary>The SQL of <see cref="ListAsync"/> (null when no workspace may be seen), on its own so a test can read its plan.</summary>
    internal static (string Sql, DynamicParameters Parameters)? ListQuery(IReadOnlyCollection<string>? workspaces, string? status, string? provider,
        (long CreatedAt, string Id)? after, int limit)
    {
        var where = new List<string>();
        var parameters = new DynamicParameters(new { status, provider, limit, afterCreated = after?.CreatedAt, afterId = after?.Id });
        if (workspaces is not null)
        {
            if (workspaces.Count == 0)
            {
                return null;
            }

            // Explicit parameters rather than Dapper's list expansion, which Npgsql turns into an array.
            var names = workspaces.Select((w, i) =>
            {
                parameters.Add("w" + i, w);
                return "@w" + i;
            });
            where.Add($"workspace_id IN ({string.Join(", ", names)})");
        }

        if (status is not null)
        {
            where.Add("status = @status");
        }

        if (provider is not null)
        {
            where.Add("provider_name = @provider");
        }

        if (after is not null)
        {
            // created_at <= … is the index range (ix_connections_workspace_page, ix_connections_created: migration 0015) that
            // starts the page at its position; the OR only drops the rows of the same millisecond up to the last one seen.
            // Without the range, the OR alone made the database read every newer row of the list to skip it.
            where.Add("created_at <= @afterCreated AND (created_at < @afterCreated OR id < @afterId)");
        }

        return ($"SELECT {SelectColumns} FROM connections" + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "") + " ORDER BY created_at DESC, id DESC LIMIT @limit",
            parameters);
    }

    /// <summary>Stores the per-connection values (already validated by ConnectionValues).</summary>
    public async Task SetValuesAsync(string id, IReadOnlyDictionary<string, string> values, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("UPDATE connections SET connection_config = @config WHERE id = @id",
            new { id, config = ConnectionValues.Serialize(values) }, cancellationToken: ct));
        cache.Invalidate(id);
    }

    /// <summary>Records the scope the provider granted (RFC 6749 §5.1), when it said.</summary>
    public async Task SetGrantedScopesAsync(string id, string? granted, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("UPDATE connections SET granted_scopes = @granted WHERE id = @id",
            new { id, granted = granted is { Length: > 2000 } ? granted[..2000] : granted }, cancellationToken: ct));
        cache.Invalidate(id);
    }

    /// <summary>
    /// Starts a new consent for an existing connection (POST /v1/connections/{id}/reconnect). A failed connection
    /// simply becomes pending again; one with tokens keeps them, and its status, until the new consent completes
    /// (reconnect_scopes marks the wait). Conditional on the status <paramref name="c"/> was read with, which decides
    /// which of the two it is: false when the connection no longer exists or its status changed meanwhile (a callback
    /// activated it); the caller reads it again.
    /// </summary>
    public async Task<bool> BeginReconnectAsync(Connection c, string nonce, long stateExpiresAt, byte[]? verifier, string scopes, string returnUrl, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var keepsTokens = c.Status is ConnectionStatus.Active or ConnectionStatus.AttentionRequired;
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            keepsTokens
                ? "UPDATE connections SET state_nonce = @nonce, state_expires_at = @stateExpiresAt, state_used_at = NULL, pkce_verifier = @verifier, reconnect_scopes = @scopes, " +
                  "return_url = @returnUrl WHERE id = @id AND status = @status"
                : "UPDATE connections SET status = @pending, state_nonce = @nonce, state_expires_at = @stateExpiresAt, state_used_at = NULL, pkce_verifier = @verifier, " +
                  "scopes = @scopes, reconnect_scopes = NULL, return_url = @returnUrl, error = NULL, error_description = NULL, updated_at = @now WHERE id = @id AND status = @status",
            new { id = c.Id, nonce, stateExpiresAt, verifier, scopes, returnUrl, pending = ConnectionStatus.Pending, now, status = c.Status }, cancellationToken: ct));
        cache.Invalidate(c.Id);
        return updated == 1;
    }

    /// <summary>
    /// A reconnect's consent failed: the connection stays as it was, with its tokens. Only while <paramref name="nonce"/>
    /// is still the connection's state (<see cref="ConsumeStateAsync"/> leaves it set): false when a newer consent
    /// replaced it meanwhile, or the connection is gone, and then nothing is written.
    /// </summary>
    public async Task<bool> CancelReconnectAsync(string id, string nonce, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET reconnect_scopes = NULL, pkce_verifier = NULL, state_nonce = NULL WHERE id = @id AND state_nonce = @nonce", new { id, nonce }, cancellationToken: ct));
        cache.Invalidate(id);
        return updated == 1;
    }

    /// <summary>
    /// A new consent for a connection that kept serving its tokens meanwhile completed: a reconnect's
    /// (POST /v1/connections/{id}/reconnect, reconnect_scopes) or a step-up's (<see cref="RemoteMcp.McpStepUp"/>,
    /// pending_scopes). The new tokens and the consent's scopes replace the old ones in one write, what the provider
    /// granted is learned anew, and the refresh bookkeeping starts over. Returns the tokens it replaced, which the
    /// caller revokes at the provider afterwards, or null when the connection no longer exists (deleted while the
    /// provider was issuing the tokens) or <paramref name="nonce"/>, the consent's state, is no longer the connection's
    /// (a newer consent began meanwhile: its scopes and state must not be taken for this one's).
    /// </summary>
    public async Task<ReplacedTokens?> CompleteConsentAsync(string id, string nonce, Provider provider, byte[] accessToken, byte[]? refreshToken, bool hasRefreshToken, string? tokenType,
        long? tokenExpiresAt, IReadOnlyDictionary<string, string>? values, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        // Scheduled in the same write, as a first activation is (ActivateAsync).
        var nextRefreshAt = RefreshSchedule.BackgroundDueAt(options.Refresh, provider, hasRefreshToken, now, tokenExpiresAt);
        return await ReplaceTokensAsync(id, nonce,
            // A consent that issues no refresh token (Google issues one only the first time a client is consented to;
            // RFC 6749 §5.1 makes it optional) leaves the connection's own in place: it still belongs to the same grant.
            "UPDATE connections SET status = @active, access_token = @accessToken, refresh_token = COALESCE(@refreshToken, refresh_token), token_type = @tokenType, token_expires_at = @tokenExpiresAt, " +
            "scopes = COALESCE(reconnect_scopes, pending_scopes, scopes), reconnect_scopes = NULL, pending_scopes = NULL, pkce_verifier = NULL, state_nonce = NULL, error = NULL, " +
            "error_description = NULL, next_refresh_at = @nextRefreshAt, refresh_failures = 0, refresh_error = NULL, refresh_error_description = NULL, granted_scopes = NULL, " +
            "updated_at = @now" + ValuesColumn(values) + " WHERE id = @id AND state_nonce = @nonce; " +
            // Tokens minted for the provider's further resources (Entra ID) came from the old consent's scopes.
            "DELETE FROM connection_resource_tokens WHERE connection_id = @id",
            new { id, nonce, active = ConnectionStatus.Active, accessToken, refreshToken, tokenType, tokenExpiresAt, now, nextRefreshAt, config = Config(values) }, ct);
    }

    /// <summary>The SET clause storing a consent's captured values with its tokens (in the same conditional write); none when null.</summary>
    private static string ValuesColumn(IReadOnlyDictionary<string, string>? values) => values is null ? "" : ", connection_config = @config";

    private static string? Config(IReadOnlyDictionary<string, string>? values) => values is null ? null : ConnectionValues.Serialize(values);

    /// <summary>
    /// Writes a new consent's tokens (<paramref name="sql"/>) and returns the ones the row held just before, read in the
    /// same transaction under the lock the write takes (PostgreSQL: the row, FOR UPDATE, which waits for a refresh in
    /// flight; SQLite: the database, BEGIN IMMEDIATE): what the caller revokes is what was replaced, also when a refresh
    /// rotated the tokens after the callback read the connection. Null when the connection no longer exists, or, with
    /// <paramref name="nonce"/>, when that is no longer its state.
    /// </summary>
    private async Task<ReplacedTokens?> ReplaceTokensAsync(string id, string? nonce, string sql, object parameters, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var replaced = await connection.QuerySingleOrDefaultAsync<ReplacedTokens>(new CommandDefinition(
            "SELECT access_token AS AccessToken, refresh_token AS RefreshToken FROM connections WHERE id = @id" + (nonce is null ? "" : " AND state_nonce = @nonce")
            + (db.Engine == DatabaseEngine.Postgres ? " FOR UPDATE" : ""),
            new { id, nonce }, transaction, cancellationToken: ct));
        if (replaced is null)
        {
            // Gone (deleted while the provider was issuing the tokens; its resource tokens went with it, ON DELETE CASCADE),
            // or a newer consent began. The row is locked from here on, so the write below sees the same nonce.
            return null;
        }

        await connection.ExecuteAsync(new CommandDefinition(sql, parameters, transaction, cancellationToken: ct));
        await transaction.CommitAsync(ct);
        cache.Invalidate(id);
        return replaced;
    }

    public async Task InsertAsync(Connection c, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"INSERT INTO connections ({Columns}) VALUES (@Id, @WorkspaceId, @ProviderName, @Status, @Scopes, @ReturnUrl, @StateNonce, @StateExpiresAt, @StateUsedAt, @PkceVerifier, " +
            "@AccessToken, @RefreshToken, @TokenType, @TokenExpiresAt, @Error, @ErrorDescription, @CreatedBy, @CreatedAt, @UpdatedAt, @ConnectionConfig)", c, cancellationToken: ct));
    }

    /// <summary>
    /// Marks the state of a pending (or reconnecting) connection used, atomically: of two callbacks racing with the same state,
    /// exactly one gets true. Conditions on the nonce, so a state from an earlier attempt cannot be consumed.
    /// </summary>
    public async Task<bool> ConsumeStateAsync(string id, string nonce, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET state_used_at = @now, updated_at = CASE WHEN status = @pending THEN @now ELSE updated_at END WHERE id = @id AND state_nonce = @nonce AND state_used_at IS NULL " +
            // An active connection has a state only while a step-up consent (BeginStepUpAsync) or a reconnect is under way;
            // an attention_required one, when a refresh was rejected during either (the consent repairs it).
            "AND (status IN (@pending, @active, @attention) OR reconnect_scopes IS NOT NULL) AND state_expires_at > @now",
            new { id, nonce, now, pending = ConnectionStatus.Pending, active = ConnectionStatus.Active, attention = ConnectionStatus.AttentionRequired }, cancellationToken: ct));
        cache.Invalidate(id);
        return updated == 1;
    }

    /// <summary>
    /// A connection's first tokens (or credential) arrived. Its background refresh is scheduled in the same write, from
    /// the same arithmetic the refresher uses (<see cref="RefreshSchedule.BackgroundDueAt(RefreshOptions, Provider, bool, long, long?)"/>),
    /// so that the refresher does not claim, lock and reschedule every new connection once just to learn when it is due.
    /// Returns false when the connection no longer exists (deleted while the provider was issuing the tokens), or, with
    /// <paramref name="nonce"/> (the consent's state, which <see cref="ConsumeStateAsync"/> leaves set), when a newer
    /// consent replaced that state meanwhile (a reconnect): nothing is written then.
    /// </summary>
    public async Task<bool> ActivateAsync(string id, Provider provider, byte[] accessToken, byte[]? refreshToken, string? tokenType, long? tokenExpiresAt, CancellationToken ct,
        string? nonce = null, IReadOnlyDictionary<string, string>? values = null)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        // updated_at is the token's issue time for the schedule (RefreshRow.IssuedAt): both are "now".
        var nextRefreshAt = RefreshSchedule.BackgroundDueAt(options.Refresh, provider, refreshToken is not null, now, tokenExpiresAt);
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET status = @active, access_token = @accessToken, refresh_token = @refreshToken, token_type = @tokenType, " +
            "token_expires_at = @tokenExpiresAt, pkce_verifier = NULL, state_nonce = NULL, error = NULL, error_description = NULL, updated_at = @now, " +
            "next_refresh_at = @nextRefreshAt, refresh_failures = 0, refresh_error = NULL, refresh_error_description = NULL, " +
            // A step-up consent's wider scopes become the connection's once its tokens arrive.
            "scopes = COALESCE(pending_scopes, scopes), pending_scopes = NULL" + ValuesColumn(values) + " WHERE id = @id" + (nonce is null ? "" : " AND state_nonce = @nonce"),
            new { id, nonce, active = ConnectionStatus.Active, accessToken, refreshToken, tokenType, tokenExpiresAt, now, nextRefreshAt, config = Config(values) }, cancellationToken: ct));
        cache.Invalidate(id);
        return updated == 1;
    }

    /// <summary>
    /// The current authorization operation of an active connection (issue 15: rounds are counted per operation, see
    /// <see cref="RemoteMcp.McpStepUp"/>); null when the connection is gone or not active.
    /// </summary>
    public async Task<AuthorizationOperation?> FindAuthorizationOperationAsync(string id, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<AuthorizationOperation>(new CommandDefinition(
            "SELECT authorization_scopes AS Scopes, authorization_rounds AS Rounds, authorization_round_at AS RoundAt FROM connections WHERE id = @id AND status = @active",
            new { id, active = ConnectionStatus.Active }, cancellationToken: ct));
    }

    /// <summary>
    /// A connect or reconnect began a new authorization operation: its consent is the operation's first round, for
    /// <paramref name="scopes"/>. Stored, so that a step-up on any instance continues or ends it.
    /// </summary>
    public async Task BeginAuthorizationOperationAsync(string id, string scopes, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET authorization_scopes = @scopes, authorization_rounds = 1, authorization_round_at = @now WHERE id = @id",
            new { id, scopes, now }, cancellationToken: ct));
        cache.Invalidate(id);
    }

    /// <summary>
    /// Arms an active connection for a step-up consent (MCP authorization, scope challenge handling): a new single-use
    /// state nonce and PKCE verifier, the wider scopes, and the authorization operation as it is after this round
    /// (<paramref name="next"/>: the same operation one round further, or a new one at round 1). Compare-and-set on the
    /// operation the caller read (<paramref name="seen"/>), so that two instances counting at once cannot both count
    /// from the same value. The tokens stay usable until the new ones arrive. False when the operation changed
    /// meanwhile (read it again), or when the connection is not active.
    /// </summary>
    public async Task<bool> BeginStepUpAsync(string id, string nonce, long stateExpiresAt, byte[] pkceVerifier, string scopes, AuthorizationOperation seen,
        AuthorizationOperation next, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            // A reconnect still waiting for its consent is superseded (its link is answered "already used"): the
            // callback must take this state for the step-up's, not for the reconnect's. updated_at stays: for an active
            // connection it is when its tokens were issued (RefreshRow.IssuedAt), which a step-up does not change.
            "UPDATE connections SET state_nonce = @nonce, state_expires_at = @stateExpiresAt, state_used_at = NULL, pkce_verifier = @pkceVerifier, pending_scopes = @scopes, reconnect_scopes = NULL, " +
            "authorization_scopes = @nextScopes, authorization_rounds = @nextRounds, authorization_round_at = @nextAt " +
            "WHERE id = @id AND status = @active AND authorization_rounds = @seenRounds AND authorization_round_at = @seenAt",
            new
            {
                id, nonce, stateExpiresAt, pkceVerifier, scopes, active = ConnectionStatus.Active,
                nextScopes = next.Scopes, nextRounds = next.Rounds, nextAt = next.RoundAt, seenRounds = seen.Rounds, seenAt = seen.RoundAt,
            }, cancellationToken: ct));
        cache.Invalidate(id);
        return updated == 1;
    }

    /// <summary>
    /// Ends a step-up consent that did not succeed: the connection stays as it was. False, with nothing written, when
    /// <paramref name="nonce"/> is no longer the connection's state (a newer consent began) or it is gone.
    /// </summary>
    public async Task<bool> EndStepUpAsync(string id, string nonce, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        // updated_at stays, as in BeginStepUpAsync: the tokens' issue time.
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET state_nonce = NULL, pkce_verifier = NULL, pending_scopes = NULL WHERE id = @id AND state_nonce = @nonce",
            new { id, nonce }, cancellationToken: ct));
        cache.Invalidate(id);
        return updated == 1;
    }

    /// <summary>Marks a pending connection as the replacement of another one in the same workspace (checked by the caller).</summary>
    public async Task SetReplacesAsync(string id, string replacedId, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("UPDATE connections SET replaces_connection_id = @replacedId WHERE id = @id",
            new { id, replacedId }, cancellationToken: ct));
    }

    /// <summary>
    /// The connection that <paramref name="id"/> replaces, taken at most once (atomically, so two activations on two
    /// instances cannot both act on it); null when it replaces none.
    /// </summary>
    public async Task<string?> TakeReplacedAsync(string id, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var replaced = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            "SELECT replaces_connection_id FROM connections WHERE id = @id", new { id }, cancellationToken: ct));
        // Compare-and-clear: of two activations racing here, only the one whose UPDATE matched acts on it.
        return replaced is not null && await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET replaces_connection_id = NULL WHERE id = @id AND replaces_connection_id = @replaced",
            new { id, replaced }, cancellationToken: ct)) == 1 ? replaced : null;
    }

    /// <summary>Records which account at the provider a connection belongs to (dashboard display only; never a secret).</summary>
    public async Task SetAccountAsync(string id, string account, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("UPDATE connections SET account = @account WHERE id = @id",
            new { id, account = account.Length > 200 ? account[..200] : account }, cancellationToken: ct));
    }

    public async Task<IReadOnlyDictionary<string, string>> AccountsAsync(string workspaceId, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var rows = await connection.QueryAsync<(string Id, string Account)>(new CommandDefinition(
            "SELECT id, account FROM connections WHERE workspace_id = @workspaceId AND account IS NOT NULL", new { workspaceId }, cancellationToken: ct));
        return rows.ToDictionary(r => r.Id, r => r.Account);
    }

    /// <summary>
    /// Fails a connection. With <paramref name="nonce"/> (a consent's callback), only while that is still its state:
    /// false, with nothing written, when a newer consent began meanwhile or the connection is gone.
    /// </summary>
    public async Task<bool> FailAsync(string id, string error, string? description, CancellationToken ct, string? nonce = null)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET status = @failed, error = @error, error_description = @description, pkce_verifier = NULL, state_nonce = NULL, updated_at = @now WHERE id = @id"
            + (nonce is null ? "" : " AND state_nonce = @nonce"),
            new { id, nonce, failed = ConnectionStatus.Failed, error, description, now }, cancellationToken: ct));
        cache.Invalidate(id);
        return updated == 1;
    }

    /// <summary>
    /// Turns pending connections whose consent window closed into failed ones ("expired"), and ends reconnects whose
    /// window closed; returns the pending rows it failed. With <paramref name="id"/>, only that connection.
    /// A consent whose callback used its state in time is not ended while that callback may still be exchanging the
    /// code (<see cref="CallbackGraceMilliseconds"/> after it used the state): its tokens are the person's, and the
    /// callback's writes are conditional on the state it consumed.
    /// </summary>
    public async Task<IReadOnlyList<Connection>> ExpireStaleAsync(DbConnection? existing, string? id, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var usedBefore = now - CallbackGraceMilliseconds;
        const string NotInFlight = " AND (state_used_at IS NULL OR state_used_at <= @usedBefore)";
        var connection = existing ?? await db.OpenAsync(ct);
        try
        {
            var filter = "status = @pending AND state_expires_at <= @now" + NotInFlight + (id is null ? "" : " AND id = @id");
            var stale = (await connection.QueryAsync<Row>(new CommandDefinition(
                $"SELECT {SelectColumns} FROM connections WHERE {filter}", new { pending = ConnectionStatus.Pending, now, usedBefore, id }, cancellationToken: ct))).Select(r => r.ToConnection()).ToList();
            var changed = new List<Connection>();
            foreach (var c in stale)
            {
                // Conditional on still being pending, so a callback completing concurrently wins.
                var updated = await connection.ExecuteAsync(new CommandDefinition(
                    "UPDATE connections SET status = @failed, error = @error, error_description = @description, pkce_verifier = NULL, state_nonce = NULL, updated_at = @now " +
                    "WHERE id = @id AND status = @pending AND state_expires_at <= @now" + NotInFlight,
                    new
                    {
                        id = c.Id,
                        failed = ConnectionStatus.Failed,
                        pending = ConnectionStatus.Pending,
                        error = ExpiredError,
                        description = "The user did not complete consent in time.",
                        now,
                        usedBefore,
                    }, cancellationToken: ct));
                cache.Invalidate(c.Id);
                if (updated == 1)
                {
                    changed.Add(c);
                }
            }

            // A reconnect of a connection with tokens that nobody completed in time ends the same way, except that the
            // connection keeps its status and tokens (as a refused reconnect does, CancelReconnectAsync): it no longer
            // reports reconnecting, a later step-up is not taken for it, and the consent's PKCE verifier goes. Its
            // state is not accepted any more (a late callback is told so).
            var abandoned = (await connection.QueryAsync<string>(new CommandDefinition(
                "SELECT id FROM connections WHERE reconnect_scopes IS NOT NULL AND state_expires_at <= @now" + NotInFlight + (id is null ? "" : " AND id = @id"),
                new { now, usedBefore, id }, cancellationToken: ct))).ToList();
            foreach (var reconnect in abandoned)
            {
                await connection.ExecuteAsync(new CommandDefinition(
                    "UPDATE connections SET reconnect_scopes = NULL, pkce_verifier = NULL, state_nonce = NULL WHERE id = @id AND reconnect_scopes IS NOT NULL AND state_expires_at <= @now" +
                    NotInFlight,
                    new { id = reconnect, now, usedBefore }, cancellationToken: ct));
                cache.Invalidate(reconnect);
            }

            return changed;
        }
        finally
        {
            if (existing is null)
            {
                await connection.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// How long after a callback used a consent's state the consent is not ended for its window (ExpireStaleAsync): the
    /// code exchange and the metadata call may each take the upstream timeout, and the writes follow.
    /// </summary>
    private long CallbackGraceMilliseconds => 3L * Math.Max(1, options.UpstreamTimeoutSeconds) * 1000;

    /// <summary>
    /// Deletes a connection; returns the row as it was when deleted (null when there was none). Its tokens may be newer
    /// than those of any read before the delete: on PostgreSQL the delete waits for the row lock of a refresh in flight
    /// and deletes what that refresh stored; on either engine a callback may have stored a consent's tokens meanwhile.
    /// </summary>
    public async Task<Connection?> DeleteAsync(string id, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var deleted = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
            $"DELETE FROM connections WHERE id = @id RETURNING {SelectColumns}", new { id }, cancellationToken: ct));
        cache.Invalidate(id);
        // A snapshot: a callback registered meanwhile (AwsRoleCredentials registers when it is first resolved,
        // which may be during a delete) only changes the array later deletes read.
        foreach (var callback in deletedCallbacks)
        {
            callback(id);
        }

        return deleted?.ToConnection();
    }

    /// <summary>
    /// Deletes connections that hold no token, pending or failed (not failed ones of the <paramref name="machineProviders"/>),
    /// whose consent window closed and which last changed before <paramref name="before"/> (<see cref="ConnectionRetention"/>),
    /// a batch at a time; returns how many. The condition is asked again of each deleted row (a reconnect or a credential
    /// submitted meanwhile keeps it), and each one leaves this instance's cache.
    /// </summary>
    public async Task<int> DeleteAbandonedAsync(long before, IReadOnlyList<string> machineProviders, CancellationToken ct)
    {
        // One parameter per provider name (a list parameter is an array on PostgreSQL and a list on SQLite).
        var parameters = new DynamicParameters(new { pending = ConnectionStatus.Pending, failed = ConnectionStatus.Failed, before });
        for (var i = 0; i < machineProviders.Count; i++)
        {
            parameters.Add("m" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), machineProviders[i]);
        }

        var abandoned = "status IN (@pending, @failed) AND state_expires_at < @before AND updated_at < @before AND access_token IS NULL AND refresh_token IS NULL"
            + (machineProviders.Count == 0 ? "" : $" AND (status = @pending OR provider_name NOT IN ({string.Join(", ", machineProviders.Select((_, i) => "@m" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)))}))");
        return await Retention.DeleteAsync(db, "connections", "id", abandoned, parameters, ct, cache.Invalidate);
    }

    // Copy-on-write: deletes read the current array without a lock, registrations replace it atomically.
    private ImmutableArray<Action<string>> deletedCallbacks = [];

    /// <summary>Registers a callback for deleted connections (in-memory state derived from a connection, such as assumed-role credentials).</summary>
    public void OnDeleted(Action<string> callback) => ImmutableInterlocked.Update(ref deletedCallbacks, callbacks => callbacks.Add(callback));

    /// <summary>
    /// A machine-to-machine connection (client_credentials, <see cref="MachineGrants"/>) got a new token for
    /// <paramref name="scopes"/>: it is active with that token and those scopes in one write, whatever it was before (a
    /// failed connection's error goes, a consent that was armed is dropped, the refresh bookkeeping starts over). On
    /// PostgreSQL the write waits for a refresh holding the row, so a refresh never overwrites this token with one for
    /// the scopes it read before. Returns the token it replaced, read under the same lock (a reconnect revokes that one,
    /// also when a refresh replaced the one it read); null when the connection no longer exists.
    /// </summary>
    /// <param name="returnUrl">Null keeps the connection's.</param>
    public Task<ReplacedTokens?> StoreMachineTokenAsync(string id, byte[] accessToken, string? tokenType, long? tokenExpiresAt, long? nextRefreshAt, string scopes, string? grantedScopes,
        string? returnUrl, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        return ReplaceTokensAsync(id, null,
            "UPDATE connections SET status = @active, access_token = @accessToken, refresh_token = NULL, token_type = @tokenType, token_expires_at = @tokenExpiresAt, " +
            "scopes = @scopes, granted_scopes = @grantedScopes, return_url = COALESCE(@returnUrl, return_url), reconnect_scopes = NULL, pending_scopes = NULL, " +
            "state_nonce = NULL, pkce_verifier = NULL, error = NULL, error_description = NULL, next_refresh_at = @nextRefreshAt, refresh_failures = 0, refresh_error = NULL, " +
            "refresh_error_description = NULL, updated_at = @now WHERE id = @id",
            new
            {
                id, active = ConnectionStatus.Active, accessToken, tokenType, tokenExpiresAt, scopes, nextRefreshAt, returnUrl, now,
                grantedScopes = grantedScopes is { Length: > 2000 } ? grantedScopes[..2000] : grantedScopes,
            }, ct);
    }

    /// <summary>
    /// Counts a step-up round of a machine-to-machine connection, which arms no consent (<see cref="RemoteMcp.McpStepUp"/>):
    /// the authorization operation as it is after this round, compare-and-set on the one the caller read
    /// (<paramref name="seen"/>) as <see cref="BeginStepUpAsync"/> does. False when the operation changed meanwhile
    /// (read it again), or when the connection is not active.
    /// </summary>
    public Task<bool> CountMachineRoundAsync(string id, AuthorizationOperation seen, AuthorizationOperation next, CancellationToken ct) =>
        SwapOperationAsync(id, seen, next, activeOnly: true, ct);

    /// <summary>
    /// Gives back a machine step-up's round (<see cref="CountMachineRoundAsync"/>) whose grant failed for a transient
    /// reason: the operation is <paramref name="seen"/> again, unless another round was counted since (compare-and-set
    /// on <paramref name="counted"/>), which then stays as it is. Returns whether the round was given back.
    /// </summary>
    public Task<bool> UncountMachineRoundAsync(string id, AuthorizationOperation counted, AuthorizationOperation seen, CancellationToken ct) =>
        SwapOperationAsync(id, counted, seen, activeOnly: false, ct);

    /// <summary>The authorization operation <paramref name="from"/> replaced by <paramref name="to"/>, compare-and-set; whether it was.</summary>
    private async Task<bool> SwapOperationAsync(string id, AuthorizationOperation from, AuthorizationOperation to, bool activeOnly, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET authorization_scopes = @toScopes, authorization_rounds = @toRounds, authorization_round_at = @toAt " +
            "WHERE id = @id AND authorization_rounds = @fromRounds AND authorization_round_at = @fromAt" + (activeOnly ? " AND status = @active" : ""),
            new { id, active = ConnectionStatus.Active, toScopes = to.Scopes, toRounds = to.Rounds, toAt = to.RoundAt, fromRounds = from.Rounds, fromAt = from.RoundAt },
            cancellationToken: ct));
        cache.Invalidate(id);
        return updated == 1;
    }
}

/// <summary>A connection's current authorization operation (see <see cref="RemoteMcp.McpStepUp"/>), as stored on its row.</summary>
internal sealed record AuthorizationOperation
{
    /// <summary>The scopes its rounds asked for, space-separated; null before the first.</summary>
    public string? Scopes { get; init; }

    /// <summary>How many authorization rounds it started, the first consent included.</summary>
    public int Rounds { get; init; }

    /// <summary>When its latest round began (Unix milliseconds); 0 when there is none.</summary>
    public long RoundAt { get; init; }
}

/// <summary>The tokens (ciphertexts) a new consent's write replaced (<see cref="ConnectionStore.CompleteConsentAsync"/>).</summary>
internal sealed class ReplacedTokens
{
    public byte[]? AccessToken { get; init; }

    public byte[]? RefreshToken { get; init; }
}
