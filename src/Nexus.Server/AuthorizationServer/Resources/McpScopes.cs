namespace Nexus.Server.AuthorizationServer.Resources;

/// <summary>
/// The scopes of Nexus's MCP server (<see cref="Hosting.NexusOptions.McpResource"/>): the one list the protected
/// resource metadata, dynamic client registration, the consent page and the /mcp tools all use. Small on purpose:
/// one to look, one to change what is connected, one to act through a connection.
/// </summary>
internal static class McpScopes
{
    /// <summary>See the services Nexus offers and the person's connections and their status (list_services, list_connections, connection_status).</summary>
    public const string Connections = "nexus:connections";

    /// <summary>Ask the person to connect a service, and disconnect one (connect_service, disconnect_service).</summary>
    public const string Connect = "nexus:connect";

    /// <summary>Call a connected service's API through the Bridge (call_api); credentials never leave Nexus.</summary>
    public const string Call = "nexus:call";

    /// <summary>Every MCP scope, in the order they are advertised.</summary>
    public static readonly IReadOnlyList<string> All = [Connections, Connect, Call];

    /// <summary>The scopes as one space-separated string (the WWW-Authenticate <c>scope</c> of a first challenge).</summary>
    public static readonly string AllJoined = string.Join(' ', All);

    /// <summary>Plain words for the consent page.</summary>
    public static readonly IReadOnlyDictionary<string, string> Descriptions = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [Connections] = "See which services you can connect and which you have connected",
        [Connect] = "Ask you to connect a service, and disconnect services",
        [Call] = "Use your connected services on your behalf (Nexus keeps the credentials)",
    };
}
