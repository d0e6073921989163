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
/// A remote MCP server built with the official C# SDK (stateful Streamable HTTP, events kept in a store for
/// resumption) whose <c>slow_echo</c> tool ends the POST's event stream before it answers (SSE polling, MCP
/// 2025-11-25: the server sent an event id, so it may close the stream and the client asks again with GET and
/// Last-Event-ID after the stream's retry interval). Each request's method and Last-Event-ID are recorded.
/// </summary>
public sealed class PollingMcpServer : IAsyncDisposable
{
    private readonly WebApplication app;

    private PollingMcpServer(WebApplication app, string baseUrl)
    {
        this.app = app;
        BaseUrl = baseUrl;
    }

    public string BaseUrl { get; }

    /// <summary>The retry interval the tool's stream tells the client to wait before it asks again.</summary>
    public TimeSpan Retry { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Every request as "METHOD Last-Event-ID" (the header empty when absent), with when its stream ended.</summary>
    public ConcurrentQueue<(string Method, string LastEventId, DateTimeOffset Started, DateTimeOffset Ended)> Requests { get; } = new();

    /// <summary>Set when the tool has ended its stream; the POST that ends after it is the tool call's.</summary>
    private volatile bool polling;

    /// <summary>Completed when the tool call's POST has ended: only then does the tool answer (else the answer could still go down that stream).</summary>
    private readonly TaskCompletionSource callEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static async Task<PollingMcpServer> StartAsync()
    {
        var (builder, baseUrl) = LoopbackHost.CreateBuilder();
        builder.Services.AddDistributedMemoryCache();
        builder.Services.AddSingleton<Holder>();
        // Stateful sessions and stored events are what a 2025-11-25 server needs to close a stream and be asked again;
        // the SDK marks them back-compat only (the 2026-07-28 revision has neither), which is what is tested here.
#pragma warning disable MCP9006
        builder.Services.AddMcpServer()
            .WithHttpTransport(o => o.SessionMode = HttpServerSessionMode.Stateful)
            .WithDistributedCacheEventStreamStore()
            .WithTools<Tools>();
#pragma warning restore MCP9006
        var app = builder.Build();
        var server = new PollingMcpServer(app, baseUrl);
        app.Use(async (context, next) =>
        {
            var started = DateTimeOffset.UtcNow;
            try
            {
                await next(context);
            }
            finally
            {
                server.Requests.Enqueue((context.Request.Method, context.Request.Headers["Last-Event-ID"].ToString(), started, DateTimeOffset.UtcNow));
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
        public PollingMcpServer? Server { get; set; }
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
    }
}
