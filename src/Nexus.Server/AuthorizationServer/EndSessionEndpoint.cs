using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Hosting;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// /oauth2/logout, OpenID Connect RP-Initiated Logout 1.0. Signs the user out of Nexus and returns to the
/// application only if post_logout_redirect_uri is registered for the client named by client_id or by the
/// id_token_hint's audience; otherwise shows a Nexus page (no open redirect). A GET that does not carry a valid
/// id_token_hint for the signed-in user could come from any site (an image tag logs the user out), so Nexus asks
/// first (RP-Initiated Logout §2: "the OP SHOULD ask the End-User whether to log out") with an
/// antiforgery-protected POST. An application's own POST (RP-Initiated Logout §2) is the GET's request
/// (<see cref="PostedRequests"/>).
/// </summary>
internal static class EndSessionEndpoint
{
    public const string Path = "/oauth2/logout";

    public static void MapEndSession(this IEndpointRouteBuilder app)
    {
        app.MapGet("/oauth2/logout", HandleAsync).WithTags("OAuth");
        app.MapPost("/oauth2/logout", ConfirmAsync).ExcludeFromDescription().AcceptRequestsByPost(Path).RequireProtectedForm();
    }

    private static async Task<IResult> HandleAsync(HttpContext context, string? id_token_hint, string? client_id, string? post_logout_redirect_uri, string? state,
        AccountSignOut signOut, ClientRegistry clients, SigningKeys keys, NexusOptions options)
    {
        var userId = UserAccounts.CurrentUserId(context);
        var (hintValid, hintClient) = await ReadHintAsync(id_token_hint, userId, keys, options);
        var clientId = client_id ?? hintClient;
        if (client_id is not null && hintClient is not null && client_id != hintClient)
        {
            // RP-Initiated Logout §2: with both, "the OP MUST verify that the Client Identifier matches the one used when
            // issuing the ID Token". They do not: the hint speaks for no request here, and no client's URI is a destination.
            (hintValid, clientId) = (false, null);
        }

        if (userId is not null && !hintValid)
        {
            string Hidden(string name, string? value) => value is null ? "" : $"<input type=\"hidden\" name=\"{name}\" value=\"{E(value)}\">";
            return Page(context, "Sign out?", $"""
                <section class="card narrow"><h1>Sign out of Nexus?</h1><p>An application asked to sign you out.</p>
                <form method="post" action="{Path}">{AntiforgeryField(context)}{Hidden("client_id", clientId)}{Hidden("post_logout_redirect_uri", post_logout_redirect_uri)}{Hidden("state", state)}
                <div class="actions"><button type="submit">Sign out</button><a class="button secondary" href="/">Stay signed in</a></div></form></section>
                """);
        }

        return await SignOutAsync(context, clientId, post_logout_redirect_uri, state, signOut, clients);
    }

    private static async Task<IResult> ConfirmAsync(HttpContext context, AccountSignOut signOut, ClientRegistry clients)
    {
        var form = ProtectedForm.Of(context);

        string? Field(string name) => form[name] is { Count: 1 } v && !string.IsNullOrEmpty(v[0]) ? v[0] : null;
        return await SignOutAsync(context, Field("client_id"), Field("post_logout_redirect_uri"), Field("state"), signOut, clients);
    }

    /// <summary>
    /// Whether the hint is an ID token this Nexus signed for the signed-in user (an expired one still counts, as
    /// RP-Initiated Logout §2 allows), and the client it names. An unverified hint still names the client: the
    /// destination must be registered for that client anyway.
    /// </summary>
    private static async Task<(bool Valid, string? ClientId)> ReadHintAsync(string? hint, string? userId, SigningKeys keys, NexusOptions options)
    {
        if (string.IsNullOrEmpty(hint))
        {
            return (false, null);
        }

        string? clientId;
        try
        {
            clientId = new JsonWebToken(hint).Audiences.FirstOrDefault();
        }
        catch (ArgumentException)
        {
            return (false, null);
        }

        var result = await new JsonWebTokenHandler().ValidateTokenAsync(hint, new TokenValidationParameters
        {
            ValidIssuer = options.Issuer,
            ValidateAudience = false,
            ValidateLifetime = false,
            ValidAlgorithms = [IdTokenIssuer.Algorithm],
            IssuerSigningKeys = new JsonWebKeySet(keys.JwksJson).GetSigningKeys(),
        });
        // An ID token only: an access token (RFC 9068 typ at+jwt) is not a hint, whatever key signed it.
        var valid = result.IsValid && userId is not null && result.SecurityToken is JsonWebToken token && token.Subject == userId
            && !string.Equals(token.Typ, "at+jwt", StringComparison.OrdinalIgnoreCase);
        return (valid, clientId);
    }

    private static async Task<IResult> SignOutAsync(HttpContext context, string? clientId, string? postLogoutRedirectUri, string? state,
        AccountSignOut signOut, ClientRegistry clients)
    {
        if (UserAccounts.CurrentUserId(context) is not null)
        {
            // OpenID Connect RP-Initiated Logout §2: the OP logs the End-User out; here as on /account/signout, the
            // session ends on the server too, so that a copy of the cookie is refused afterwards.
            await signOut.EndSessionAsync(context);
        }

        if (postLogoutRedirectUri is not null && clientId is not null
            && await clients.FindCachedAsync(clientId, context.RequestAborted) is { IsRevoked: false } client
            && client.PostLogoutRedirectUriList.Contains(postLogoutRedirectUri, StringComparer.Ordinal))
        {
            var separator = postLogoutRedirectUri.Contains('?', StringComparison.Ordinal) ? "&" : "?";
            return Results.Redirect(state is null ? postLogoutRedirectUri : $"{postLogoutRedirectUri}{separator}state={Uri.EscapeDataString(state)}");
        }

        return Page(context, "Signed out", "<section class=\"card narrow\"><h1>You are signed out of Nexus</h1><p><a href=\"/account/signin\">Sign in again</a></p></section>");
    }
}
