using System.Text.Json.Nodes;
using Nexus.Server.Hosting;

namespace Nexus.Server.RemoteMcp;

/// <summary>
/// GET /mcp-client-metadata.json: Nexus's client ID metadata document (draft-ietf-oauth-client-id-metadata-document
/// §4), the client_id Nexus presents to authorization servers that support such documents. Public, like any
/// client's metadata: it names the callback and says Nexus is a public client using PKCE.
/// </summary>
internal static class ClientMetadataDocumentEndpoint
{
    public const string Path = "/mcp-client-metadata.json";

    public static void MapClientMetadataDocument(this IEndpointRouteBuilder app) =>
        app.MapGet("/mcp-client-metadata.json", (HttpResponse response, McpClientRegistrar registrar, NexusOptions options) =>
        {
            var document = new JsonObject
            {
                // Draft §4.1: client_id MUST equal the URL of the document.
                ["client_id"] = registrar.MetadataDocumentUrl,
                ["client_name"] = "Nexus",
                ["client_uri"] = options.Issuer,
                ["redirect_uris"] = new JsonArray(registrar.RedirectUri),
                ["grant_types"] = new JsonArray("authorization_code", "refresh_token"),
                ["response_types"] = new JsonArray("code"),
                // Draft §4.1: a document cannot carry a secret; Nexus authenticates by PKCE alone with these servers.
                ["token_endpoint_auth_method"] = ClientMetadataMethods.None,
            };
            response.Headers.CacheControl = "public, max-age=3600";
            return TypedResults.Text(document.ToJsonString(), "application/json");
        }).WithTags("MCP client");
}
