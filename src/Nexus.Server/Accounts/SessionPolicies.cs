using System.Security.Claims;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Nexus.Server.Hosting;

namespace Nexus.Server.Accounts;

/// <summary>
/// The session cookie's policies (issue 13, item 2), on route groups instead of a check at the top of each page:
/// <see cref="NexusPolicies.SignedIn"/> (My connections, Authorized applications, /setup, the MCP connect page),
/// <see cref="NexusPolicies.SiteAdmin"/> (Site Management) and <see cref="NexusPolicies.Session"/> (the password change
/// page). A refusal is the page it was before: a person who is not signed in goes to the sign-in page with the page as
/// returnUrl, a session that owes a password change goes to <see cref="PasswordChange.Path"/> with the page as returnUrl,
/// a signed-in person who is not the administrator gets the 403 "Administrators only" page. Other policies (the API
/// keys') keep the framework's answer: their scheme's challenge, which writes the API's problem.
/// </summary>
internal sealed class SessionPolicies : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler framework = new();

    public static void Add(IServiceCollection services)
    {
        // Signed in: an authenticated session that names its account (what UserAccounts.CurrentUserId reads).
        // SignedIn and SiteAdmin also refuse a session that owes a password change (PasswordChange); Session does not.
        services.AddAuthorizationBuilder()
            .AddPolicy(NexusPolicies.Session, policy => policy.RequireAuthenticatedUser().RequireClaim(ClaimTypes.NameIdentifier))
            .AddPolicy(NexusPolicies.SignedIn, policy => policy.RequireAuthenticatedUser().RequireClaim(ClaimTypes.NameIdentifier)
                .RequireAssertion(c => !PasswordChange.IsRequired(c.User)))
            .AddPolicy(NexusPolicies.SiteAdmin, policy => policy.RequireAuthenticatedUser().RequireClaim(SystemAdmin.ClaimType, "true")
                .RequireAssertion(c => !PasswordChange.IsRequired(c.User)));
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, SessionPolicies>();
    }

    public Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Succeeded || SessionPolicy(context) is not { } session)
        {
            return framework.HandleAsync(next, context, policy, authorizeResult);
        }

        // Back to the page after signing in (or changing the password); a refused form post has no page to come back to.
        var here = HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method) ? context.Request.Path + context.Request.QueryString : "/";
        var refusal = PasswordChange.IsRequired(context.User) ? Results.Redirect(PasswordChange.PageFor(here))
            : session != NexusPolicies.SiteAdmin || context.User.Identity?.IsAuthenticated != true
            ? Results.Redirect($"{AccountEndpoints.SignInPath}?returnUrl={Uri.EscapeDataString(here)}")
            : Html.Error(context, "Administrators only", "Site management is for the system administrator of this deployment.", StatusCodes.Status403Forbidden);
        return refusal.ExecuteAsync(context);
    }

    /// <summary>The session policy the endpoint requires (SiteAdmin before the others: a signed-in person refused by it gets the 403 page), or null for the API keys'.</summary>
    private static string? SessionPolicy(HttpContext context)
    {
        var required = context.GetEndpoint()?.Metadata.GetOrderedMetadata<IAuthorizeData>() ?? [];
        return required.Any(a => a.Policy == NexusPolicies.SiteAdmin) ? NexusPolicies.SiteAdmin
            : required.Any(a => a.Policy is NexusPolicies.SignedIn or NexusPolicies.Session) ? NexusPolicies.SignedIn
            : null;
    }
}
