using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>A temporary outage (of the database) on the OAuth endpoints, answered in RFC 6749's format rather than as a problem document.</summary>
internal sealed class OAuthUnavailable : IUnavailableResponder
{
    /// <summary>Paths that answer in RFC 6749's JSON error format rather than problem details.</summary>
    private static readonly string[] OAuthPrefixes = ["/oauth2/", "/api/oauth/", "/api/v1/oauth/", "/nexus/oauth2/", "/api/v1/me"];

    public bool Covers(PathString path) => OAuthPrefixes.Any(p => path.StartsWithSegments(p.TrimEnd('/'), StringComparison.OrdinalIgnoreCase));

    // RFC 6749 §4.1.2.1 (and §5.2's JSON form): temporarily_unavailable.
    public Task RespondAsync(HttpContext context, string description) =>
        OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.TemporarilyUnavailable, description);
}
