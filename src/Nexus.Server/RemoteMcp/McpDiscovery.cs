using System.Text;
using System.Text.Json;
using Nexus.Server.Hosting;

namespace Nexus.Server.RemoteMcp;

/// <summary>An authorization server's metadata (RFC 8414 §2), reduced to what Nexus uses as an MCP client.</summary>
internal sealed record McpAuthorizationServer(
    string Issuer,
    string AuthorizationEndpoint,
    string TokenEndpoint,
    string? RegistrationEndpoint,
    string? RevocationEndpoint,
    string[]? TokenEndpointAuthMethods,
    string[]? ScopesSupported,
    bool ClientIdMetadataDocumentSupported,
    bool AuthorizationResponseIss,
    string? MetadataUrl);

/// <summary>What discovery learned about an MCP server.</summary>
internal sealed record McpDiscovered(string McpUrl, string Resource, string? ResourceMetadataUrl, McpAuthorizationServer Server, string[] Scopes, bool Legacy);

/// <summary>
/// MCP authorization (2025-11-25), Authorization Server Discovery, from the client's side: probe the server without a
/// token, read the 401's WWW-Authenticate, find the protected resource metadata (RFC 9728), check its resource, find
/// the authorization server's metadata (RFC 8414 / OpenID Connect Discovery) in the specification's order, check its
/// issuer and PKCE support, and choose the scopes. Any failure stops with <see cref="McpDiscoveryException"/> before
/// anything is registered or stored.
/// </summary>
internal sealed class McpDiscovery(McpMetadataFetcher fetcher, NexusOptions options)
{
    private const string ProtectedResourceWellKnown = "/.well-known/oauth-protected-resource";

    public async Task<McpDiscovered> DiscoverAsync(string mcpUrl, CancellationToken ct)
    {
        if (fetcher.UrlProblem(mcpUrl) is { } urlProblem)
        {
            throw new McpDiscoveryException($"mcp_url {urlProblem}");
        }

        var server = new Uri(mcpUrl);
        if (!string.IsNullOrEmpty(server.Query))
        {
            throw new McpDiscoveryException("mcp_url may not carry a query: it is the server's resource identifier (RFC 8707 §2).");
        }

        // Authorization Server Discovery, step 1: an unauthenticated request; a protected server answers 401 with
        // WWW-Authenticate (RFC 9728 §5.1) naming its resource_metadata and perhaps the scope it wants.
        var challenge = await ProbeAsync(mcpUrl, ct);
        string? challengeScope = null;
        string? metadataUrl = null;
        JsonElement? resourceMetadata = null;
        if (challenge is not null)
        {
            challengeScope = challenge.GetValueOrDefault("scope");
            if (challenge.GetValueOrDefault("resource_metadata") is { Length: > 0 } named)
            {
                metadataUrl = named;
                var fetched = await fetcher.GetJsonAsync(named, ct);
                if (fetched.Json is not { } json)
                {
                    throw new McpDiscoveryException($"The protected resource metadata at {named} (named by the server's WWW-Authenticate) answered HTTP {fetched.Status} without a JSON document.");
                }

                resourceMetadata = json;
            }
        }

        // Otherwise RFC 9728 §3.1: the well-known URI with the server's path inserted, then at the root (MCP authorization,
        // Protected Resource Metadata Discovery Requirements).
        if (resourceMetadata is null)
        {
            var origin = server.GetLeftPart(UriPartial.Authority);
            var path = server.AbsolutePath.TrimEnd('/');
            var candidates = path.Length > 0 ? new[] { origin + ProtectedResourceWellKnown + path, origin + ProtectedResourceWellKnown } : [origin + ProtectedResourceWellKnown];
            foreach (var candidate in candidates)
            {
                var fetched = await fetcher.GetJsonAsync(candidate, ct);
                if (fetched.Json is { } json)
                {
                    (metadataUrl, resourceMetadata) = (candidate, json);
                    break;
                }
            }
        }

        if (resourceMetadata is not { } prm)
        {
            if (!options.Mcp.AllowLegacyDiscovery)
            {
                throw new McpDiscoveryException($"{mcpUrl} publishes no protected resource metadata (RFC 9728): neither its WWW-Authenticate nor the well-known URIs led to any. "
                    + "Servers of MCP 2025-03-26 can be connected with Nexus__Mcp__AllowLegacyDiscovery=true.");
            }

            return await LegacyAsync(mcpUrl, challengeScope, ct);
        }

        // RFC 9728 §3.3 and MCP authorization (Security Considerations): the metadata's resource must name this server
        // (identical, or a same-origin prefix of its URL); otherwise Nexus stops before any authorization request, so a
        // token for one server is never requested on the word of another.
        var resource = Str(prm, "resource") ?? throw new McpDiscoveryException($"The protected resource metadata at {metadataUrl} has no resource.");
        if (!ResourceMatches(resource, server))
        {
            throw new McpDiscoveryException($"The protected resource metadata at {metadataUrl} is for the resource '{resource}', which is not {mcpUrl} or a prefix of it on the same origin; Nexus stopped before any authorization request.");
        }

        // RFC 9728 §2: authorization_servers; Nexus uses the first (MCP authorization: the client chooses).
        var issuer = Strings(prm, "authorization_servers")?.FirstOrDefault()
            ?? throw new McpDiscoveryException($"The protected resource metadata at {metadataUrl} names no authorization_servers.");
        var authorizationServer = await AuthorizationServerAsync(issuer, ct);

        // MCP authorization, Scope Selection Strategy: the challenge's scope, else every scope of scopes_supported, else none.
        var scopes = challengeScope is { Length: > 0 }
            ? challengeScope.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            : Strings(prm, "scopes_supported") ?? [];
        return new McpDiscovered(mcpUrl, resource, metadataUrl, authorizationServer, WithOfflineAccess(scopes, authorizationServer), false);
    }

