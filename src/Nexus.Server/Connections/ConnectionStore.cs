using System.Collections.Immutable;
using System.Data.Common;
using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
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

    /// <summary>A pending connection whose consent window has closed is failed, whether or not a write said so yet.</summary>
    public bool IsStalePending(long nowMs) => Status == ConnectionStatus.Pending && StateExpiresAt <= nowMs;
}

/// <summary>
/// Connections and their tokens. GET /v1/token reads through a short-lived cache of rows (ciphertext only, the
/// plaintext is never cached): every write made here invalidates the entry at once, and writes made by another
/// instance are seen within ConnectionCacheSeconds.
/// </summary>
internal sealed class ConnectionStore(NexusDatabase db, KeyRing keyRing, NexusOptions options, TimeProvider time)
{
    public static readonly EncryptedColumn AccessTokenColumn = new("connections", "id", "access_token", "connections.access_token:");
    public static readonly EncryptedColumn RefreshTokenColumn = new("connections", "id", "refresh_token", "connections.refresh_token:");
    public static readonly EncryptedColumn PkceVerifierColumn = new("connections", "id", "pkce_verifier", "connections.pkce_verifier:");

    public const string ExpiredError = "expired";

    private const string Columns = "id, workspace_id, provider_name, status, scopes, return_url, state_nonce, state_expires_at, state_used_at, pkce_verifier, " +
        "access_token, refresh_token, token_type, token_expires_at, error, error_description, created_by, created_at, updated_at";

    private readonly ShortLivedCache<Connection> cache = new(time, () => options.ConnectionCacheSeconds);

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

