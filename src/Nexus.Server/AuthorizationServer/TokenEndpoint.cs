using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Grants;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// POST /oauth2/token (RFC 6749 §3.2) and the documented alias POST /nexus/oauth2/token. Error statuses follow the
/// Nexus Authentication document: 400 invalid_request, 400 unsupported_grant_type, 400 invalid_scope,
/// 401 invalid_client, and 501 unsupported_grant_type for a grant the client may not use (configurable to
/// RFC 6749's 400 unauthorized_client).
/// </summary>
internal static class TokenEndpoint
{
    public const string Path = "/oauth2/token";
    public const string SeedPath = "/nexus/oauth2/token";

    public static void MapTokenEndpoint(this IEndpointRouteBuilder app)
    {
        // An OAuth client's post: no session cookie, no antiforgery token (Hosting/ProtectedForm.cs is for the HTML forms);
        // antiforgery stays off so that the framework's automatic check of form-bound parameters never applies here.
        app.MapPost("/oauth2/token", HandleAsync).WithTags("OAuth").DisableAntiforgery().WithoutSession();
        app.MapPost("/nexus/oauth2/token", HandleAsync).WithTags("OAuth").DisableAntiforgery().WithoutSession();
    }

    private static async Task HandleAsync(HttpContext context, ClientAuthenticator authenticator, NexusOptions options, Observability.NexusMetrics metrics)
    {
        string? grantType = null;
        try
        {
            grantType = await HandleCoreAsync(context, authenticator, options);
        }
        finally
        {
            // Tags from fixed lists only: a grant type Nexus does not know is "unsupported", not the caller's text.
            metrics.TokenRequest(grantType is not null && GrantTypes.Known.Contains(grantType) ? grantType : "unsupported",
                context.Response.StatusCode < 300 ? "issued" : context.Items[OAuthResponses.ErrorItem] as string ?? "error");
        }
    }

    /// <summary>Answers the token request; returns its grant_type (null before the form was read).</summary>
    private static async ValueTask<string?> HandleCoreAsync(HttpContext context, ClientAuthenticator authenticator, NexusOptions options)
    {
        var ct = context.RequestAborted;

        // RFC 6749 §3.2: the token endpoint takes application/x-www-form-urlencoded.
        if (!OAuthForm.IsFormContentType(context.Request.ContentType))
        {
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidRequest, "Send the request as Content-Type: application/x-www-form-urlencoded (UTF-8).");
            return null;
        }

        var (form, formError) = await OAuthForm.ReadAsync(context.Request, ct);
        if (form is null)
        {
            await OAuthInvalidInput.RejectFormAsync(context, formError!);
            return null;
        }

        if (form.SeveralResources)
        {
            // RFC 8707 §2: the server may refuse a combination of resources; Nexus binds each grant to one, so that every
            // token it issues has a single audience (as the authorization endpoint answers).
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidTarget, "Request one resource per token: Nexus binds each grant to a single resource.");
            return form["grant_type"];
        }

        var grantType = form["grant_type"];
        if (grantType is null || !GrantTypes.Known.Contains(grantType))
        {
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.UnsupportedGrantType,
                grantType is null ? "grant_type is missing." : "This grant type is not supported (use client_credentials, authorization_code or refresh_token).");
            return grantType;
        }

        var auth = await authenticator.AuthenticateAsync(context, form, ct);
        if (auth.Client is not { } client)
        {
            await auth.WriteFailureAsync(context);
            return grantType;
        }

        if (!client.GrantTypes.Contains(grantType))
        {
            // The product's 501 is a promise to App Clients; an OAuth application (registered, self-registered, a
            // metadata document) speaks RFC 6749 only, and discovery lists the grant, so 501 would tell it the grant
            // does not exist at all.
            if (options.UnauthorizedGrantResponse == "rfc" || client.Kind != Clients.ClientKinds.AppClient)
            {
                // RFC 6749 §5.2.
                await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.UnauthorizedClient, "This client is not allowed to use this grant type.");
            }
            else
            {
                await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.UnsupportedGrantType, "This grant type is not enabled for your App Client.", status: StatusCodes.Status501NotImplemented);
            }

            return grantType;
        }

        var services = context.RequestServices;
        var result = grantType switch
        {
            GrantTypes.ClientCredentials => ClientCredentialsGrant.Handle(form, client, services.GetRequiredService<Signing.AccessTokenIssuer>(), options),
            GrantTypes.AuthorizationCode => await services.GetRequiredService<AuthorizationCodeGrant>().HandleAsync(form, client, null, ct),
            _ => await services.GetRequiredService<RefreshTokenGrant>().HandleAsync(form, client, ct),
        };
        await result.WriteAsync(context);
        return grantType;
    }
}
