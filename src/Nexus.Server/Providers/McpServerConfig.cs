namespace Nexus.Server.Providers;

/// <summary>How Nexus identifies itself to an MCP server's authorization server.</summary>
internal static class McpRegistrationKinds
{
    /// <summary>A client id (and secret) the administrator registered at the authorization server and gave Nexus.</summary>
    public const string PreRegistered = "pre_registered";

    /// <summary>Nexus's client ID metadata document URL is its client_id (draft-ietf-oauth-client-id-metadata-document).</summary>
    public const string MetadataDocument = "metadata_document";

    /// <summary>Dynamic client registration (RFC 7591), stored per issuer and reused.</summary>
    public const string Dynamic = "dynamic";
}

/// <summary>
/// What discovery found for an MCP server registered by URL, stored with the provider (secret-free): the server,
/// its protected resource metadata, its authorization server and how Nexus registered there.
/// </summary>
internal sealed record McpServerConfig
{
    /// <summary>The MCP endpoint the administrator gave (Streamable HTTP); the Bridge forwards to it.</summary>
    public string Url { get; init; } = "";

    /// <summary>The resource of the protected resource metadata (RFC 9728 §3.3), or the MCP URL under legacy discovery.</summary>
    public string Resource { get; init; } = "";

    /// <summary>Where the protected resource metadata was read; null under legacy (2025-03-26) discovery.</summary>
    public string? ResourceMetadataUrl { get; init; }

    /// <summary>The authorization server metadata document that was used.</summary>
    public string? AuthorizationServerMetadataUrl { get; init; }

    public string Registration { get; init; } = McpRegistrationKinds.Dynamic;

    /// <summary>Whether the resource parameter (RFC 8707) is sent; the admin may turn it off for servers that refuse it.</summary>
    public bool SendResource { get; init; } = true;

    /// <summary>The scopes the authorization server lists (RFC 8414 scopes_supported), when it lists any.</summary>
    public string[]? AuthorizationServerScopes { get; init; }

    /// <summary>The authorization server's registration endpoint (RFC 7591), for registering anew after invalid_client.</summary>
    public string? RegistrationEndpoint { get; init; }

    /// <summary>The authorization server's token_endpoint_auth_methods_supported, when it lists them.</summary>
    public string[]? TokenEndpointAuthMethods { get; init; }

    /// <summary>True when discovery fell back to the 2025-03-26 rules (Nexus:Mcp:AllowLegacyDiscovery).</summary>
    public bool Legacy { get; init; }

    /// <summary>
    /// "client_credentials" for a machine-to-machine server (SEP-1046): connections get their tokens without a person
    /// (RFC 6749 §4.4) and ask for a new one instead of refreshing. Null: the authorization code flow with a person.
    /// </summary>
    public string? GrantType { get; init; }

    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsClientCredentials => GrantType == McpGrantTypes.ClientCredentials;
}

internal static class McpGrantTypes
{
    public const string AuthorizationCode = "authorization_code";
    public const string ClientCredentials = "client_credentials";
}
