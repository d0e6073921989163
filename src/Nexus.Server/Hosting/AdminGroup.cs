namespace Nexus.Server.Hosting;

internal static class AdminGroup
{
    /// <summary>/v1/admin: every route below requires the admin API key (and never reads the session).</summary>
    public static RouteGroupBuilder MapAdminGroup(this IEndpointRouteBuilder app) =>
        app.MapGroup("/v1/admin").AddEndpointFilter<AdminApiKeyFilter>().WithoutSession();
}
