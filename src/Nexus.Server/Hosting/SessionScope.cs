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

    /// <summary>Authentication and authorization for the requests that need the session, after routing chose the endpoint.</summary>
    public static WebApplication UseSessionAuthentication(this WebApplication app)
    {
        app.UseWhen(NeedsSession, branch => branch.UseAuthentication().UseAuthorization());
        // WebApplication puts both middlewares in front of the whole pipeline unless it sees they were added; added in
        // a branch, they are recorded only in the branch's copy of these properties.
        ((IApplicationBuilder)app).Properties["__AuthenticationMiddlewareSet"] = true;
        ((IApplicationBuilder)app).Properties["__AuthorizationMiddlewareSet"] = true;
        return app;
    }
}
