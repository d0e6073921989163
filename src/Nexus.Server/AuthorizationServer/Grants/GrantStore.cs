using System.Security.Cryptography;
using System.Text;
using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Vault;

namespace Nexus.Server.AuthorizationServer.Grants;

/// <param name="RedirectUri">Where the code was sent: the request's redirect_uri, or the client's only registered one.</param>
/// <param name="RedirectUriSent">Whether the authorization request carried redirect_uri (RFC 6749 §4.1.3: then the token request must too).</param>
/// <param name="SessionStamp">
/// A hash of the security stamp of the session that approved the code (<see cref="GrantStore.StampHash"/>); null for a
/// code stored before migration 0023.
/// </param>
internal sealed record AuthorizationCodeRecord(
    string ClientId, string UserId, string RedirectUri, IReadOnlyList<string> Scopes, string? CodeChallenge, string? Nonce, long AuthTime, long ExpiresAt, string? Resource = null,
    bool RedirectUriSent = false, string? SessionStamp = null);

/// <param name="Resource">The RFC 8707 resource the grant is bound to; null means Nexus's own API.</param>
internal sealed record GrantRecord(string Id, string ClientId, string UserId, IReadOnlyList<string> Scopes, long AuthTime, long? RevokedAt, string? Resource = null);

/// <summary>A refresh token as found, without using it: its grant, expiry (Unix milliseconds), whether it was rotated, and its scopes.</summary>
internal sealed record RefreshTokenView(GrantRecord Grant, long ExpiresAt, bool Used, IReadOnlyList<string> Scopes);

internal enum RefreshOutcome
{
    Rotated,
    Unknown,
    Expired,
    Replayed,
    GrantRevoked,
}

/// <summary>A person's consent to a client: the scopes, and the redirect URIs the consent page named (none for a consent from before migration 0026).</summary>
internal sealed record Consent(IReadOnlyList<string> Scopes, IReadOnlyList<string> RedirectUris);

/// <summary>
/// Authorization codes, grants, refresh tokens, consents and revoked access tokens. Codes and refresh tokens
/// are stored only as SHA-256 hashes: they are high-entropy bearer secrets, and a copy of the database must
/// not be enough to use them.
/// </summary>
internal sealed class GrantStore(NexusDatabase db, TimeProvider time, RevocationList revocations) : Accounts.IAccountGrants
{
    public static string Hash(string token) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    private static string Join(IEnumerable<string> scopes) => string.Join(' ', scopes);

    private static string[] Split(string scopes) => scopes.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    // ---- consent ------------------------------------------------------------------------------------------

    /// <summary>
    /// What the user consented to for the client (the scopes, and the redirect URIs they were shown), or null when they
    /// never consented to it: an empty scope list is a consent (to an application that asks for no scope), no row is none.
    /// </summary>
    public async Task<Consent?> GetConsentAsync(string userId, string clientId, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<(string Scopes, string? RedirectUris)?>(new CommandDefinition(
            "SELECT scopes, redirect_uris FROM consents WHERE user_id = @userId AND client_id = @clientId", new { userId, clientId }, cancellationToken: ct));
        return row is { } r ? new Consent(Split(r.Scopes), r.RedirectUris is null ? [] : Split(r.RedirectUris)) : null;
    }

