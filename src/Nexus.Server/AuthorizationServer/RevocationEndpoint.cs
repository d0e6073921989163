using Nexus.Server.AuthorizationServer.Grants;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// POST /oauth2/revoke (RFC 7009). A client revokes its own tokens: a refresh token revokes its whole grant
/// (and so every access token issued from it, §2.1); an access token is revoked on its own. The answer is
/// 200 whether or not the token was valid (§2.2), so it cannot be used to probe tokens.
/// </summary>
internal static class RevocationEndpoint
{
    public const string Path = "/oauth2/revoke";

    // An OAuth client's post: no session cookie, no antiforgery token (Hosting/ProtectedForm.cs is for the HTML forms);
    // antiforgery stays off so that the framework's automatic check of form-bound parameters never applies here.
    public static void MapRevocation(this IEndpointRouteBuilder app) =>
        app.MapPost("/oauth2/revoke", HandleAsync).WithTags("OAuth").DisableAntiforgery().WithoutSession();

    private static async Task HandleAsync(HttpContext context, ClientAuthenticator authenticator, AccessTokenValidator validator, GrantStore grants)
    {
        var ct = context.RequestAborted;
        var (form, caller) = await TokenRequests.ReadAuthenticatedAsync(context, authenticator);
        if (caller is null)
        {
            return;
        }

        if (form!["token"] is not { } token)
        {
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidRequest, "token is required.");
            return;
        }

        // RFC 7009 §2.1: the hint only says where to look first. "If the server is unable to locate the token using the
        // given hint, it MUST extend its search across all of its supported token types."
        if (form["token_type_hint"] == "refresh_token")
        {
            if (!await RevokeRefreshTokenAsync(token, caller.ClientId, grants, ct))
            {
                await RevokeAccessTokenAsync(token, caller.ClientId, validator, grants, ct);
            }
        }
        else if (!await RevokeAccessTokenAsync(token, caller.ClientId, validator, grants, ct))
        {
            await RevokeRefreshTokenAsync(token, caller.ClientId, grants, ct);
        }

        OAuthResponses.NoStore(context.Response);
        context.Response.StatusCode = StatusCodes.Status200OK;
    }

    /// <summary>Revokes an access token of the caller's; false when the token is not a Nexus access token at all.</summary>
    private static async Task<bool> RevokeAccessTokenAsync(string token, string callerId, AccessTokenValidator validator, GrantStore grants, CancellationToken ct)
    {
        if (token.Count(c => c == '.') != 2)
        {
            return false;
        }

        var (claims, _) = await validator.ValidateAsync(token, audience: null, ct);
        if (claims is null)
        {
            return false;
        }

        if (claims.ClientId == callerId)
        {
            await grants.RevokeAccessTokenAsync(claims.Jti, claims.ExpiresAt, ct);
        }

        return true;
    }

    /// <summary>Revokes the grant of a refresh token of the caller's; false when the token is no refresh token Nexus knows.</summary>
    private static async Task<bool> RevokeRefreshTokenAsync(string token, string callerId, GrantStore grants, CancellationToken ct)
    {
        if (await grants.PeekRefreshTokenAsync(token, ct) is not { } refresh)
        {
            return false;
        }

        if (refresh.Grant.ClientId == callerId)
        {
            await grants.RevokeGrantAsync(refresh.Grant.Id, "revoked_by_client", ct);
        }

        return true;
    }
}
