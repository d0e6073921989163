using Microsoft.AspNetCore.Identity;
using Microsoft.IdentityModel.JsonWebTokens;
using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer.Clients;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// GET /oauth2/logout, OpenID Connect RP-Initiated Logout 1.0. Signs the user out of Nexus and returns to the
/// application only if post_logout_redirect_uri is registered for the client named by client_id or by the
/// id_token_hint's audience; otherwise shows a Nexus page (no open redirect).
/// </summary>
internal static class EndSessionEndpoint
{
    public const string Path = "/oauth2/logout";

    public static void MapEndSession(this IEndpointRouteBuilder app) =>
        app.MapGet(Path, HandleAsync).WithTags("OAuth");

    private static async Task<IResult> HandleAsync(HttpContext context, string? id_token_hint, string? client_id, string? post_logout_redirect_uri, string? state,
        SignInManager<NexusUser> signIn, ClientRegistry clients)
    {
        var clientId = client_id;
        if (clientId is null && id_token_hint is not null)
        {
            try
            {
                // The hint only names the client; its signature is not needed to decide where the user may go,
                // because the destination must be registered for that client anyway.
                clientId = new JsonWebToken(id_token_hint).Audiences.FirstOrDefault();
            }
            catch (ArgumentException)
            {
                clientId = null;
            }
        }

        if (UserAccounts.CurrentUserId(context) is not null)
        {
            await signIn.SignOutAsync();
        }

        if (post_logout_redirect_uri is not null && clientId is not null
            && await clients.FindCachedAsync(clientId, context.RequestAborted) is { IsRevoked: false } client
            && client.PostLogoutRedirectUriList.Contains(post_logout_redirect_uri, StringComparer.Ordinal))
        {
            var separator = post_logout_redirect_uri.Contains('?', StringComparison.Ordinal) ? "&" : "?";
            return Results.Redirect(state is null ? post_logout_redirect_uri : $"{post_logout_redirect_uri}{separator}state={Uri.EscapeDataString(state)}");
        }

        return Page(context, "Signed out", "<section class=\"card narrow\"><h1>You are signed out of Nexus</h1><p><a href=\"/account/signin\">Sign in again</a></p></section>");
    }
}
