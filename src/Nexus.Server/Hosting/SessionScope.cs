using Microsoft.AspNetCore.Authorization;

namespace Nexus.Server.Hosting;

/// <summary>
/// Which requests pay for the browser session. Pages read the session cookie (authentication, the per-request
/// account check of <c>SessionValidator</c>, authorization); API and protocol endpoints authenticate with a key, a
/// client secret or a bearer token and never look at it. Those are marked <see cref="WithoutSession{TBuilder}"/>,
/// and the authentication and authorization middleware skip them. Everything not marked keeps the session, so a
/// new page cannot lose it by accident.
/// </summary>
internal static class SessionScope
{
    private sealed class NoSession
    {
        public static readonly NoSession Instance = new();
    }

    /// <summary>Marks endpoints that never read the session cookie (nor <see cref="HttpContext.User"/> from it).</summary>
    public static TBuilder WithoutSession<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(NoSession.Instance);

    public static bool NeedsSession(HttpContext context) => context.GetEndpoint()?.Metadata.GetMetadata<NoSession>() is null;

    /// <summary>The session's requests, and the others whose route requires a policy (the API keys').</summary>
    private static bool NeedsAuthorization(HttpContext context) =>
        context.GetEndpoint()?.Metadata is not { } metadata || metadata.GetMetadata<NoSession>() is null || metadata.GetMetadata<IAuthorizeData>() is not null;

    /// <summary>
    /// Authentication (the session cookie) for the requests that need the session, and authorization for them and for
    /// the routes that require a policy, after routing chose the endpoint. An endpoint without the session authenticates
    /// only with the scheme of its policy (the API keys' <c>ApiKey</c>, see <see cref="NexusPolicies"/>), which the
    /// authorization middleware runs; one without the session and without a policy (the short-circuits of the hot
    /// paths, GET /v1/token and the Bridge; the protocol endpoints) pays for neither middleware.
    /// </summary>
    public static WebApplication UseSessionAuthentication(this WebApplication app)
    {
        app.UseWhen(NeedsSession, branch => branch.UseAuthentication());
        app.UseWhen(NeedsAuthorization, branch => branch.UseAuthorization());
        // WebApplication puts both middlewares in front of the whole pipeline unless it sees they were added; added in
        // a branch, they are recorded only in the branch's copy of these properties.
        ((IApplicationBuilder)app).Properties["__AuthenticationMiddlewareSet"] = true;
        ((IApplicationBuilder)app).Properties["__AuthorizationMiddlewareSet"] = true;
        return app;
    }
}