    /// <summary>
    /// Adds the scopes, and the redirect URI the consent page named, to what the user consented to for the client. A
    /// redirect URI that one already recorded matches (<see cref="Clients.RedirectUris.Matches"/>: a native app's loopback
    /// redirect on another port, with <paramref name="anyLoopbackPort"/>) is not recorded again.
    /// </summary>
    public async Task SaveConsentAsync(string userId, string clientId, IEnumerable<string> scopes, string redirectUri, bool anyLoopbackPort, CancellationToken ct)
    {
        var before = await GetConsentAsync(userId, clientId, ct);
        var merged = (before?.Scopes ?? []).Union(scopes, StringComparer.Ordinal).ToList();
        // RFC 6749 §3.1.2: a redirect URI is an absolute URI, so it holds no space (a registered one is checked so).
        var known = before?.RedirectUris ?? [];
        var redirects = known.Any(r => Clients.RedirectUris.Matches(r, redirectUri, anyLoopbackPort)) ? known : [.. known, redirectUri];
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO consents (user_id, client_id, scopes, redirect_uris, created_at, updated_at) VALUES (@userId, @clientId, @scopes, @redirects, @now, @now)
            ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = @scopes, redirect_uris = @redirects, updated_at = @now
            """,
            new { userId, clientId, scopes = Join(merged), redirects = Join(redirects), now = Now }, cancellationToken: ct));
    }

    public async Task<IReadOnlyList<(string ClientId, IReadOnlyList<string> Scopes, DateTimeOffset GrantedAt)>> ListConsentsAsync(string userId, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var rows = await connection.QueryAsync<(string ClientId, string Scopes, long UpdatedAt)>(new CommandDefinition(
            "SELECT client_id, scopes, updated_at FROM consents WHERE user_id = @userId ORDER BY updated_at DESC", new { userId }, cancellationToken: ct));
        return rows.Select(r => (r.ClientId, (IReadOnlyList<string>)Split(r.Scopes), DateTimeOffset.FromUnixTimeMilliseconds(r.UpdatedAt))).ToList();
    }

    /// <summary>
    /// Withdraws consent and revokes every grant the user gave the application (and so its tokens). False when there
    /// was no consent to withdraw.
    /// </summary>
    public async Task<bool> WithdrawConsentAsync(string userId, string clientId, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var deleted = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM consents WHERE user_id = @userId AND client_id = @clientId", new { userId, clientId }, tx, cancellationToken: ct));
        // A code issued just before (it lives a minute) would otherwise still be exchanged for a new grant after the
        // person took the application's access away: spent here, so the exchange finds a used code (RFC 6749 §4.1.2).
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE authorization_codes SET consumed_at = @now WHERE user_id = @userId AND client_id = @clientId AND consumed_at IS NULL",
            new { userId, clientId, now = Now }, tx, cancellationToken: ct));
        var revoked = await connection.QueryAsync<string>(new CommandDefinition(
            "UPDATE grants SET revoked_at = @now, revoked_reason = 'consent_withdrawn' WHERE user_id = @userId AND client_id = @clientId AND revoked_at IS NULL RETURNING id",
            new { userId, clientId, now = Now }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        await revocations.GrantsRevokedAsync(connection, revoked, ct);
        return deleted > 0;
    }

    // ---- authorization codes --------------------------------------------------------------------------------

    public async Task SaveCodeAsync(string code, AuthorizationCodeRecord record, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, scopes, code_challenge, nonce, auth_time, created_at, expires_at, resource, redirect_uri_sent,
                session_stamp)
            VALUES (@hash, @ClientId, @UserId, @RedirectUri, @scopes, @CodeChallenge, @Nonce, @AuthTime, @now, @ExpiresAt, @Resource, @sent, @SessionStamp)
            """,
            new
            {
                hash = Hash(code), record.ClientId, record.UserId, record.RedirectUri, scopes = Join(record.Scopes), record.CodeChallenge, record.Nonce, record.AuthTime, now = Now,
                record.ExpiresAt, record.Resource, sent = record.RedirectUriSent ? 1 : 0, record.SessionStamp,
            },
            cancellationToken: ct));
    }

    private sealed class CodeRow
    {
        public string ClientId { get; init; } = "";
        public string UserId { get; init; } = "";
        public string RedirectUri { get; init; } = "";
        public string Scopes { get; init; } = "";
        public string? CodeChallenge { get; init; }
        public string? Nonce { get; init; }
        public long AuthTime { get; init; }
        public long ExpiresAt { get; init; }
        public long? ConsumedAt { get; init; }
        public string? Resource { get; init; }
        public long RedirectUriSent { get; init; }

        public string? SessionStamp { get; init; }
    }

    /// <summary>What a code keeps of the approving session's security stamp: a hex SHA-256 (the stamp itself validates sessions).</summary>
    public static string StampHash(string securityStamp) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(securityStamp)));

    /// <summary>
    /// A code as stored, without spending it: null when Nexus never issued it; <c>Consumed</c> when it was redeemed (or
    /// refused) before. The caller checks it belongs to the client before acting on it, a replay included.
    /// </summary>
    public async Task<(AuthorizationCodeRecord? Code, bool Consumed, string CodeHash)> FindCodeAsync(string code, CancellationToken ct)
    {
        var hash = Hash(code);
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<CodeRow>(new CommandDefinition(
            "SELECT client_id, user_id, redirect_uri, scopes, code_challenge, nonce, auth_time, expires_at, consumed_at, resource, redirect_uri_sent, session_stamp " +
            "FROM authorization_codes WHERE code_hash = @hash",
            new { hash }, cancellationToken: ct));
        return row is null
            ? (null, false, hash)
            : (new AuthorizationCodeRecord(row.ClientId, row.UserId, row.RedirectUri, Split(row.Scopes), row.CodeChallenge, row.Nonce, row.AuthTime, row.ExpiresAt, row.Resource,
                row.RedirectUriSent != 0, row.SessionStamp), row.ConsumedAt is not null, hash);
    }

    /// <summary>Spends a code its client presented in a refused request: it cannot be tried again, and no grant comes of it.</summary>
    public async Task SpendCodeAsync(string codeHash, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE authorization_codes SET consumed_at = @now WHERE code_hash = @codeHash AND consumed_at IS NULL", new { codeHash, now = Now }, cancellationToken: ct));
    }

    /// <summary>
    /// Redeems a code exactly once and creates its grant: both in one transaction, so that whoever sees the code consumed
    /// also sees the grant a replay must revoke (no window between the two for a replay to revoke nothing). Null when
    /// the code was consumed already, by a concurrent request: the caller treats this one as the replay.
    /// </summary>
    public async Task<string?> RedeemCodeAsync(string codeHash, AuthorizationCodeRecord code, CancellationToken ct)
    {
        var id = SecretGenerator.Id("gr_", 20);
        await using var connection = await db.OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var consumed = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE authorization_codes SET consumed_at = @now WHERE code_hash = @codeHash AND consumed_at IS NULL", new { codeHash, now = Now }, tx, cancellationToken: ct));
        if (consumed == 0)
        {
            await tx.RollbackAsync(ct);
            return null;
        }

        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO grants (id, client_id, user_id, scopes, code_hash, auth_time, created_at, resource) VALUES (@id, @ClientId, @UserId, @scopes, @codeHash, @AuthTime, @now, @Resource)",
            new { id, code.ClientId, code.UserId, scopes = Join(code.Scopes), codeHash, code.AuthTime, now = Now, code.Resource }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        return id;
    }

    /// <summary>
    /// A code used twice (RFC 6749 §4.1.2, RFC 9700 §4.5): the grant created from its redemption is revoked with every
    /// token issued from it.
    /// </summary>
    public async Task RevokeCodeGrantAsync(string codeHash, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var revoked = await connection.QueryAsync<string>(new CommandDefinition(
            "UPDATE grants SET revoked_at = @now, revoked_reason = 'code_replayed' WHERE code_hash = @codeHash AND revoked_at IS NULL RETURNING id",
            new { codeHash, now = Now }, cancellationToken: ct));
        await revocations.GrantsRevokedAsync(connection, revoked, ct);
    }

    // ---- grants and refresh tokens --------------------------------------------------------------------------

    private sealed class GrantRow
    {
        public string Id { get; init; } = "";
        public string ClientId { get; init; } = "";
        public string UserId { get; init; } = "";
        public string Scopes { get; init; } = "";
        public long AuthTime { get; init; }
        public long? RevokedAt { get; init; }
        public string? Resource { get; init; }

        public GrantRecord ToRecord() => new(Id, ClientId, UserId, Split(Scopes), AuthTime, RevokedAt, Resource);
    }

    public async Task<GrantRecord?> FindGrantAsync(string grantId, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<GrantRow>(new CommandDefinition(
            "SELECT id, client_id, user_id, scopes, auth_time, revoked_at, resource FROM grants WHERE id = @grantId", new { grantId }, cancellationToken: ct));
        return row?.ToRecord();
    }

    public async Task RevokeGrantAsync(string grantId, string reason, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE grants SET revoked_at = @now, revoked_reason = @reason WHERE id = @grantId AND revoked_at IS NULL", new { grantId, reason, now = Now }, cancellationToken: ct));
        await revocations.GrantsRevokedAsync(connection, [grantId], ct);
    }

    /// <summary>
    /// Revokes every grant of a user (an administrator disabled the account or reset its password), and so its refresh
    /// tokens and every access token issued from it, as <see cref="RevokeGrantAsync"/> does for one.
    /// </summary>
    public async Task<int> RevokeUserGrantsAsync(string userId, string reason, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        // First the codes not yet exchanged (one minted just before a reset, by whoever held the account): spent, so an
        // exchange finds a used code and gets nothing. A code redeemed before this has its grant, revoked next.
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE authorization_codes SET consumed_at = @now WHERE user_id = @userId AND consumed_at IS NULL", new { userId, now = Now }, cancellationToken: ct));
        var revoked = (await connection.QueryAsync<string>(new CommandDefinition(
            "UPDATE grants SET revoked_at = @now, revoked_reason = @reason WHERE user_id = @userId AND revoked_at IS NULL RETURNING id",
            new { userId, reason, now = Now }, cancellationToken: ct))).ToList();
        await revocations.GrantsRevokedAsync(connection, revoked, ct);
        return revoked.Count;
    }

    public async Task<string> IssueRefreshTokenAsync(string grantId, IReadOnlyList<string> scopes, TimeSpan lifetime, CancellationToken ct)
    {
        var token = SecretGenerator.Secret("nxr_");
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO refresh_tokens (token_hash, grant_id, scopes, created_at, expires_at) VALUES (@hash, @grantId, @scopes, @now, @expires)",
            new { hash = Hash(token), grantId, scopes = Join(scopes), now = Now, expires = time.GetUtcNow().Add(lifetime).ToUnixTimeMilliseconds() }, cancellationToken: ct));
        return token;
    }

    private sealed class RefreshRow
    {
        public string GrantId { get; init; } = "";
        public string Scopes { get; init; } = "";
        public long ExpiresAt { get; init; }
        public long? UsedAt { get; init; }
    }

    /// <summary>
    /// Marks a refresh token used, exactly once. Using a token that was already rotated means two parties hold
    /// it, so the whole grant is revoked (RFC 9700 §4.14.2, refresh token rotation with reuse detection).
    /// </summary>
    public async Task<(RefreshOutcome Outcome, GrantRecord? Grant, IReadOnlyList<string> Scopes)> UseRefreshTokenAsync(string token, string clientId, CancellationToken ct)
    {
        var hash = Hash(token);
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<RefreshRow>(new CommandDefinition(
            "SELECT grant_id, scopes, expires_at, used_at FROM refresh_tokens WHERE token_hash = @hash", new { hash }, cancellationToken: ct));
        if (row is null)
        {
            return (RefreshOutcome.Unknown, null, []);
        }

        var grant = await FindGrantAsync(row.GrantId, ct);
        // A token presented by another client is treated as unknown: it reveals nothing and changes nothing.
        if (grant is null || grant.ClientId != clientId)
        {
            return (RefreshOutcome.Unknown, null, []);
        }

        if (grant.RevokedAt is not null)
        {
            return (RefreshOutcome.GrantRevoked, grant, []);
        }

        if (row.ExpiresAt <= Now)
        {
            return (RefreshOutcome.Expired, grant, []);
        }

        var marked = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE refresh_tokens SET used_at = @now WHERE token_hash = @hash AND used_at IS NULL", new { hash, now = Now }, cancellationToken: ct));
        if (marked == 0)
        {
            await RevokeGrantAsync(grant.Id, "refresh_token_reused", ct);
            return (RefreshOutcome.Replayed, grant, []);
        }

        return (RefreshOutcome.Rotated, grant, Split(row.Scopes));
    }

    /// <summary>Finds the grant of a refresh token without using it (introspection and revocation).</summary>
    public async Task<RefreshTokenView?> PeekRefreshTokenAsync(string token, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<RefreshRow>(new CommandDefinition(
            "SELECT grant_id, scopes, expires_at, used_at FROM refresh_tokens WHERE token_hash = @hash", new { hash = Hash(token) }, cancellationToken: ct));
        if (row is null || await FindGrantAsync(row.GrantId, ct) is not { } grant)
        {
            return null;
        }

        return new RefreshTokenView(grant, row.ExpiresAt, row.UsedAt is not null, Split(row.Scopes));
    }

    // ---- revoked access tokens ------------------------------------------------------------------------------

    public async Task RevokeAccessTokenAsync(string jti, long expiresAtSeconds, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at) VALUES (@jti, @expires, @now) ON CONFLICT (jti) DO NOTHING",
            new { jti, expires = expiresAtSeconds * 1000, now = Now }, cancellationToken: ct));
        await revocations.TokenRevokedAsync(connection, jti, expiresAtSeconds, ct);
    }
}
