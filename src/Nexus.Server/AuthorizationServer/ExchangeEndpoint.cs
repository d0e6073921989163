using System.Globalization;
using System.Text;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Grants;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// POST /api/v1/oauth/exchange, the code exchange of the Nexus OAuth 2.0 Integration Guide: parameters in the
/// query string (as the guide's example sends them) or a form body, client_secret among them, an optional
/// "expiration" in minutes (default 480), and the response {access_token, token_type, expires_in, state}.
/// Underneath it is the same code redemption as RFC 6749 §4.1.3 with the same checks.
/// </summary>
internal static class ExchangeEndpoint
{
    public const string Path = "/api/v1/oauth/exchange";
    public const int DefaultExpirationMinutes = 480;

    // An OAuth client's post: no session cookie, no antiforgery token (Hosting/ProtectedForm.cs is for the HTML forms);
    // antiforgery stays off so that the framework's automatic check of form-bound parameters never applies here.
    public static void MapExchangeEndpoint(this IEndpointRouteBuilder app) =>
        app.MapPost("/api/v1/oauth/exchange", HandleAsync).WithTags("OAuth").DisableAntiforgery().WithoutSession();

    private static async Task HandleAsync(HttpContext context, ClientAuthenticator authenticator, AuthorizationCodeGrant codeGrant, NexusOptions options)
    {
        var ct = context.RequestAborted;
        var query = context.Request.QueryString.HasValue ? context.Request.QueryString.Value![1..] : "";
        var (parameters, error) = OAuthForm.Parse(Encoding.UTF8.GetBytes(query));
        if (parameters is not null && (context.Request.ContentLength > 0 || context.Request.Headers.TransferEncoding.Count > 0))
        {
            if (!OAuthForm.IsFormContentType(context.Request.ContentType))
            {
                await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidRequest, "Send parameters in the query string or as application/x-www-form-urlencoded.");
                return;
            }

            var (body, bodyError) = await OAuthForm.ReadAsync(context.Request, ct);
            (parameters, error) = body is null ? (null, bodyError) : OAuthForm.Merge(parameters!, body);
        }

        if (parameters is null)
        {
            await OAuthInvalidInput.RejectFormAsync(context, error!);
            return;
        }

        if (parameters.SeveralResources)
        {
            // RFC 8707 §2, as at /oauth2/token: a grant is bound to one resource.
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidTarget, "Request one resource per token: Nexus binds each grant to a single resource.");
            return;
        }

        var minutes = DefaultExpirationMinutes;
        if (parameters["expiration"] is { } expiration
            && (!int.TryParse(expiration, NumberStyles.None, CultureInfo.InvariantCulture, out minutes) || minutes < 1))
        {
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidRequest, "expiration must be a whole number of minutes.");
            return;
        }

        // Longer requests are capped rather than refused: the response's expires_in says what was granted.
        var lifetime = (int)Math.Min(Math.Min(minutes, options.MaxExchangeExpirationMinutes) * 60L, options.MaxAccessTokenLifetimeSeconds);

        var auth = await authenticator.AuthenticateAsync(context, parameters, ct);
        if (auth.Client is not { } client)
        {
            await auth.WriteFailureAsync(context);
            return;
        }

        if (!client.GrantTypes.Contains(GrantTypes.AuthorizationCode))
        {
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.UnauthorizedClient, "This client may not use the authorization code flow.");
            return;
        }

        if (client.IsSelfRegistered)
        {
            // A client that registered itself gets no longer tokens here than at /oauth2/token: the lifetime registration
            // gave it (an administrator's client may ask for the guide's longer expirations).
            lifetime = Math.Min(lifetime, client.AccessTokenLifetimeSeconds);
        }

        var result = await codeGrant.HandleAsync(parameters, client, lifetime, ct);
        await result.WriteAsync(context, parameters["state"], seedShape: true);
    }
}