    /// <summary>
    /// offline_access (OIDC Core §11) only when the authorization server lists it: then it is asked for, so that the
    /// connection gets a refresh token; otherwise it is never sent (a server that does not know it may refuse the request).
    /// </summary>
    public static string[] WithOfflineAccess(IEnumerable<string> scopes, McpAuthorizationServer server) => WithOfflineAccess(scopes, server.ScopesSupported);

    /// <param name="authorizationServerScopes">The authorization server's scopes_supported, as discovered (stored with the provider).</param>
    public static string[] WithOfflineAccess(IEnumerable<string> scopes, IReadOnlyCollection<string>? authorizationServerScopes)
    {
        var listed = authorizationServerScopes?.Contains("offline_access", StringComparer.Ordinal) == true;
        var chosen = scopes.Where(s => s != "offline_access").Distinct(StringComparer.Ordinal).ToList();
        if (listed)
        {
            chosen.Add("offline_access");
        }

        return [.. chosen];
    }

    /// <summary>Sends an MCP initialize without a token and returns the Bearer challenge of a 401 (null for any other answer).</summary>
    private async Task<Dictionary<string, string>?> ProbeAsync(string mcpUrl, CancellationToken ct)
    {
        var initialize = JsonSerializer.Serialize(new
        {
            jsonrpc = "2.0",
            id = 1,
            method = "initialize",
            @params = new { protocolVersion = "2025-11-25", capabilities = new { }, clientInfo = new { name = "nexus", version = "1.0" } },
        });
        var answer = await fetcher.SendAsync(HttpMethod.Post, mcpUrl, new StringContent(initialize, Encoding.UTF8, "application/json"),
            request => request.Headers.Accept.ParseAdd("text/event-stream"), ct);
        return answer.Status == StatusCodes.Status401Unauthorized ? WwwAuthenticate.Bearer(answer.Challenges) ?? [] : null;
    }

    /// <summary>The resource is the server's URL, or a prefix of it (at a path segment boundary) on the same origin.</summary>
    public static bool ResourceMatches(string resource, Uri server)
    {
        if (!Uri.TryCreate(resource, UriKind.Absolute, out var r) || !McpMetadataFetcher.SameOrigin(r, server) || !string.IsNullOrEmpty(r.Query) || !string.IsNullOrEmpty(r.Fragment))
        {
            return false;
        }

        var resourcePath = r.AbsolutePath.TrimEnd('/');
        var serverPath = server.AbsolutePath.TrimEnd('/');
        return serverPath == resourcePath || serverPath.StartsWith(resourcePath + "/", StringComparison.Ordinal);
    }

    /// <summary>
    /// MCP authorization, Authorization Server Metadata Discovery: for an issuer with a path, RFC 8414 §3.1 path
    /// insertion, OpenID Connect Discovery path insertion, then OpenID Connect path appending; without a path,
    /// RFC 8414 then OpenID Connect. The first document found decides.
    /// </summary>
    private async Task<McpAuthorizationServer> AuthorizationServerAsync(string issuer, CancellationToken ct)
    {
        if (fetcher.UrlProblem(issuer) is { } problem || !Uri.TryCreate(issuer, UriKind.Absolute, out var issuerUri) || !string.IsNullOrEmpty(issuerUri.Query) || !string.IsNullOrEmpty(issuerUri.Fragment))
        {
            throw new McpDiscoveryException($"The authorization server '{issuer}' is not usable: {fetcher.UrlProblem(issuer) ?? "an issuer has no query or fragment (RFC 8414 §2)."}");
        }

        var origin = issuerUri.GetLeftPart(UriPartial.Authority);
        var path = issuerUri.AbsolutePath.TrimEnd('/');
        var candidates = path.Length > 0
            ? new[] { $"{origin}/.well-known/oauth-authorization-server{path}", $"{origin}/.well-known/openid-configuration{path}", $"{origin}{path}/.well-known/openid-configuration" }
            : [$"{origin}/.well-known/oauth-authorization-server", $"{origin}/.well-known/openid-configuration"];
        foreach (var candidate in candidates)
        {
            var fetched = await fetcher.GetJsonAsync(candidate, ct);
            if (fetched.Json is { } json)
            {
                return Parse(json, issuer, candidate);
            }
        }

        throw new McpDiscoveryException($"No authorization server metadata was found for {issuer} (tried {string.Join(", ", candidates)}).");
    }

