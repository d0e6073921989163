using ModelContextProtocol;
using Nexus.Server.Hosting;

namespace Nexus.Server.Mcp;

/// <summary>
/// The official MCP SDK (2.4.0) logs every exception a tool throws as a failure: "\"connect_service\" threw an unhandled
/// exception." at Error and "request handler failed" at Warning, each with the stack. connect_service and add_mcp_server
/// throw <see cref="UrlElicitationRequiredException"/> on purpose: it is how a tool answers URLElicitationRequiredError
/// (-32042, MCP 2025-11-25 elicitation, URL mode) so that the client shows the person the connect link. Logged as a
/// failure, each "please connect GitHub" read as an incident in the operator's log and alerts. The SDK's entries that
/// carry it are written at Debug, without the stack, saying what happened; a tool that really failed keeps its Error.
/// </summary>
internal sealed class McpElicitationLogLevel : ILogReclassification
{
    public const string Note = "It answered URLElicitationRequiredError (-32042): the client is asked to show the person a link. Not a failure.";

    public string CategoryPrefix => "ModelContextProtocol";

    public (LogLevel Level, string Note)? Reclassify(LogLevel level, Exception? exception) =>
        exception is UrlElicitationRequiredException && level >= LogLevel.Warning ? (LogLevel.Debug, Note) : null;
}
