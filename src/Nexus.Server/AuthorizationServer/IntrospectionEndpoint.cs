using System.Text.Json;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Grants;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// POST /oauth2/introspect (RFC 7662). Callers authenticate as confidential clients (a public client, which has no
/// secret, is refused with invalid_client). A client may introspect the tokens issued to it; a resource server may
/// introspect any token once registered as an App Client with the "nexus:introspect" scope. Anything else, including
/// tokens the caller may not see, is just {"active": false} (RFC 7662 §2.2), so the endpoint reveals nothing to the
/// curious.
/// </summary>
internal static class IntrospectionEndpoint
{
    public const string Path = "/oauth2/introspect";
    public const string IntrospectScope = "nexus:introspect";

    // An OAuth client's post: no session cookie, no antiforgery token (Hosting/ProtectedForm.cs is for the HTML forms);
    // antiforgery stays off so that the framework's automatic check of form-bound parameters never applies here.
    public static void MapIntrospection(this IEndpointRouteBuilder app) =>
        app.MapPost("/oauth2/introspect", HandleAsync).WithTags("OAuth").DisableAntiforgery().WithoutSession();

    private static async Task HandleAsync(HttpContext context, ClientAuthenticator authenticator, AccessTokenValidator validator, GrantStore grants, RevocationList revocations, ClientRegistry clients, NexusOptions options)
    {
        var ct = context.RequestAborted;
        var (form, caller) = await TokenRequests.ReadAuthenticatedAsync(context, authenticator);
        if (caller is null)
        {
            return;
        }

        if (caller.IsPublic)
        {
            // RFC 7662 §2.1: the endpoint "MUST also require some form of authorization". A public client only names
            // itself (no secret), so it is not authenticated here: invalid_client as RFC 6749 §5.2 has it, and discovery
            // lists no "none" in introspection_endpoint_auth_methods_supported.
            await ClientAuthentication.Fail(OAuthErrorCatalog.InvalidClient, "Introspection requires client authentication: a public client (no secret) may not introspect tokens.")
                .WriteFailureAsync(context);
            return;
        }

        if (form!["token"] is not { } token)
        {
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidRequest, "token is required.");
            return;
        }

        bool MayInspect(string clientId) => clientId == caller.ClientId || caller.Scopes.Contains(IntrospectScope);
        var now = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow().ToUnixTimeMilliseconds();

        // RFC 7662 §2.1: the hint only says where to look first. "If the server is unable to locate the token using the
        // given hint, it MUST extend its search across all of its supported token types."
        AccessTokenClaims? access;
        RefreshTokenView? refresh;
        if (form["token_type_hint"] == "refresh_token")
        {
            refresh = await grants.PeekRefreshTokenAsync(token, ct);
            access = refresh is null ? await LocateAccessTokenAsync(token, validator, ct) : null;
        }
        else
        {
            access = await LocateAccessTokenAsync(token, validator, ct);
            refresh = access is null ? await grants.PeekRefreshTokenAsync(token, ct) : null;
        }

        var response = context.Response;
        OAuthResponses.NoStore(response);
        response.ContentType = "application/json;charset=UTF-8";
        await using var json = new Utf8JsonWriter(response.BodyWriter, OAuthResponses.WriterOptions);
        json.WriteStartObject();

        // RFC 7662 §2.2: active only before exp by the authorization server's own clock; the clock skew a resource
        // server allows for (AccessTokenValidator) is not the issuer's to grant.
        if (access is { } claims && claims.ExpiresAt * 1000 > now && MayInspect(claims.ClientId) && !await revocations.IsRevokedAsync(claims, ct)
            && await clients.FindCachedAsync(claims.ClientId, ct) is { IsRevoked: false })
        {
            json.WriteBoolean("active"u8, true);
            if (claims.Scope is not null)
            {
                json.WriteString("scope"u8, claims.Scope);
            }

            json.WriteString("client_id"u8, claims.ClientId);
            json.WriteString("sub"u8, claims.Subject);
            json.WriteString("token_type"u8, "Bearer"u8);
            json.WriteNumber("exp"u8, claims.ExpiresAt);
            json.WriteNumber("iat"u8, claims.IssuedAt);
            json.WriteString("iss"u8, options.Issuer);
            json.WriteString("aud"u8, claims.Audience);
            json.WriteString("jti"u8, claims.Jti);
        }
        else if (refresh is { } found && MayInspect(found.Grant.ClientId) && found.Grant.RevokedAt is null && !found.Used && found.ExpiresAt > now
            // Like an access token's: a revoked client's refresh token is inactive (RFC 7662 §2.2), though its grant stands.
            && !revocations.IsClientRevoked(found.Grant.ClientId)
            // Without a current list (PollSeconds 0) nothing else tells this instance that another one deleted the client.
            && await (revocations.IsCurrent ? clients.FindCachedAsync(found.Grant.ClientId, ct) : new ValueTask<OAuthClient?>(clients.FindAsync(found.Grant.ClientId, ct))) is { IsRevoked: false })
        {
            json.WriteBoolean("active"u8, true);
            json.WriteString("scope"u8, string.Join(' ', found.Scopes));
            json.WriteString("client_id"u8, found.Grant.ClientId);
            json.WriteString("sub"u8, found.Grant.UserId);
            json.WriteString("token_type"u8, "refresh_token"u8);
            json.WriteNumber("exp"u8, found.ExpiresAt / 1000);
            json.WriteString("iss"u8, options.Issuer);
        }
        else
        {
            json.WriteBoolean("active"u8, false);
        }

        json.WriteEndObject();
        await json.FlushAsync(ct);
    }

    /// <summary>The claims of a token Nexus signed as an access token (revoked or not), or null when it is none.</summary>
    private static async ValueTask<AccessTokenClaims?> LocateAccessTokenAsync(string token, AccessTokenValidator validator, CancellationToken ct) =>
        token.Count(c => c == '.') == 2 ? (await validator.ValidateAsync(token, audience: null, ct)).Claims : null;
}

/// <summary>The shared front half of the client-authenticated form endpoints (introspection, revocation).</summary>
internal static class TokenRequests
{
    public static async Task<(OAuthForm? Form, OAuthClient? Client)> ReadAuthenticatedAsync(HttpContext context, ClientAuthenticator authenticator)
    {
        if (!OAuthForm.IsFormContentType(context.Request.ContentType))
        {
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidRequest, "Send the request as Content-Type: application/x-www-form-urlencoded (UTF-8).");
            return (null, null);
        }

        var (form, error) = await OAuthForm.ReadAsync(context.Request, context.RequestAborted);
        if (form is null)
        {
            await OAuthInvalidInput.RejectFormAsync(context, error!);
            return (null, null);
        }

        var auth = await authenticator.AuthenticateAsync(context, form, context.RequestAborted);
        if (auth.Client is null)
        {
            await auth.WriteFailureAsync(context);
            return (null, null);
        }

        return (form, auth.Client);
    }
}
