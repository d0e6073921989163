namespace Nexus.Server.Hosting;

internal static class AdminGroup
{
    /// <summary>
    /// The admin API (/v1/admin/…, /v1/providers): every route mapped on the group requires the admin API key (and never
    /// reads the session). The group has no prefix, so each route keeps its whole path where it is mapped (a search for
    /// "/v1/admin/api-keys/{id}" finds it; docs/architecture.md, "Finding the code of a route").
    /// </summary>
    public static RouteGroupBuilder MapAdminGroup(this IEndpointRouteBuilder app) => app.MapGroup("").RequireAdminApiKey();

    /// <summary>The admin API's policy on a group.</summary>
    public static RouteGroupBuilder RequireAdminApiKey(this RouteGroupBuilder group) =>
        group.RequireAuthorization(NexusPolicies.AdminApiKey).WithoutSession();

    /// <summary>
    /// The gateway (/v1/request-connection, /v1/connections, /v1/token, /v1/refresh): every route mapped on the group
    /// requires a gateway API key (and never reads the session). The group has no prefix, so each route keeps its whole
    /// path where it is mapped (a search for "/v1/token" finds it); /v1/catalog stays public, /v1/admin and
    /// /v1/providers have the admin policy, and the Bridge authenticates in its own request delegate (BridgeEndpoints).
    /// </summary>
    public static RouteGroupBuilder MapGatewayGroup(this IEndpointRouteBuilder app) =>
        app.MapGroup("").RequireAuthorization(NexusPolicies.GatewayApiKey).WithoutSession();
}
