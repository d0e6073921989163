using System.Text.Json;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Signing;
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
    private const string BasicChallenge = "Basic realm=\"nexus\"";

    public static void MapTokenEndpoint(this IEndpointRouteBuilder app)
    {
        app.MapPost(Path, HandleAsync).WithTags("OAuth").DisableAntiforgery();
        app.MapPost(SeedPath, HandleAsync).WithTags("OAuth").DisableAntiforgery();
    }

    private static async Task HandleAsync(HttpContext context, ClientAuthenticator authenticator, AccessTokenIssuer issuer, NexusOptions options)
    {
        var ct = context.RequestAborted;

        // RFC 6749 §3.2: the token endpoint takes application/x-www-form-urlencoded.
        if (!OAuthForm.IsFormContentType(context.Request.ContentType))
        {
            await OAuthResponses.ErrorAsync(context, 400, "invalid_request", "Send the request as Content-Type: application/x-www-form-urlencoded (UTF-8).");
            return;
        }

        var (form, formError) = await OAuthForm.ReadAsync(context.Request, ct);
        if (form is null)
        {
            await OAuthResponses.ErrorAsync(context, 400, "invalid_request", formError!);
            return;
        }

        var grantType = form["grant_type"];
        if (grantType is null || !GrantTypes.Known.Contains(grantType))
        {
            await OAuthResponses.ErrorAsync(context, 400, "unsupported_grant_type",
                grantType is null ? "grant_type is missing; set grant_type=client_credentials." : "This grant type is not supported; set grant_type=client_credentials.");
            return;
        }

        var auth = await authenticator.AuthenticateAsync(context, form, ct);
        if (auth.Client is not { } client)
        {
            if (auth.RetryAfter is { } wait)
            {
                context.Response.Headers.RetryAfter = ClientAuthenticator.RetryAfterSeconds(wait);
            }

            await OAuthResponses.ErrorAsync(context, auth.Status, auth.Error!, auth.Description!, auth.Status is 401 or 429 ? BasicChallenge : null);
            return;
        }

        if (!client.GrantTypes.Contains(grantType))
        {
            if (options.UnauthorizedGrantResponse == "rfc")
            {
                // RFC 6749 §5.2.
                await OAuthResponses.ErrorAsync(context, 400, "unauthorized_client", "This client is not allowed to use this grant type.");
            }
            else
            {
                await OAuthResponses.ErrorAsync(context, 501, "unsupported_grant_type", "This grant type is not enabled for your App Client.");
            }

            return;
        }

        switch (grantType)
        {
            case GrantTypes.ClientCredentials:
                await ClientCredentialsAsync(context, form, client, issuer);
                return;
            default:
                await OAuthResponses.ErrorAsync(context, 501, "unsupported_grant_type", "This grant type is not available on this server yet.");
                return;
        }
    }

    /// <summary>RFC 6749 §4.4: the client acts on its own behalf, so the token's subject is the client.</summary>
    private static async Task ClientCredentialsAsync(HttpContext context, OAuthForm form, OAuthClient client, AccessTokenIssuer issuer)
    {
        string? scope;
        if (form["scope"] is { } requested)
        {
            // RFC 6749 §3.3: the server may narrow but never widen; anything outside the client's scopes is refused.
            var scopes = ScopeSyntax.Parse(requested);
            if (scopes is null || scopes.Count == 0)
            {
                await OAuthResponses.ErrorAsync(context, 400, "invalid_scope", "The scope parameter is malformed.");
                return;
            }

            if (scopes.FirstOrDefault(s => !client.Scopes.Contains(s)) is { } notGranted)
            {
                await OAuthResponses.ErrorAsync(context, 400, "invalid_scope", $"The scope '{notGranted}' is not granted to this App Client.");
                return;
            }

            scope = string.Join(' ', scopes);
        }
        else
        {
            scope = client.Scopes.Count == 0 ? null : string.Join(' ', client.Scopes);
        }

        var token = issuer.Issue(client.ClientId, client.ClientId, scope, client.AccessTokenLifetimeSeconds);
        var response = context.Response;
        OAuthResponses.NoStore(response);
        response.ContentType = "application/json;charset=UTF-8";
        await using (var json = new Utf8JsonWriter(response.BodyWriter, OAuthResponses.WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("access_token"u8, token.Token);
            json.WriteString("token_type"u8, "Bearer"u8);
            json.WriteNumber("expires_in"u8, token.ExpiresIn);
            if (scope is not null)
            {
                json.WriteString("scope"u8, scope);
            }

            json.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
    }
}
