using System.Text.Json.Nodes;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// RFC 8414 authorization server metadata, also served at the OpenID Connect discovery path (RFC 8414 §5).
/// It lists only what this server implements today, so client libraries never try a feature that is not there.
/// </summary>
internal static class DiscoveryEndpoint
{
    public static void MapDiscovery(this IEndpointRouteBuilder app)
    {
        app.MapGet("/.well-known/oauth-authorization-server", Metadata).WithTags("OAuth");
        app.MapGet("/.well-known/openid-configuration", Metadata).WithTags("OAuth");
    }

    private static Microsoft.AspNetCore.Http.HttpResults.ContentHttpResult Metadata(HttpResponse response, NexusOptions options)
    {
        var issuer = options.Issuer;
        var metadata = new JsonObject
        {
            // RFC 8414 §3.3: issuer MUST be identical to the URL the metadata was derived from.
            ["issuer"] = issuer,
            ["token_endpoint"] = issuer + TokenEndpoint.Path,
            ["jwks_uri"] = issuer + JwksEndpoint.Path,
            ["grant_types_supported"] = new JsonArray("client_credentials"),
            ["response_types_supported"] = new JsonArray(),
            ["token_endpoint_auth_methods_supported"] = new JsonArray("client_secret_basic", "client_secret_post"),
        };
        response.Headers.CacheControl = "public, max-age=300";
        return TypedResults.Text(metadata.ToJsonString(), "application/json");
    }
}
