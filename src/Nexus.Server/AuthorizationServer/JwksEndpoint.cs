using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>The JWK Set (RFC 7517 §5) of every published signing key: active ones and those in their overlap window.</summary>
internal static class JwksEndpoint
{
    public const string Path = "/oauth2/jwks";

    public static void MapJwks(this IEndpointRouteBuilder app)
    {
        app.MapGet("/oauth2/jwks", Jwks).WithTags("OAuth").WithoutSession();
        app.MapGet("/.well-known/jwks.json", Jwks).WithTags("OAuth").WithoutSession();
    }

    // Short enough that a verifier sees a new key soon after rotation; verifiers refetch on unknown kid anyway. The
    // bytes are serialized once per key change, with an ETag, so a verifier's conditional GET costs a 304.
    private static Task Jwks(HttpContext context, SigningKeys keys) => keys.Jwks.WriteAsync(context, "public, max-age=300");
}
