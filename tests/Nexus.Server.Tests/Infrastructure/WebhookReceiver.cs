using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A webhook endpoint on loopback, as an application would run one: it records every delivery attempt exactly as
/// received (headers and raw body, so signatures can be checked the way a receiver checks them) and can answer 500
/// to the first attempts to exercise Nexus's retries.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication app;
    private int failuresLeft;

    // Pulsed whenever a delivery is recorded: what WaitForAsync and WaitUntilAsync wait on.
    private readonly ChangeSignal arrived = new();

    /// <summary>One POST as received. <see cref="Answered"/> is the status the receiver sent back.</summary>
    public sealed record Delivery(string Id, long Timestamp, string Signature, string Body, DateTimeOffset ReceivedAt, int Answered)
    {
        public JsonElement Json => JsonDocument.Parse(Body).RootElement;

        public string Type => Json.GetProperty("type").GetString()!;

        public JsonElement Data => Json.GetProperty("data");
    }

    private WebhookReceiver(WebApplication app, string url)
    {
        this.app = app;
        Url = url;
    }

    public string Url { get; }

    public ConcurrentQueue<Delivery> Received { get; } = new();

    /// <summary>Answer 500 to this many of the next attempts.</summary>
    public void FailNext(int attempts) => Volatile.Write(ref failuresLeft, attempts);

    /// <summary>When set, every attempt waits here (recorded, unanswered) until the test releases it: a receiver that hangs.</summary>
    public Gate? Hold { get; set; }

    /// <summary>When above zero, a 200 answer carries a body of this many bytes, streamed: a receiver that answers with too much.</summary>
    public long StreamBytes { get; set; }

    /// <summary>
    /// Completes when a streamed answer ended: the body bytes the receiver wrote, and whether Nexus cut the connection
    /// off instead of reading to the end. The count alone says little: once the connection is gone, Kestrel may accept
    /// and discard writes until it notices, so a cut-off answer can look "sent in full".
    /// </summary>
    public TaskCompletionSource<(long Sent, bool CutOff)> Streamed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static async Task<WebhookReceiver> StartAsync()
    {
        var (builder, baseUrl) = LoopbackHost.CreateBuilder();
        var app = builder.Build();
        var receiver = new WebhookReceiver(app, baseUrl + "/hooks/nexus");
        app.MapPost("/hooks/nexus", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            var fail = Interlocked.Decrement(ref receiver.failuresLeft) >= 0;
            var headers = context.Request.Headers;
            receiver.Received.Enqueue(new Delivery(headers["webhook-id"].ToString(),
                long.TryParse(headers["webhook-timestamp"].ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var t) ? t : 0,
                headers["webhook-signature"].ToString(), body, DateTimeOffset.UtcNow, fail ? 500 : 200));
            receiver.arrived.Pulse();
            if (receiver.Hold is { } hold)
            {
                await hold.PassAsync(context.RequestAborted);
            }

            if (fail || receiver.StreamBytes <= 0)
            {
                return fail ? Results.StatusCode(500) : Results.Ok();
            }

            context.Response.StatusCode = 200;
            var chunk = new byte[64 * 1024];
            long sent = 0;
            var cutOff = false;
            try
            {
                await context.Response.StartAsync(context.RequestAborted);
                while (sent < receiver.StreamBytes)
                {
                    await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                    sent += chunk.Length;
                }

                // Every write taken: either Nexus read it all and waits for the end of the body (which has not come), or
                // it closed the connection and Kestrel has not noticed yet. Only the second ends this wait.
                await Task.Delay(Timeout.Infinite, context.RequestAborted).WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or Microsoft.AspNetCore.Connections.ConnectionResetException)
            {
                // Nexus closed the connection before reading it all.
                cutOff = true;
            }
            catch (TimeoutException)
            {
                await context.Response.CompleteAsync();
            }

            receiver.Streamed.TrySetResult((sent, cutOff));
            return Results.Empty;
        });
        await app.StartAsync();
        return receiver;
    }

    /// <summary>Waits until a delivery matching <paramref name="match"/> was answered 2xx, or fails the test.</summary>
    public async Task<Delivery> WaitForAsync(Func<Delivery, bool> match, TimeSpan? timeout = null)
    {
        Delivery? found = null;
        await arrived.WaitUntilAsync(() => (found = Received.FirstOrDefault(d => d.Answered == 200 && match(d))) is not null,
            "a matching webhook", timeout, () => "received: " + string.Join(", ", Received.Select(d => d.Type + "/" + d.Answered)));
        return found!;
    }

    /// <summary>Waits until <paramref name="condition"/> holds of what was received, looking again at each delivery.</summary>
    public Task WaitUntilAsync(Func<IReadOnlyCollection<Delivery>, bool> condition, string what, TimeSpan? timeout = null) =>
        arrived.WaitUntilAsync(() => condition(Received), what, timeout, () => "received: " + string.Join(", ", Received.Select(d => d.Type + "/" + d.Answered)));

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
