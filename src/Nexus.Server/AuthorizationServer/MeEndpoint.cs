using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// GET /api/v1/me: a protected resource that accepts Nexus access tokens (RFC 6750) and says who the token
/// speaks for. It doubles as the reference for how Nexus's APIs check bearer tokens.
/// </summary>
internal static class MeEndpoint
{
    public static void MapMe(this IEndpointRouteBuilder app) =>
        app.MapGet("/api/v1/me", HandleAsync).WithTags("OAuth").WithoutSession();

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

/// <summary>The bearer token of a request, checked: its claims, or why it is not acceptable.</summary>
/// <param name="TokenSent">Whether the request carried a bearer token at all (RFC 6750 §3.1: no error code when it did not).</param>
internal readonly record struct BearerCheck(AccessTokenClaims? Claims, bool TokenSent, string? Error);

/// <summary>Validates the bearer token of a request and answers RFC 6750 §3 challenges when it is not acceptable.</summary>
internal sealed class BearerTokenAuthenticator(AccessTokenValidator validator, ClientRegistry clients, Grants.RevocationList revocations, Hosting.NexusOptions options)
{
    /// <summary>For Nexus's REST API: the token's aud must be the API's (a token for /mcp is refused).</summary>
    public async Task<(AccessTokenClaims? Claims, IResult? Challenge)> AuthenticateAsync(HttpContext context)
    {
        var check = await CheckAsync(context, options.Audience);
        return check.Claims is not null ? (check.Claims, null) : (null, Challenge(context, check.TokenSent ? check.Error : null, check.Error!));
    }

    /// <summary>
    /// Checks the request's bearer token for the resource <paramref name="audience"/> (the /mcp endpoint passes
    /// <see cref="Hosting.NexusOptions.McpResource"/>): signature, issuer, audience, expiry, client not revoked, token
    /// and grant not revoked. Writes nothing; the caller answers with its own challenge.
    /// </summary>
    public async Task<BearerCheck> CheckAsync(HttpContext context, string audience)
    {
        var header = context.Request.Headers.Authorization;
        // RFC 6750 §2.1: only the Authorization header (bearer_methods_supported: header).
        if (header.Count != 1 || !header[0]!.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return new BearerCheck(null, false, "A Nexus access token is required (Authorization: Bearer <token>).");
        }

        var token = header[0]!["Bearer ".Length..].Trim();
        var (claims, error) = await validator.ValidateAsync(token, audience, context.RequestAborted);
        if (claims is null)
        {
            return new BearerCheck(null, true, error);
        }

        // Tokens outlive nothing: a revoked client's tokens stop working at once.
        var client = await clients.FindCachedAsync(claims.ClientId, context.RequestAborted);
        if (client is null || client.IsRevoked)
        {
            return new BearerCheck(null, true, "The client this token was issued to has been revoked.");
        }

        // RFC 7009: a token revoked on its own, or through its grant (consent withdrawn, code replayed, refresh reuse).
        if (await revocations.IsRevokedAsync(claims, context.RequestAborted))
        {
            return new BearerCheck(null, true, "The token has been revoked.");
        }

        return new BearerCheck(claims, true, null);
    }

    public static IResult Challenge(HttpContext context, string? error, string detail)
    {
        context.Response.Headers.WWWAuthenticate = error is null
            ? "Bearer realm=\"nexus\""
            : $"Bearer realm=\"nexus\", error=\"{OAuthErrorCatalog.InvalidToken.Error}\", error_description=\"{error.Replace("\"", "'", StringComparison.Ordinal)}\"";
        return Problems.Create(error is null ? ProblemCatalog.Unauthorized : ProblemCatalog.InvalidToken, detail, title: ProblemCatalog.InvalidToken.Title);
    }
}
