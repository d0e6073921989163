using Nexus.Server.AuthorizationServer.Signing;

namespace Nexus.Server.AuthorizationServer;

/// <summary>The JWK Set (RFC 7517 §5) of every published signing key: active ones and those in their overlap window.</summary>
internal static class JwksEndpoint
{
    public const string Path = "/oauth2/jwks";

    public static void MapJwks(this IEndpointRouteBuilder app)
    {
        app.MapGet(Path, Jwks).WithTags("OAuth");
        app.MapGet("/.well-known/jwks.json", Jwks).WithTags("OAuth");
    }

    private static Microsoft.AspNetCore.Http.HttpResults.ContentHttpResult Jwks(HttpResponse response, SigningKeys keys)
    {
        // Short enough that a verifier sees a new key soon after rotation; verifiers refetch on unknown kid anyway.
        response.Headers.CacheControl = "public, max-age=300";
        return TypedResults.Text(keys.JwksJson, "application/json");
    }
}
