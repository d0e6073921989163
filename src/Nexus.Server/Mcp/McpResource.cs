using Nexus.Server.AuthorizationServer.Resources;
using Nexus.Server.Hosting;

namespace Nexus.Server.Mcp;

/// <summary>
/// Nexus as an MCP protected resource: where it is, the audience its tokens carry, and the scopes its tools need.
/// The one place the MCP server and the authorization server agree on (RFC 8707 resource, RFC 9728 metadata).
/// </summary>
internal static class McpResource
{
    public const string Path = NexusOptions.McpPath;

    /// <summary>See the person's services and connections.</summary>
    public const string ReadScope = McpScopes.Connections;

    /// <summary>Connect and disconnect services (the person still approves each at the service).</summary>
    public const string WriteScope = McpScopes.Connect;

    /// <summary>Call a connected service's API through the Bridge.</summary>
    public const string ApiScope = McpScopes.Call;

    public static IReadOnlyList<string> Scopes => McpScopes.All;

    /// <summary>The scope each tool needs; a tools/call without it is refused with 403 insufficient_scope.</summary>
    public static readonly IReadOnlyDictionary<string, string> ToolScopes = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [NexusTools.ListServices] = ReadScope,
        [NexusTools.ListConnections] = ReadScope,
        [NexusTools.ConnectionStatus] = ReadScope,
        [NexusTools.ConnectService] = WriteScope,
        [NexusTools.DisconnectService] = WriteScope,
        [NexusTools.CallApi] = ApiScope,
        [NexusTools.ListRemoteTools] = ApiScope,
        [NexusTools.CallRemoteTool] = ApiScope,
        [NexusTools.AddMcpServer] = WriteScope,
    };

    /// <summary>The resource identifier (RFC 8707 §2) and the <c>aud</c> of every token /mcp accepts.</summary>
    public static string Url(NexusOptions options) => options.McpResource;

    public static string MetadataUrl(NexusOptions options) => ProtectedResourceMetadataEndpoint.McpMetadataUrl(options);
}
