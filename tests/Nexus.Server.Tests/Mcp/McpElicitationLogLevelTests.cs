using Microsoft.Extensions.Logging;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using Nexus.Server.Hosting;
using Nexus.Server.Mcp;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Mcp;

/// <summary>
/// What the MCP SDK logs of a tool's URL elicitation (-32042), through the server's logger factory with
/// <see cref="McpElicitationLogLevel"/>; the whole path, with the official client, is in <see cref="McpServerTests"/>.
/// </summary>
public sealed class McpElicitationLogLevelTests
{
    private static readonly UrlElicitationRequiredException Elicitation = new("Connect GitHub to Nexus.",
        [new ElicitRequestParams { Mode = "url", ElicitationId = "e1", Url = "https://nexus.example/mcp/connect?ticket=t&state=SECRETSTATE", Message = "Open this link" }]);

    private static RedactingLoggerFactory Factory(CapturedLogs logs) =>
        new(LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Debug).AddProvider(logs)), reclassifications: [new McpElicitationLogLevel()]);

    [Fact]
    public void TheSdksFailureEntriesForAUrlElicitationAreSaidAtDebugWithoutTheStack()
    {
        var logs = new CapturedLogs();
        using var factory = Factory(logs);
        var sdk = factory.CreateLogger<McpServer>();

        // The SDK's (2.4.0) two entries for it: McpServerImpl's ToolCallError and McpSessionHandler's LogRequestHandlerException.
        sdk.LogError(Elicitation, "\"{ToolName}\" threw an unhandled exception.", "connect_service");
        sdk.LogWarning(Elicitation, "{EndpointName} method '{Method}' request handler failed in {ElapsedMilliseconds}ms.", "Server (nexus)", "tools/call", 3.5);
        // Rewritten entries are still redacted, as every entry is (a made-up one carrying a code).
        sdk.LogError(Elicitation, "Redirected to {Destination}.", "https://x/cb?code=SECRETCODE");
        var said = logs.Lines.ToList();
        Assert.Equal(3, said.Count);
        Assert.All(said, l => Assert.StartsWith("Debug ModelContextProtocol.Server.McpServer: ", l, StringComparison.Ordinal));
        Assert.All(said, l => Assert.Contains(McpElicitationLogLevel.Note, l, StringComparison.Ordinal));
        Assert.All(said, l => Assert.DoesNotContain(nameof(UrlElicitationRequiredException), l, StringComparison.Ordinal)); // no exception, no stack
        Assert.Contains("\"connect_service\" threw an unhandled exception.", said[0], StringComparison.Ordinal);
        Assert.Contains("ToolName=connect_service", said[0], StringComparison.Ordinal);
        // A structured sink (OTLP) takes the body from the template: the note is there too.
        Assert.Contains("{OriginalFormat}=\"{ToolName}\" threw an unhandled exception. " + McpElicitationLogLevel.Note, said[0], StringComparison.Ordinal);
        Assert.Contains("Server (nexus) method 'tools/call' request handler failed in 3.5ms.", said[1], StringComparison.Ordinal);
        Assert.Contains("Redirected to https://x/cb?code=[redacted]", said[2], StringComparison.Ordinal);
        Assert.DoesNotContain("SECRETCODE", logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public void AToolThatReallyFailedKeepsItsErrorAndOtherCategoriesAreNotTouched()
    {
        var logs = new CapturedLogs();
        using var factory = Factory(logs);
        factory.CreateLogger<McpServer>().LogError(new InvalidOperationException("boom"), "\"{ToolName}\" threw an unhandled exception.", "call_api");
        factory.CreateLogger("Nexus.Server.Mcp.NexusTools").LogError(Elicitation, "not the SDK's");
        Assert.Collection(logs.Lines,
            l => Assert.StartsWith("Error ModelContextProtocol.Server.McpServer: \"call_api\" threw an unhandled exception. [ToolName=call_api", l, StringComparison.Ordinal),
            l => Assert.StartsWith("Error Nexus.Server.Mcp.NexusTools: not the SDK's", l, StringComparison.Ordinal));
        Assert.Contains("InvalidOperationException: boom", logs.All, StringComparison.Ordinal);
        Assert.Contains(nameof(UrlElicitationRequiredException), logs.All, StringComparison.Ordinal);
    }
}
