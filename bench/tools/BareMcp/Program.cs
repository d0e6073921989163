// Usage: dotnet BareMcp.dll --urls http://127.0.0.1:PORT
// GET  /healthz  {"status":"ok"}
// POST /mcp      the official SDK's Streamable HTTP endpoint, stateless as Nexus's, with one tool, echo, that returns
//                its argument: what any MCP server built on the SDK pays per request before its tools do any work.
using System.ComponentModel;
using ModelContextProtocol.AspNetCore;
using ModelContextProtocol.Server;

var builder = WebApplication.CreateBuilder(args);
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
builder.Services.AddMcpServer()
    .WithHttpTransport(o => o.SessionMode = HttpServerSessionMode.Stateless)
    .WithTools<EchoTools>();
var app = builder.Build();
app.MapGet("/healthz", () => TypedResults.Ok(new { status = "ok" }));
app.MapMcp("/mcp");
app.Run();

/// <summary>The one tool: no I/O, no allocation beyond its answer.</summary>
[McpServerToolType]
internal sealed class EchoTools
{
    [McpServerTool(Name = "echo"), Description("Returns its text.")]
    public static string Echo(string text) => text;
}
