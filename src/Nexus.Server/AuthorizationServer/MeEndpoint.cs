using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Signing;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// GET /api/v1/me: a protected resource that accepts Nexus access tokens (RFC 6750) and says who the token
/// speaks for. It doubles as the reference for how Nexus's APIs check bearer tokens.
/// </summary>
internal static class MeEndpoint
{
    public static void MapMe(this IEndpointRouteBuilder app) =>
        app.MapGet("/api/v1/me", HandleAsync).WithTags("OAuth");

    private static async Task<IResult> HandleAsync(HttpContext context, BearerTokenAuthenticator bearer)
    {
        var (claims, challenge) = await bearer.AuthenticateAsync(context);
        if (claims is null)
        {
            return challenge!;
        }

        return TypedResults.Ok(new MeResponse(claims.Subject, claims.ClientId, claims.Scope, claims.Scopes, claims.ExpiresAt));
    }
}

internal sealed record MeResponse(string Sub, string ClientId, string? Scope, IReadOnlyList<string> Scopes, long ExpiresAt);

/// <summary>Validates the bearer token of a request and answers RFC 6750 §3 challenges when it is not acceptable.</summary>
internal sealed class BearerTokenAuthenticator(AccessTokenValidator validator, ClientRegistry clients, Grants.GrantStore grants)
{
    public async Task<(AccessTokenClaims? Claims, IResult? Challenge)> AuthenticateAsync(HttpContext context)
    {
        var (claims, sent, error) = await ValidateAsync(context, null);
        // RFC 6750 §3.1: a request without credentials gets a challenge without an error code.
        return claims is not null ? (claims, null)
            : !sent ? (null, Challenge(context, null, "A Nexus access token is required (Authorization: Bearer <token>)."))
            : (null, Challenge(context, error, error!));
    }

    /// <summary>
    /// The checks every protected resource of Nexus makes: signature, issuer, audience, expiry, client and token
    /// revocation. <paramref name="resource"/> is the audience required (null: Nexus's own API).
    /// </summary>
    /// <returns>The claims; or whether a bearer token was sent at all and, if one was, why it was refused.</returns>
    public async Task<(AccessTokenClaims? Claims, bool TokenSent, string? Error)> ValidateAsync(HttpContext context, string? resource)
    {
        var header = context.Request.Headers.Authorization;
        if (header.Count != 1 || !header[0]!.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return (null, false, null);
        }

        var token = header[0]!["Bearer ".Length..].Trim();
        var (claims, error) = await validator.ValidateAsync(token, context.RequestAborted, resource);
        if (claims is null)
        {
            return (null, true, error);
        }

        // Tokens outlive nothing: a revoked client's tokens stop working at once.
        var client = await clients.FindCachedAsync(claims.ClientId, context.RequestAborted);
        if (client is null || client.IsRevoked)
        {
            return (null, true, "The client this token was issued to has been revoked.");
        }

        // RFC 7009: a token revoked on its own, or through its grant (consent withdrawn, code replayed, refresh reuse).
        if (await grants.IsAccessTokenRevokedAsync(claims.Jti, claims.GrantId, context.RequestAborted))
        {
            return (null, true, "The token has been revoked.");
        }

        return (claims, true, null);
    }

    public static IResult Challenge(HttpContext context, string? error, string detail)
    {
        context.Response.Headers.WWWAuthenticate = error is null
            ? "Bearer realm=\"nexus\""
            : $"Bearer realm=\"nexus\", error=\"invalid_token\", error_description=\"{error.Replace("\"", "'", StringComparison.Ordinal)}\"";
        return Hosting.Problems.Create(StatusCodes.Status401Unauthorized, error is null ? "unauthorized" : "invalid_token", "The access token is missing or not acceptable.", detail);
    }
}
