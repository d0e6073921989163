using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Nexus.Server.Hosting;

namespace Nexus.Server.Accounts;

/// <summary>
/// The session cookie's policies (issue 13, item 2): <see cref="NexusPolicies.SiteAdmin"/> on Site Management's route
/// group instead of a check at the top of each page. A refusal is the page it was before: a person who is not signed
/// in goes to the sign-in page with the page as returnUrl, a signed-in person who is not the administrator gets the
/// 403 "Administrators only" page. Other policies (the API keys') keep the framework's answer: their scheme's
/// challenge, which writes the API's problem.
/// </summary>
internal sealed class SessionPolicies : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler framework = new();

    public static void Add(IServiceCollection services)
    {
        services.AddAuthorizationBuilder().AddPolicy(NexusPolicies.SiteAdmin, policy => policy.RequireAuthenticatedUser().RequireClaim(SystemAdmin.ClaimType, "true"));
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, SessionPolicies>();
    }

    public Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Succeeded || !IsSiteAdmin(context))
        {
            return framework.HandleAsync(next, context, policy, authorizeResult);
        }

        var refusal = context.User.Identity?.IsAuthenticated != true
            ? Results.Redirect($"{AccountEndpoints.SignInPath}?returnUrl={Uri.EscapeDataString(context.Request.Path + context.Request.QueryString)}")
            : Html.Error(context, "Administrators only", "Site management is for the system administrator of this deployment.", StatusCodes.Status403Forbidden);
        return refusal.ExecuteAsync(context);
    }

    private static bool IsSiteAdmin(HttpContext context) =>
        context.GetEndpoint()?.Metadata.GetOrderedMetadata<IAuthorizeData>().Any(a => a.Policy == NexusPolicies.SiteAdmin) == true;
}