        public Connection ToConnection() => new(Id, WorkspaceId, ProviderName, Status, Scopes, ReturnUrl, StateNonce, StateExpiresAt, StateUsedAt, PkceVerifier,
            AccessToken, RefreshToken, TokenType, TokenExpiresAt, Error, ErrorDescription, CreatedBy, CreatedAt, UpdatedAt);
    }

    public KeyRing KeyRing => keyRing;

    public byte[] Encrypt(EncryptedColumn column, string connectionId, string plaintext) => keyRing.Encrypt(plaintext, column.ContextFor(connectionId));

    public string Decrypt(EncryptedColumn column, string connectionId, byte[] ciphertext) => keyRing.DecryptString(ciphertext, column.ContextFor(connectionId));

    /// <summary>The connection as GET /v1/token sees it (cached, single-flight).</summary>
    public ValueTask<Connection?> FindCachedAsync(string id, CancellationToken ct) =>
        // The shared load is not cancelled with one caller's request: other callers may be awaiting it.
        cache.GetAsync(id, key => FindAsync(key, CancellationToken.None));

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
            $"SELECT {Columns} FROM connections WHERE id = @id", new { id }, cancellationToken: ct));
        return row?.ToConnection();
    }

    /// <summary>Connections in the given workspaces (null = all), newest first.</summary>
    public async Task<IReadOnlyList<Connection>> ListAsync(IReadOnlyCollection<string>? workspaces, string? status, int limit, CancellationToken ct)
    {
        var where = new List<string>();
        var parameters = new DynamicParameters(new { status, limit });
        if (workspaces is not null)
        {
            if (workspaces.Count == 0)
            {
                return [];
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

        await using var connection = await db.OpenAsync(ct);
        var rows = await connection.QueryAsync<Row>(new CommandDefinition(
            $"SELECT {Columns} FROM connections" + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "") + " ORDER BY created_at DESC, id DESC LIMIT @limit",
            parameters, cancellationToken: ct));
        return rows.Select(r => r.ToConnection()).ToList();
    }

    public async Task InsertAsync(Connection c, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"INSERT INTO connections ({Columns}) VALUES (@Id, @WorkspaceId, @ProviderName, @Status, @Scopes, @ReturnUrl, @StateNonce, @StateExpiresAt, @StateUsedAt, @PkceVerifier, " +
            "@AccessToken, @RefreshToken, @TokenType, @TokenExpiresAt, @Error, @ErrorDescription, @CreatedBy, @CreatedAt, @UpdatedAt)", c, cancellationToken: ct));
    }

    /// <summary>
    /// Marks the state of a pending connection used, atomically: of two callbacks racing with the same state,
    /// exactly one gets true. Conditions on the nonce, so a state from an earlier attempt cannot be consumed.
    /// </summary>
    public async Task<bool> ConsumeStateAsync(string id, string nonce, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET state_used_at = @now, updated_at = @now WHERE id = @id AND state_nonce = @nonce AND state_used_at IS NULL " +
            // An active connection has a state only while a step-up consent is under way (BeginStepUpAsync).
            "AND status IN (@pending, @active) AND state_expires_at > @now",
            new { id, nonce, now, pending = ConnectionStatus.Pending, active = ConnectionStatus.Active }, cancellationToken: ct));
        cache.Invalidate(id);
        return updated == 1;
    }

    public async Task ActivateAsync(string id, byte[] accessToken, byte[]? refreshToken, string? tokenType, long? tokenExpiresAt, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET status = @active, access_token = @accessToken, refresh_token = @refreshToken, token_type = @tokenType, " +
            "token_expires_at = @tokenExpiresAt, pkce_verifier = NULL, state_nonce = NULL, error = NULL, error_description = NULL, updated_at = @now, " +
            // A step-up consent's wider scopes become the connection's once its tokens arrive.
            "scopes = COALESCE(pending_scopes, scopes), pending_scopes = NULL WHERE id = @id",
            new { id, active = ConnectionStatus.Active, accessToken, refreshToken, tokenType, tokenExpiresAt, now }, cancellationToken: ct));
        cache.Invalidate(id);
    }

    /// <summary>
    /// Arms an active connection for a step-up consent (MCP authorization, scope challenge handling): a new single-use
    /// state nonce and PKCE verifier, the wider scopes, and one more authorization round, counted here so that every
    /// instance sees the same count. The tokens stay usable until the new ones arrive. False once
    /// <paramref name="maxRounds"/> rounds were started, or when the connection is not active.
    /// </summary>
    public async Task<bool> BeginStepUpAsync(string id, string nonce, long stateExpiresAt, byte[] pkceVerifier, string scopes, int maxRounds, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET state_nonce = @nonce, state_expires_at = @stateExpiresAt, state_used_at = NULL, pkce_verifier = @pkceVerifier, pending_scopes = @scopes, " +
            "authorization_rounds = authorization_rounds + 1, updated_at = @now WHERE id = @id AND status = @active AND authorization_rounds < @maxRounds",
            new { id, nonce, stateExpiresAt, pkceVerifier, scopes, maxRounds, now, active = ConnectionStatus.Active }, cancellationToken: ct));
        cache.Invalidate(id);
        return updated == 1;
    }

    /// <summary>Ends a step-up consent that did not succeed: the connection stays as it was.</summary>
    public async Task EndStepUpAsync(string id, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET state_nonce = NULL, pkce_verifier = NULL, pending_scopes = NULL, updated_at = @now WHERE id = @id AND status = @active",
            new { id, now, active = ConnectionStatus.Active }, cancellationToken: ct));
        cache.Invalidate(id);
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

    public async Task FailAsync(string id, string error, string? description, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connections SET status = @failed, error = @error, error_description = @description, pkce_verifier = NULL, state_nonce = NULL, updated_at = @now WHERE id = @id",
            new { id, failed = ConnectionStatus.Failed, error, description, now }, cancellationToken: ct));
        cache.Invalidate(id);
    }

    /// <summary>
    /// Turns pending connections whose consent window closed into failed ones ("expired"); returns the rows it
    /// changed. With <paramref name="id"/>, only that connection.
    /// </summary>
    public async Task<IReadOnlyList<Connection>> ExpireStaleAsync(DbConnection? existing, string? id, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var connection = existing ?? await db.OpenAsync(ct);
        try
        {
            var filter = "status = @pending AND state_expires_at <= @now" + (id is null ? "" : " AND id = @id");
            var stale = (await connection.QueryAsync<Row>(new CommandDefinition(
                $"SELECT {Columns} FROM connections WHERE {filter}", new { pending = ConnectionStatus.Pending, now, id }, cancellationToken: ct))).Select(r => r.ToConnection()).ToList();
            var changed = new List<Connection>();
            foreach (var c in stale)
            {
                // Conditional on still being pending, so a callback completing concurrently wins.
                var updated = await connection.ExecuteAsync(new CommandDefinition(
                    "UPDATE connections SET status = @failed, error = @error, error_description = @description, pkce_verifier = NULL, state_nonce = NULL, updated_at = @now " +
                    "WHERE id = @id AND status = @pending",
                    new
                    {
                        id = c.Id,
                        failed = ConnectionStatus.Failed,
                        pending = ConnectionStatus.Pending,
                        error = ExpiredError,
                        description = "The user did not complete consent in time.",
                        now,
                    }, cancellationToken: ct));
                cache.Invalidate(c.Id);
                if (updated == 1)
                {
                    changed.Add(c);
                }
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

    public async Task<bool> DeleteAsync(string id, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var deleted = await connection.ExecuteAsync(new CommandDefinition("DELETE FROM connections WHERE id = @id", new { id }, cancellationToken: ct));
        cache.Invalidate(id);
        // A snapshot: a callback registered meanwhile (AwsRoleCredentials registers when it is first resolved,
        // which may be during a delete) only changes the array later deletes read.
        foreach (var callback in deletedCallbacks)
        {
            callback(id);
        }

        return deleted == 1;
    }

    // Copy-on-write: deletes read the current array without a lock, registrations replace it atomically.
    private ImmutableArray<Action<string>> deletedCallbacks = [];

    /// <summary>Registers a callback for deleted connections (in-memory state derived from a connection, such as assumed-role credentials).</summary>
    public void OnDeleted(Action<string> callback) => ImmutableInterlocked.Update(ref deletedCallbacks, callbacks => callbacks.Add(callback));
}
