using Nexus.Server.Data;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Grants;

/// <summary>
/// What the authorization server stores that stops being needed (Data/Retention). An access token lives at most
/// MaxAccessTokenLifetimeSeconds after it was issued (at the code exchange, the grant's creation, or at a refresh, a
/// refresh token's), so a day past that and past a row's own expiry nothing can present it or anything it covers:
/// <list type="bullet">
/// <item>authorization codes (a replay of one that old is an unknown code: refused, RFC 6749 §4.1.2);</item>
/// <item>refresh tokens, rotated ones included (replay detection needs them only until they expire);</item>
/// <item>revoked access token ids (RFC 7009), whose tokens have expired;</item>
/// <item>grants with no refresh token left, created before that horizon: no access token of theirs is valid, revoked or
/// not (the revocation list forgets revoked grants sooner, an hour past the longest lifetime).</item>
/// </list>
/// </summary>
internal sealed class GrantRetention(NexusDatabase db, NexusOptions options) : IRetentionRule
{
    public string Key => "grants";

    public string Name => "expired authorization codes, refresh tokens, revoked token ids and spent grants";

    /// <summary>Before this (Unix ms), nothing of the authorization server can be used any more.</summary>
    public long Horizon(DateTimeOffset now) => (now - TimeSpan.FromSeconds(options.MaxAccessTokenLifetimeSeconds) - TimeSpan.FromDays(1)).ToUnixTimeMilliseconds();

    public async Task<int> PurgeAsync(DateTimeOffset now, CancellationToken ct)
    {
        var horizon = new { horizon = Horizon(now) };
        return await Retention.DeleteAsync(db, "authorization_codes", "code_hash", "expires_at < @horizon", horizon, ct)
            + await Retention.DeleteAsync(db, "refresh_tokens", "token_hash", "expires_at < @horizon", horizon, ct)
            + await Retention.DeleteAsync(db, "revoked_access_tokens", "jti", "expires_at < @horizon", horizon, ct)
            // After the refresh tokens: a grant goes once its last one has.
            + await Retention.DeleteAsync(db, "grants", "id",
                "created_at < @horizon AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE refresh_tokens.grant_id = grants.id)", horizon, ct);
    }
}
