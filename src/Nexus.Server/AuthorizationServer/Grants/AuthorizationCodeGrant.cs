using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Identity;
using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Resources;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Grants;

/// <summary>RFC 6749 §4.1.3: exchanges an authorization code, enforcing the RFC 7636 and RFC 9700 checks.</summary>
internal sealed class AuthorizationCodeGrant(
    GrantStore grants, AccessTokenIssuer accessTokens, IdTokenIssuer idTokens, IServiceScopeFactory scopes, NexusOptions options, TimeProvider time)
{
    /// <param name="lifetimeOverride">Token lifetime asked for by the documented exchange route (which also gets no refresh token).</param>
    public async Task<TokenResult> HandleAsync(OAuthForm form, OAuthClient client, int? lifetimeOverride, CancellationToken ct)
    {
        if (form["code"] is not { } code)
        {
            return TokenResult.Fail(OAuthErrorCatalog.InvalidRequest, "code is required.");
        }

        var (record, consumed, codeHash) = await grants.FindCodeAsync(code, ct);
        // RFC 6749 §4.1.3: the code must have been issued to the client, which the token endpoint authenticated before
        // this runs. Under any other client_id the code is unknown and nothing happens to it: neither spent nor, if it was
        // used, revoked, so whoever holds a used code cannot revoke the grant of the client it belongs to.
        if (record is null || record.ClientId != client.ClientId)
        {
            return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "The authorization code is invalid or was issued to another client.");
        }

        var verifierError = CheckVerifier(record, form["code_verifier"]);
        if (consumed)
        {
            // RFC 6749 §4.1.2 and §10.5, RFC 9700 §4.2.4 and §4.5: a code used twice is refused and the tokens issued from
            // it are revoked, on a request only its client could make: authenticated as the client the code was issued
            // to (above) and, when the code has a PKCE challenge, with its verifier (a public client's client_id is no
            // secret).
            if (verifierError is not null)
            {
                return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "This authorization code was already used.");
            }

            return await ReplayedAsync(codeHash, ct);
        }

        var (failure, audience) = CheckCode(form, record, verifierError);
        if (failure is not null)
        {
            // A refused code is spent all the same: its client tries it once.
            await grants.SpendCodeAsync(codeHash, ct);
            return failure;
        }

        if (await grants.RedeemCodeAsync(codeHash, record, ct) is not { } grantId)
        {
            // A concurrent request redeemed it between our read and now: this one is the replay.
            return await ReplayedAsync(codeHash, ct);
        }

        // The grant is stored before the account is read. Disabling an account stores the lockout and then revokes the
        // account's grants (Accounts/UserAdministration.cs), so either this read finds the account disabled or that
        // revocation finds this grant: a code issued before the disable never yields tokens that outlive it.
        await using var scope = scopes.CreateAsyncScope();
        var user = await scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>().FindByIdAsync(record.UserId);
        if (user is null)
        {
            await grants.RevokeGrantAsync(grantId, "user_deleted", ct);
            return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "The user of this code no longer exists.");
        }

        if (UserAdministration.IsDisabled(user, time.GetUtcNow()))
        {
            await grants.RevokeGrantAsync(grantId, UserAdministration.DisabledReason, ct);
            return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "The account of this code is disabled.");
        }

        // The session that approved the code ended since (an administrator's password reset, a sign-out): its stamp is
        // no longer the account's. The same order as for a disable: a reset changes the stamp and then revokes the
        // account's grants, so either this read sees the new stamp or that revocation finds this grant.
        if (record.SessionStamp is { } approvedBy
            && !System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(System.Text.Encoding.ASCII.GetBytes(approvedBy),
                System.Text.Encoding.ASCII.GetBytes(GrantStore.StampHash(user.SecurityStamp))))
        {
            await grants.RevokeGrantAsync(grantId, UserAdministration.SessionEndedReason, ct);
            return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "The session that approved this code has ended (the account's password was reset, or it signed out).");
        }

        return await IssueAsync(client, user, grantId, record.Scopes, record.Nonce, record.AuthTime, lifetimeOverride, ct, audience: audience);
    }

    private async Task<TokenResult> ReplayedAsync(string codeHash, CancellationToken ct)
    {
        await grants.RevokeCodeGrantAsync(codeHash, ct);
        return TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "This authorization code was already used; tokens issued from it have been revoked.");
    }

    /// <summary>The checks of a fresh code of the client's: a failure, or the token audience.</summary>
    private (TokenResult? Failure, string? Audience) CheckCode(OAuthForm form, AuthorizationCodeRecord record, string? verifierError)
    {
        if (record.ExpiresAt <= time.GetUtcNow().ToUnixTimeMilliseconds())
        {
            return (TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "The authorization code has expired."), null);
        }

        // RFC 6749 §4.1.3: redirect_uri is "REQUIRED, if the redirect_uri parameter was included in the authorization
        // request", and "their values MUST be identical" (a loopback URI on another port included). Left out of the
        // authorization request, it may be left out here too; sent anyway, it must be the one the code went to.
        var redirectUri = form["redirect_uri"];
        if (redirectUri is null ? record.RedirectUriSent : !string.Equals(redirectUri, record.RedirectUri, StringComparison.Ordinal))
        {
            return (TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, "redirect_uri does not match the authorization request."), null);
        }

        if (verifierError is not null)
        {
            return (TokenResult.Fail(OAuthErrorCatalog.InvalidGrant, verifierError), null);
        }

        // RFC 8707 §2.2: the resource named here must be the one the code was issued for (the code is spent either way).
        var (audience, targetError) = ResourceIndicators.ForTokenRequest(options, record.Resource, form[ResourceIndicators.Parameter]);
        if (audience is null)
        {
            return (TokenResult.Fail(OAuthErrorCatalog.InvalidTarget, targetError!), null);
        }

        return (null, audience);
    }

    /// <summary>Why <paramref name="verifier"/> does not go with the code's PKCE challenge, or null when it does.</summary>
    private static string? CheckVerifier(AuthorizationCodeRecord record, string? verifier)
    {
        if (record.CodeChallenge is null)
        {
            // RFC 9700 §4.8.2: a verifier without a challenge is a PKCE downgrade attempt.
            return verifier is null ? null : "code_verifier was sent but the authorization request had no code_challenge.";
        }

        // RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))) must equal the challenge.
        if (verifier is null || verifier.Length is < 43 or > 128 || !verifier.All(c => AuthorizationRequestValidator.IsBase64UrlChar(c) || c is '.' or '~'))
        {
            return "A valid code_verifier is required for this code.";
        }

        var computed = System.Buffers.Text.Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));
        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(computed), Encoding.ASCII.GetBytes(record.CodeChallenge))
            ? null
            : "The code_verifier does not match the code_challenge.";
    }

    /// <summary>Access token, refresh token (when the client may refresh) and ID token (for openid) of a grant.</summary>
    /// <param name="audience">The token's aud (RFC 8707): the grant's resource; Nexus's API when null.</param>
    public async Task<TokenResult> IssueAsync(OAuthClient client, NexusUser user, string grantId, IReadOnlyList<string> tokenScopes, string? nonce, long authTime, int? lifetimeOverride, CancellationToken ct, IReadOnlyList<string>? refreshScopes = null, string? audience = null)
    {
        var scope = tokenScopes.Count == 0 ? null : string.Join(' ', tokenScopes);
        var access = accessTokens.Issue(user.Id, client.ClientId, scope, lifetimeOverride ?? client.AccessTokenLifetimeSeconds, grantId, authTime, audience);
        string? refresh = null;
        if (lifetimeOverride is null && client.GrantTypes.Contains(GrantTypes.RefreshToken))
        {
            refresh = await grants.IssueRefreshTokenAsync(grantId, refreshScopes ?? tokenScopes, TimeSpan.FromDays(options.RefreshTokenLifetimeDays), ct);
        }

        var idToken = tokenScopes.Contains("openid") ? idTokens.Issue(user, client.ClientId, tokenScopes, nonce, authTime, access.Token) : null;
        return new TokenResult(200, AccessToken: access.Token, ExpiresIn: access.ExpiresIn, Scope: scope, RefreshToken: refresh, IdToken: idToken);
    }
}
