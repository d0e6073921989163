using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
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

    /// <summary>
    /// The scope each tool needs; a tools/call without it is refused with 403 insufficient_scope (<see cref="McpGate"/>).
    /// Names match without regard to case, so that no spelling of a tool's name escapes its scope.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> ToolScopes = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
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

    /// <summary>The first of <paramref name="tools"/> whose scope <paramref name="granted"/> lacks, and that scope; null when none.</summary>
    public static (string Tool, string Scope)? MissingScope(IEnumerable<string> tools, IReadOnlyCollection<string> granted)
    {
        foreach (var tool in tools)
        {
            if (ToolScopes.TryGetValue(tool, out var needed) && !granted.Contains(needed, StringComparer.Ordinal))
            {
                return (tool, needed);
            }
        }

        return null;
    }

    /// <summary>
    /// The scope check again, inside the SDK's pipeline, on the tool name as the SDK itself read it: whatever JSON shape
    /// got past <see cref="McpGate"/>'s reading of the body (another letter case, a duplicate key, a batch), the tool
    /// that runs is the tool whose scope was checked. The gate answers the usual case with HTTP 403 and a
    /// WWW-Authenticate challenge (MCP authorization, scope challenge handling); this answers the rest with a JSON-RPC error.
    /// </summary>
    public static McpRequestHandler<CallToolRequestParams, CallToolResult> RequireToolScope(McpRequestHandler<CallToolRequestParams, CallToolResult> next) =>
        (request, ct) =>
        {
            var granted = (request.User?.FindFirst(McpGate.ScopeClaim)?.Value ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (request.Params?.Name is { } tool && MissingScope([tool], granted) is var (_, needed))
            {
                throw new McpProtocolException($"The {tool} tool needs the {needed} scope.", McpErrorCode.InvalidRequest);
            }

            return next(request, ct);
        };

    /// <summary>The resource identifier (RFC 8707 §2) and the <c>aud</c> of every token /mcp accepts.</summary>
    public static string Url(NexusOptions options) => options.McpResource;

    public static string MetadataUrl(NexusOptions options) => ProtectedResourceMetadataEndpoint.McpMetadataUrl(options);
}
