using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A provider API stand-in on loopback that records exactly what it receives (headers, query, body size and hash,
/// streamed, never buffered) and can misbehave on purpose: slow, failing, redirecting, 401 until told otherwise.
/// </summary>
public sealed class EchoUpstream : IAsyncDisposable
{
    private readonly WebApplication app;

    private EchoUpstream(WebApplication app, string baseUrl)
    {
        this.app = app;
        BaseUrl = baseUrl;
    }

    public sealed record Received(string Method, string Path, string Query, Dictionary<string, string> Headers, long BodyLength, string BodySha256);

    public string BaseUrl { get; }

    public ConcurrentQueue<Received> Requests { get; } = new();

    /// <summary>Bearer tokens the /protected route accepts; anything else gets 401.</summary>
    public ConcurrentDictionary<string, bool> AcceptedTokens { get; } = new();

    /// <summary>When set, /protected waits here before it answers (a race staged by events).</summary>
    public Gate? ProtectedGate { get; set; }

    /// <summary>Where a POST to /events waits between its first event and its last (as an MCP tool call's answer does).</summary>
    public Gate? EventsGate { get; set; }

    public Received Last => Requests.Last();

    /// <summary>
    /// When set, /trickle's gaps are this clock's time, not real time: before each piece it waits until the caller's
    /// clock has a timer armed for that piece (a Bridge waiting on it) and moves the clock by the gap.
    /// </summary>
    public ManualTimeProvider? Clock { get; set; }

    public static async Task<EchoUpstream> StartAsync()
    {
        var (builder, baseUrl) = LoopbackHost.CreateBuilder();
        builder.Services.Configure<KestrelServerOptions>(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            // Providers do send non-ASCII header bytes (a UTF-8 filename in Content-Disposition); Kestrel refuses
            // to unless told how to encode them.
            k.ResponseHeaderEncodingSelector = _ => System.Text.Encoding.UTF8;
        });
        var app = builder.Build();
        var echo = new EchoUpstream(app, baseUrl);

        async Task<Received> Record(HttpContext context)
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[64 * 1024];
            long length = 0;
            int read;
            while ((read = await context.Request.Body.ReadAsync(buffer)) > 0)
            {
                sha.AppendData(buffer, 0, read);
                length += read;
            }

            var received = new Received(context.Request.Method, context.Request.Path.Value ?? "", context.Request.QueryString.Value ?? "",
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase), length, Convert.ToHexStringLower(sha.GetHashAndReset()));
            echo.Requests.Enqueue(received);
            return received;
        }

        app.MapGet("/slow", async (HttpContext context) =>
        {
            await Record(context);
            await Task.Delay(TimeSpan.FromSeconds(10), context.RequestAborted);
            return Results.Ok();
        });
        // Headers, then `first` bytes of a longer body (chunked=true: of unknown length), and the rest never comes:
        // /stall waits until the caller gives up, /drop closes the connection.
        async Task StartPartialBodyAsync(HttpContext context, int first, bool? chunked)
        {
            await Record(context);
            context.Response.ContentType = "application/octet-stream";
            if (chunked != true)
            {
                context.Response.ContentLength = first + 1024;
            }

            await context.Response.StartAsync(context.RequestAborted);
            await context.Response.Body.WriteAsync(new byte[first], context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }

        app.MapGet("/stall", async (HttpContext context, int first, bool? chunked) =>
        {
            await StartPartialBodyAsync(context, first, chunked);
            await Task.Delay(TimeSpan.FromSeconds(30), context.RequestAborted);
        });
        // An event stream that sends one event and then nothing more, until the caller goes.
        app.MapGet("/events", async (HttpContext context) =>
        {
            await Record(context);
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: first\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
        });
        // A POST's event stream (an MCP tool call's answer): a first event, then, once EventsGate lets it, the last, and its end.
        app.MapPost("/events", async (HttpContext context) =>
        {
            await Record(context);
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: first\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            if (echo.EventsGate is { } gate)
            {
                await gate.PassAsync(context.RequestAborted);
            }

            await context.Response.WriteAsync("data: last\n\n", context.RequestAborted);
        });
        // An OpenID provider whose discovery document stops after its first bytes (issuer: BaseUrl + "/stalled-issuer").
        app.MapGet("/stalled-issuer/.well-known/openid-configuration", async (HttpContext context) =>
        {
            await StartPartialBodyAsync(context, 16, chunked: false);
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        });
        app.MapGet("/drop", async (HttpContext context, int first, bool? chunked) =>
        {
            await StartPartialBodyAsync(context, first, chunked);
            await Task.Delay(200, context.RequestAborted);
            context.Abort();
        });
        // A header that is not plain ASCII, beside an ordinary one.
        app.MapGet("/utf8-header", async (HttpContext context) =>
        {
            await Record(context);
            context.Response.Headers.ContentDisposition = "attachment; filename=\"résumé.pdf\"";
            context.Response.Headers["X-Plain"] = "yes";
            return Results.Ok();
        });
        // Echoes the request's credentials back in response headers, as careless debug endpoints do.
        app.MapGet("/reflect", async (HttpContext context) =>
        {
            await Record(context);
            context.Response.Headers["X-Seen-Authorization"] = context.Request.Headers.Authorization.ToString();
            context.Response.Headers["X-Seen-Authorization-Encoded"] = "/cb?seen=" + Uri.EscapeDataString(context.Request.Headers.Authorization.ToString()).ToLowerInvariant();
            context.Response.Headers["X-Seen-Query"] = context.Request.QueryString.Value;
            context.Response.Headers["X-Plain"] = "yes";
            return Results.Ok();
        });
        // A trailing-slash redirect that keeps the query string, credential parameters included.
        app.MapGet("/keep-query", async (HttpContext context) =>
        {
            await Record(context);
            return Results.Redirect(context.Request.Path + "/" + context.Request.QueryString, permanent: true);
        });
        // A slow but steady stream: `chunks` pieces of 1 KiB, `gapMs` apart.
        app.MapGet("/trickle/{chunks:int}", async (HttpContext context, int chunks, int gapMs) =>
        {
            await Record(context);
            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = chunks * 1024L;
            var clock = echo.Clock;
            var seen = clock?.Arms ?? 0;
            await context.Response.StartAsync(context.RequestAborted);
            // The headers now, not with the first piece: the caller waits for the first piece, not for the headers.
            await context.Response.Body.FlushAsync(context.RequestAborted);
            for (var i = 0; i < chunks; i++)
            {
                if (clock is null)
                {
                    await Task.Delay(gapMs, context.RequestAborted);
                }
                else
                {
                    // One new timer per piece the caller waits for; a caller that kept one timer over the whole body
                    // arms none, and after 10 s of real time the clock moves all the same (and that timer runs out).
                    try
                    {
                        await clock.ArmedAfterAsync(seen++, context.RequestAborted).WaitAsync(TimeSpan.FromSeconds(10), context.RequestAborted);
                    }
                    catch (TimeoutException)
                    {
                    }

                    clock.Advance(TimeSpan.FromMilliseconds(gapMs));
                }

                await context.Response.Body.WriteAsync(new byte[1024], context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        });
        app.MapGet("/status/{code:int}", async (HttpContext context, int code) =>
        {
            await Record(context);
            if (code == 429)
            {
                context.Response.Headers.RetryAfter = "7";
            }

            return Results.StatusCode(code);
        });
        // An error with an empty, chunked body: no Content-Length and no Content-Type, which is what a status code
        // page middleware would fill in if it saw it.
        app.MapGet("/bare/{code:int}", async (HttpContext context, int code) =>
        {
            await Record(context);
            context.Response.StatusCode = code;
            await context.Response.StartAsync();
        });
        app.MapGet("/redirect", async (HttpContext context, string to) =>
        {
            await Record(context);
            return Results.Redirect(to);
        });
        // A redirect with every "to" as a Location header of its own (a broken or hostile provider sends two).
        app.MapGet("/redirect-each", async (HttpContext context) =>
        {
            await Record(context);
            context.Response.StatusCode = StatusCodes.Status302Found;
            context.Response.Headers.Location = context.Request.Query["to"];
        });
        // The same under a base path, for a provider whose API base URL has one (https://slack.com/api).
        app.MapGet("/api/redirect", async (HttpContext context, string to) =>
        {
            await Record(context);
            return Results.Redirect(to);
        });
        app.MapGet("/protected", async (HttpContext context) =>
        {
            await Record(context);
            if (echo.ProtectedGate is { } gate)
            {
                await gate.PassAsync(context.RequestAborted);
            }

            var auth = context.Request.Headers.Authorization.ToString();
            return auth.StartsWith("Bearer ", StringComparison.Ordinal) && echo.AcceptedTokens.ContainsKey(auth[7..]) ? Results.Ok(new { ok = true }) : Results.Unauthorized();
        });
        app.MapGet("/download/{megabytes:int}", async (HttpContext context, int megabytes) =>
        {
            await Record(context);
            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = megabytes * 1024L * 1024;
            var chunk = new byte[1024 * 1024];
            for (var i = 0; i < megabytes; i++)
            {
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
            }
        });
        app.Map("/{**rest}", async (HttpContext context) =>
        {
            var received = await Record(context);
            context.Response.Headers["X-Echo"] = "yes";
            context.Response.Headers["Set-Cookie"] = "upstream=1";
            return Results.Json(new { received.Method, received.Path, received.Query, received.BodyLength, received.BodySha256 });
        });
        await app.StartAsync();
        return echo;
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
