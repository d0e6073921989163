using Microsoft.AspNetCore.Identity;
using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Resources;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Grants;

/// <summary>
/// RFC 6749 §6 with rotation: every use returns a new refresh token and retires the old one; presenting a
/// retired token revokes the whole grant (RFC 9700 §4.14.2). The scope may be narrowed, never widened. A grant of
/// a disabled account is refused (and revoked), like one whose account no longer exists.
/// </summary>
internal sealed class RefreshTokenGrant(GrantStore grants, AuthorizationCodeGrant issuer, IServiceScopeFactory scopes, NexusOptions options, TimeProvider time)
{
    public async Task<TokenResult> HandleAsync(OAuthForm form, OAuthClient client, CancellationToken ct)
    {
        if (form["refresh_token"] is not { } token)
        {
            return TokenResult.Fail(OAuthErrorCatalog.InvalidRequest, "refresh_token is required.");
        }

        IReadOnlyList<string>? requested = null;
        if (form["scope"] is { } scopeParameter && (requested = ScopeSyntax.Parse(scopeParameter)) is null)
        {
            return TokenResult.Fail(OAuthErrorCatalog.InvalidScope, "The scope parameter is malformed.");
        }

        // The checks before the token is spent (so that a refused request leaves it usable) apply to a live token of this
        // client only: a used, expired or revoked one goes on to UseRefreshTokenAsync, whose replay detection revokes the
        // grant (RFC 9700 §4.14.2) and whose answer (invalid_grant) tells nobody more than that the token is no good.
        var peeked = await grants.PeekRefreshTokenAsync(token, ct);
        var live = peeked is { Used: false, Grant.RevokedAt: null } && peeked.ExpiresAt > time.GetUtcNow().ToUnixTimeMilliseconds()
            && peeked.Grant.ClientId == client.ClientId ? peeked : null;

        // RFC 6749 §6: a narrower scope is allowed, a wider one is refused, before the token is spent; so is one the
        // application may no longer have (an administrator took it away), which the token would otherwise come without.
        if (requested is not null && live is not null && requested.FirstOrDefault(s => !live.Scopes.Contains(s)) is { } wider)
        {
            return TokenResult.Fail(OAuthErrorCatalog.InvalidScope, $"The scope '{wider}' was not part of the original grant.");
        }

        if (requested is not null && live is not null && requested.FirstOrDefault(s => !client.Scopes.Contains(s)) is { } removed)
        {
            return TokenResult.Fail(OAuthErrorCatalog.InvalidScope, $"The scope '{removed}' is no longer available to this application.");
        }

        // RFC 8707 §2.2: the resource of a refresh may narrow the grant's, never widen it or switch to another; checked
        // before the token is spent, so a refused request leaves the refresh token usable.
        var requestedResource = form[ResourceIndicators.Parameter];
        if (requestedResource is not null && live is not null
            && ResourceIndicators.ForTokenRequest(options, live.Grant.Resource, requestedResource) is { Audience: null } refused)
        {
            return TokenResult.Fail(OAuthErrorCatalog.InvalidTarget, refused.Error!);
        }

        // A grant bound to a resource this Nexus no longer serves (BASE_URL or Nexus:AccessTokenAudience changed since it
        // was authorized) can get no token (RFC 8707 §2: invalid_grant, the grant is unusable): refused before the
        // token is spent, so that a retry once the setting is back is not taken for a replay that revokes the grant.
        if (live is { Grant.Resource: { } grantResource } && !ResourceIndicators.IsServed(options, grantResource))
        {
            return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant,
                "This grant was authorized for a resource this Nexus no longer serves (its address or token audience changed); authorize the application again.");
        }

        var (outcome, grant, tokenScopes) = await grants.UseRefreshTokenAsync(token, client.ClientId, ct);
        switch (outcome)
        {
            case RefreshOutcome.Replayed:
                return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "This refresh token was already used; every token of this grant has been revoked.");
            case RefreshOutcome.GrantRevoked:
                return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "This grant has been revoked.");
            case RefreshOutcome.Expired:
                return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "The refresh token has expired.");
            case RefreshOutcome.Unknown:
                return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "The refresh token is invalid.");
        }

        await using var scope = scopes.CreateAsyncScope();
        var user = await scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>().FindByIdAsync(grant!.UserId);
        if (user is null)
        {
            await grants.RevokeGrantAsync(grant.Id, "user_deleted", ct);
            return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "The user of this grant no longer exists.");
        }

        // Disabling revokes the account's grants, so this is the refresh that raced the disable (or a grant of an account
        // disabled before disabling revoked grants): it gets nothing, and neither does the grant again.
        if (UserAdministration.IsDisabled(user, time.GetUtcNow()))
        {
            await grants.RevokeGrantAsync(grant.Id, UserAdministration.DisabledReason, ct);
            return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "The account of this grant is disabled.");
        }

        var (audience, targetError) = ResourceIndicators.ForTokenRequest(options, grant.Resource, requestedResource);
        if (audience is null)
        {
            return TokenResult.Fail(OAuthErrorCatalog.InvalidTarget, targetError!);
        }

        // The new refresh token keeps the original scope (and the grant its resource) so that a later refresh may ask for it
        // again, less what the client may no longer have: an administrator who narrowed an application's scopes narrows
        // its grants at their next refresh (RFC 6749 §3.3: the server may issue less than requested, and says so in scope).
        var allowed = tokenScopes.Where(s => client.Scopes.Contains(s)).ToList();
        if (allowed.Count == 0 && tokenScopes.Count > 0)
        {
            await grants.RevokeGrantAsync(grant.Id, "scopes_removed", ct);
            return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "This application may no longer have any scope of this grant; authorize it again.");
        }

        return await issuer.IssueAsync(client, user, grant.Id, (requested ?? tokenScopes).Where(allowed.Contains).ToList(), nonce: null, grant.AuthTime,
            lifetimeOverride: null, ct, refreshScopes: allowed, audience: audience);
    }
}
