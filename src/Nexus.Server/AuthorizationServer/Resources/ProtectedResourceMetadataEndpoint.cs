using System.Text.Json.Nodes;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Resources;

/// <summary>
/// RFC 9728 protected resource metadata for Nexus's MCP server, so that an MCP client that only knows
/// <c>BASE_URL/mcp</c> finds the authorization server, the scopes and how to send the token. Served at the
/// path-suffixed well-known URI (RFC 9728 §3.1) and at the root form MCP clients fall back to.
/// </summary>
internal static class ProtectedResourceMetadataEndpoint
{
    public const string WellKnownPrefix = "/.well-known/oauth-protected-resource";

    /// <summary>
    /// RFC 9728 §3.1: the well-known segment goes between the host and the resource's path (/mcp). Nexus's routes are
    /// relative to BASE_URL, so when BASE_URL has a path (behind a proxy), the URL is BASE_URL + this path, which is
    /// where the proxy forwards it and what every challenge names in resource_metadata.
    /// </summary>
    public const string McpMetadataPath = WellKnownPrefix + NexusOptions.McpPath;

    /// <summary>The URL of the MCP server's metadata: the <c>resource_metadata</c> of its WWW-Authenticate challenges.</summary>
    public static string McpMetadataUrl(NexusOptions options) => options.Issuer + McpMetadataPath;

    public static void MapProtectedResourceMetadata(this IEndpointRouteBuilder app)
    {
        app.MapGet("/.well-known/oauth-protected-resource/mcp", Metadata).WithTags("OAuth").WithoutSession();
        app.MapGet("/.well-known/oauth-protected-resource", Metadata).WithTags("OAuth").WithoutSession();
    }

    private static Microsoft.AspNetCore.Http.HttpResults.ContentHttpResult Metadata(HttpResponse response, NexusOptions options)
    {
        var metadata = new JsonObject
        {
            // RFC 9728 §3.3: resource must be identical to the resource identifier the client used (BASE_URL/mcp).
            ["resource"] = options.McpResource,
            // RFC 9728 §2 and RFC 8414 §3.3: the issuer, character for character, so the client can fetch its metadata.
            ["authorization_servers"] = new JsonArray(options.Issuer),
            ["scopes_supported"] = new JsonArray(McpScopes.All.Select(s => (JsonNode)s).ToArray()),
            // RFC 6750 §2.1 only: no form body or query tokens.
            ["bearer_methods_supported"] = new JsonArray("header"),
            ["resource_name"] = "Nexus",
        };
        response.Headers.CacheControl = "public, max-age=300";
        return TypedResults.Text(metadata.ToJsonString(), "application/json");
    }
}

/// <summary>
/// Builds the WWW-Authenticate value of a protected resource's 401 and 403 answers (RFC 6750 §3, RFC 9728 §5.1), as
/// MCP clients expect them: <c>Bearer resource_metadata="…", scope="…"</c>, with <c>error="invalid_token"</c> when a
/// token was sent but is not acceptable, or <c>error="insufficient_scope"</c> (403) when it lacks a scope (step-up).
/// </summary>
internal static class ResourceChallenge
{
    public static string InvalidToken => OAuthErrorCatalog.InvalidToken.Error;
    public static string InsufficientScope => OAuthErrorCatalog.InsufficientScope.Error;

    /// <param name="resourceMetadataUrl">Where the resource's metadata is (for /mcp: <see cref="ProtectedResourceMetadataEndpoint.McpMetadataUrl"/>).</param>
    /// <param name="scopes">The scopes the request needs; for insufficient_scope, every scope needed, not only the missing ones.</param>
    /// <param name="error">Null (no token sent), <see cref="InvalidToken"/> or <see cref="InsufficientScope"/>.</param>
    public static string Header(string resourceMetadataUrl, IEnumerable<string>? scopes, string? error = null, string? description = null)
    {
        var parts = new List<string> { $"resource_metadata=\"{Quote(resourceMetadataUrl)}\"" };
        if (scopes is not null && string.Join(' ', scopes.Distinct(StringComparer.Ordinal)) is { Length: > 0 } scope)
        {
            parts.Add($"scope=\"{Quote(scope)}\"");
        }

        if (error is not null)
        {
            parts.Add($"error=\"{Quote(error)}\"");
            if (description is not null)
            {
                parts.Add($"error_description=\"{Quote(description)}\"");
            }
        }

        return "Bearer " + string.Join(", ", parts);
    }

    /// <summary>The challenge of /mcp: its metadata URL and, by default, every MCP scope.</summary>
    public static string ForMcp(NexusOptions options, string? error = null, string? description = null, IEnumerable<string>? scopes = null) =>
        Header(ProtectedResourceMetadataEndpoint.McpMetadataUrl(options), scopes ?? McpScopes.All, error, description);

    /// <summary>
    /// RFC 6750 §3: attribute values are quoted strings of printable ASCII without '"' and '\'. Anything else is
    /// replaced, so a description can never break the header.
    /// </summary>
    private static string Quote(string value) =>
        string.Create(value.Length, value, static (span, v) =>
        {
            for (var i = 0; i < v.Length; i++)
            {
                var c = v[i];
                span[i] = c is < ' ' or > '~' or '"' or '\\' ? '\'' : c;
            }
        });
}
