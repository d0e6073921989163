using System.Text.Json;
using Microsoft.AspNetCore.Identity;
using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>OIDC Core §5.3: claims about the user, for an access token that carries the openid scope.</summary>
internal static class UserInfoEndpoint
{
    public const string Path = "/oauth2/userinfo";

    public static void MapUserInfo(this IEndpointRouteBuilder app)
    {
        app.MapGet("/oauth2/userinfo", HandleAsync).WithTags("OAuth").WithoutSession();
        // An OAuth client's post: no session cookie, no antiforgery token (Hosting/ProtectedForm.cs is for the HTML forms);
        // antiforgery stays off so that the framework's automatic check of form-bound parameters never applies here.
        app.MapPost("/oauth2/userinfo", HandleAsync).WithTags("OAuth").DisableAntiforgery().WithoutSession();
    }

    private static async Task<IResult> HandleAsync(HttpContext context, BearerTokenAuthenticator bearer, UserManager<NexusUser> users)
    {
        var (claims, challenge) = await bearer.AuthenticateAsync(context);
        if (claims is null)
        {
            return challenge!;
        }

        // OIDC Core §5.3.3: without openid the token is not for userinfo.
        if (!claims.Scopes.Contains("openid") || claims.GrantId is null)
        {
            context.Response.Headers.WWWAuthenticate = $"Bearer realm=\"nexus\", error=\"{OAuthErrorCatalog.InsufficientScope.Error}\", scope=\"openid\"";
            return Problems.Create(ProblemCatalog.InsufficientScope, title: "The access token lacks the openid scope.");
        }

        var user = await users.FindByIdAsync(claims.Subject);
        if (user is null)
        {
            return BearerTokenAuthenticator.Challenge(context, "The user no longer exists.", "The user no longer exists.");
        }

        using var buffer = new MemoryStream();
        await using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("sub"u8, user.Id);
            IdTokenIssuer.WriteProfileClaims(json, user, claims.Scopes);
            json.WriteEndObject();
        }

        context.Response.Headers.CacheControl = "no-store";
        return Results.Bytes(buffer.ToArray(), "application/json");
    }
}