    private McpAuthorizationServer Parse(JsonElement json, string issuer, string url)
    {
        // RFC 8414 §3.3 (and OpenID Connect Discovery §4.3): the issuer in the metadata MUST be identical to the issuer
        // the metadata was looked up for; otherwise another server's endpoints could be substituted (mix-up).
        if (Str(json, "issuer") is not { } stated || !string.Equals(stated, issuer, StringComparison.Ordinal))
        {
            throw new McpDiscoveryException($"The authorization server metadata at {url} states the issuer '{Str(json, "issuer")}', not '{issuer}' (RFC 8414 §3.3); Nexus stopped.");
        }

        // MCP authorization, Authorization Code Protection: PKCE with S256 is required, and a server whose metadata does
        // not list code_challenge_methods_supported with S256 must be refused.
        if (Strings(json, "code_challenge_methods_supported")?.Contains("S256", StringComparer.Ordinal) != true)
        {
            throw new McpDiscoveryException($"The authorization server {issuer} does not list S256 in code_challenge_methods_supported; MCP requires PKCE with S256.");
        }

        var authorization = Str(json, "authorization_endpoint");
        var token = Str(json, "token_endpoint");
        if (authorization is null || token is null)
        {
            throw new McpDiscoveryException($"The authorization server metadata at {url} has no authorization_endpoint or token_endpoint.");
        }

        foreach (var (name, endpoint) in new[] { ("authorization_endpoint", authorization), ("token_endpoint", token), ("registration_endpoint", Str(json, "registration_endpoint")), ("revocation_endpoint", Str(json, "revocation_endpoint")) })
        {
            if (endpoint is not null && fetcher.UrlProblem(endpoint) is { } problem)
            {
                throw new McpDiscoveryException($"The authorization server's {name} {problem}");
            }
        }

        return new McpAuthorizationServer(issuer, authorization, token, Str(json, "registration_endpoint"), Str(json, "revocation_endpoint"),
            Strings(json, "token_endpoint_auth_methods_supported"), Strings(json, "scopes_supported"),
            json.TryGetProperty("client_id_metadata_document_supported", out var cimd) && cimd.ValueKind == JsonValueKind.True,
            // RFC 9207 §3: when true, every authorization response carries iss, which the callback then requires.
            json.TryGetProperty("authorization_response_iss_parameter_supported", out var iss) && iss.ValueKind == JsonValueKind.True,
            url);
    }

    /// <summary>
    /// MCP 2025-03-26 (Authorization, 2.3 and 2.3.3), only under Nexus:Mcp:AllowLegacyDiscovery: the authorization
    /// server is the MCP server's origin; its RFC 8414 metadata is read there, else /authorize, /token and /register at
    /// that origin are assumed.
    /// </summary>
    private async Task<McpDiscovered> LegacyAsync(string mcpUrl, string? challengeScope, CancellationToken ct)
    {
        var origin = new Uri(mcpUrl).GetLeftPart(UriPartial.Authority);
        var fetched = await fetcher.GetJsonAsync(origin + "/.well-known/oauth-authorization-server", ct);
        McpAuthorizationServer server;
        if (fetched.Json is { } json)
        {
            // The 2025-03-26 metadata lives at the MCP server's origin (its authorization base URL); the issuer it states
            // may carry a path there (e.g. {origin}/oauth) or a trailing slash. Read from that origin itself, a stated
            // issuer of the same origin is the server's own word; one of another origin is refused (RFC 8414 §3.3).
            var stated = Str(json, "issuer");
            var sameOrigin = stated is not null && Uri.TryCreate(stated, UriKind.Absolute, out var statedUri) && McpMetadataFetcher.SameOrigin(statedUri, new Uri(origin));
            server = Parse(json, sameOrigin ? stated! : origin, origin + "/.well-known/oauth-authorization-server");
        }
        else
        {
            server = new McpAuthorizationServer(origin, origin + "/authorize", origin + "/token", origin + "/register", null, null, null, false, false, null);
        }

        var scopes = challengeScope?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        return new McpDiscovered(mcpUrl, mcpUrl, null, server, WithOfflineAccess(scopes, server), true);
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s ? s : null;

    private static string[]? Strings(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
            ? v.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!).ToArray()
            : null;
}
