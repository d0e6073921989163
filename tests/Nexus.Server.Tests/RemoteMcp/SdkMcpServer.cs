using System.Collections.Concurrent;
using System.ComponentModel;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.AspNetCore;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.RemoteMcp;

/// <summary>
/// A remote MCP server built with the official C# SDK, in one of two shapes. By default a 2025-11-25 server (stateful
/// Streamable HTTP, events kept in a store for resumption) whose <c>slow_echo</c> tool ends the POST's event stream
/// before it answers (SSE polling: the server sent an event id, so it may close the stream and the client asks again
/// with GET and Last-Event-ID after the stream's retry interval). With <c>statelessOnly</c>, a server of the 2026-07-28
/// revision only (McpServerOptions.ProtocolVersion: it refuses the initialize handshake), whose <c>echo</c> answers at
/// once, and whose <c>query</c> mirrors two arguments into headers (x-mcp-header), which the SDK checks against the
/// body. Each request is recorded with its headers and status.
/// </summary>
public sealed class SdkMcpServer : IAsyncDisposable
{
    private readonly WebApplication app;

    private SdkMcpServer(WebApplication app, string baseUrl)
    {
        this.app = app;
        BaseUrl = baseUrl;
    }

    public string BaseUrl { get; }

    /// <summary>The retry interval the tool's stream tells the client to wait before it asks again.</summary>
    public TimeSpan Retry { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>One request as the server saw it (absent headers empty; Params: its Mcp-Param-* headers), and when its answer ended.</summary>
    public sealed record Seen(string Method, string LastEventId, string Version, string McpMethod, string McpName, int Status, DateTimeOffset Started, DateTimeOffset Ended)
    {
        public IReadOnlyDictionary<string, string> Params { get; init; } = new Dictionary<string, string>();
    }

    public ConcurrentQueue<Seen> Requests { get; } = new();

    /// <summary>Pulsed when a request is recorded (once its answer has ended).</summary>
    private readonly ChangeSignal recorded = new();

    /// <summary>
    /// Waits until the requests recorded so far satisfy <paramref name="condition"/>: a request is recorded when the
    /// server has finished answering it, which may be after Nexus took the answer it needed from the stream.
    /// </summary>
    public async Task<IReadOnlyList<Seen>> RecordedAsync(Func<IReadOnlyCollection<Seen>, bool> condition, string what)
    {
        await recorded.WaitUntilAsync(() => condition(Requests), what, state: () => string.Join(", ", Requests.Select(r => $"{r.Method} {r.McpMethod} {r.Status}")));
        return [.. Requests];
    }

    /// <summary>Waits until <paramref name="count"/> requests are recorded.</summary>
    public Task<IReadOnlyList<Seen>> RecordedAsync(int count) => RecordedAsync(r => r.Count >= count, $"{count} requests recorded");

    /// <summary>Set when the tool has ended its stream; the POST that ends after it is the tool call's.</summary>
    private volatile bool polling;

    /// <summary>Completed when the tool call's POST has ended: only then does the tool answer (else the answer could still go down that stream).</summary>
    private readonly TaskCompletionSource callEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static async Task<SdkMcpServer> StartAsync(bool statelessOnly = false)
    {
        var (builder, baseUrl) = LoopbackHost.CreateBuilder();
        builder.Services.AddSingleton<Holder>();
        if (statelessOnly)
        {
            builder.Services.AddMcpServer(o => o.ProtocolVersion = "2026-07-28")
                .WithHttpTransport(o => o.SessionMode = HttpServerSessionMode.Stateless)
                .WithTools<Tools>();
        }
        else
        {
            builder.Services.AddDistributedMemoryCache();
            // Stateful sessions and stored events are what a 2025-11-25 server needs to close a stream and be asked again;
            // the SDK marks them back-compat only (the 2026-07-28 revision has neither), which is what is tested here.
#pragma warning disable MCP9006
            builder.Services.AddMcpServer()
                .WithHttpTransport(o => o.SessionMode = HttpServerSessionMode.Stateful)
                .WithDistributedCacheEventStreamStore()
                .WithTools<Tools>();
#pragma warning restore MCP9006
        }

        var app = builder.Build();
        var server = new SdkMcpServer(app, baseUrl);
        app.Use(async (context, next) =>
        {
            var started = DateTimeOffset.UtcNow;
            try
            {
                await next(context);
            }
            finally
            {
                var headers = context.Request.Headers;
                server.Requests.Enqueue(new Seen(context.Request.Method, headers["Last-Event-ID"].ToString(), headers["MCP-Protocol-Version"].ToString(),
                    headers["Mcp-Method"].ToString(), headers["Mcp-Name"].ToString(), context.Response.StatusCode, started, DateTimeOffset.UtcNow)
                {
                    Params = headers.Where(h => h.Key.StartsWith("Mcp-Param-", StringComparison.OrdinalIgnoreCase)).ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
                });
                server.recorded.Pulse();
                if (server.polling && HttpMethods.IsPost(context.Request.Method))
                {
                    server.callEnded.TrySetResult();
                }
            }
        });
        app.Services.GetRequiredService<Holder>().Server = server;
        app.MapMcp("/mcp");
        await app.StartAsync();
        return server;
    }

    public async ValueTask DisposeAsync() => await app.DisposeAsync();

    private sealed class Holder
    {
        public SdkMcpServer? Server { get; set; }
    }

    [McpServerToolType]
    private sealed class Tools
    {
        [McpServerTool(Name = "slow_echo"), Description("Echoes its text after ending its stream and asking to be polled.")]
        public static async Task<string> SlowEchoAsync(RequestContext<CallToolRequestParams> context, string text, CancellationToken ct)
        {
            var server = context.Services!.GetRequiredService<Holder>().Server!;
            server.polling = true;
            await context.EnablePollingAsync(server.Retry, ct);
            await server.callEnded.Task.WaitAsync(ct);

            return "echo: " + text;
        }

        [McpServerTool(Name = "echo"), Description("Echoes its text.")]
        public static string Echo(string text) => "echo: " + text;

        /// <summary>A tool whose region and dry-run flag are mirrored into Mcp-Param-Region and Mcp-Param-DryRun (x-mcp-header).</summary>
        [McpServerTool(Name = "query"), Description("Runs a query in a region.")]
        public static string Query([McpHeader("Region")] string region, [McpHeader("DryRun")] bool dryRun, string sql) => $"{sql} in {region}{(dryRun ? " (dry run)" : "")}";
    }
}
