using Nexus.Server.Hosting;

namespace Nexus.Server.Mcp;

/// <summary>
/// Nexus as an MCP protected resource: where it is, the audience its tokens carry, and the scopes its tools need.
/// The one place the MCP server and the authorization server agree on (RFC 8707 resource, RFC 9728 metadata).
/// </summary>
internal static class McpResource
{
    public const string Path = "/mcp";

    /// <summary>RFC 9728 §3.1: the metadata URL is the resource's path under /.well-known/oauth-protected-resource.</summary>
    public const string MetadataPath = "/.well-known/oauth-protected-resource" + Path;

    /// <summary>See the person's services and connections.</summary>
    public const string ReadScope = "mcp:connections:read";

    /// <summary>Connect and disconnect services (the person still approves each at the service).</summary>
    public const string WriteScope = "mcp:connections:write";

    /// <summary>Call a connected service's API through the Bridge.</summary>
    public const string ApiScope = "mcp:api";

    public static readonly IReadOnlyList<string> Scopes = [ReadScope, WriteScope, ApiScope];

    /// <summary>The scope each tool needs; a tools/call without it is refused with 403 insufficient_scope.</summary>
    public static readonly IReadOnlyDictionary<string, string> ToolScopes = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [NexusTools.ListServices] = ReadScope,
        [NexusTools.ListConnections] = ReadScope,
        [NexusTools.ConnectionStatus] = ReadScope,
        [NexusTools.ConnectService] = WriteScope,
        [NexusTools.DisconnectService] = WriteScope,
        [NexusTools.CallApi] = ApiScope,
    };

    /// <summary>The resource identifier (RFC 8707 §2) and the <c>aud</c> of every token /mcp accepts.</summary>
    public static string Url(NexusOptions options) => options.Issuer + Path;

    public static string MetadataUrl(NexusOptions options) => options.Issuer + MetadataPath;
}
