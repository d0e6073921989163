using Nexus.Server.Hosting;
using System.Text;
using System.Text.Json;

namespace Nexus.Server.Notifications;

/// <summary>The events Nexus sends, as documented for receivers.</summary>
internal static class WebhookEvents
{
    public const string ConnectionActive = "connection.active";
    public const string ConnectionAttentionRequired = "connection.attention_required";
    public const string ConnectionRevoked = "connection.revoked";
    public const string ConnectionRefreshFailed = "connection.refresh_failed";
    public const string ConnectionRecovered = "connection.recovered";
    public const string Test = "webhook.test";

    public static readonly string[] All = [ConnectionActive, ConnectionAttentionRequired, ConnectionRevoked, ConnectionRefreshFailed, ConnectionRecovered, Test];
}

/// <summary>Queues events for delivery. Callers never wait for receivers: delivery happens in the background.</summary>
internal sealed class WebhookPublisher(WebhookStore store, WebhookDispatcher dispatcher, TimeProvider time)
{
    public async Task PublishAsync(string eventType, string? workspaceId, object data, CancellationToken ct = default)
    {
        var timestamp = time.GetUtcNow();
        var queued = await store.EnqueueAsync(eventType, workspaceId, id => JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["id"] = id,
            ["type"] = eventType,
            // Unix seconds, like every time in Nexus's JSON (and like the signature's timestamp).
            ["timestamp"] = timestamp.ToUnixTimeSeconds(),
            ["workspace_id"] = workspaceId,
            ["data"] = data,
        }), ct);
        if (queued > 0)
        {
            dispatcher.Wake();
        }
    }
}

/// <summary>
/// Delivers queued webhooks with retries: exponential backoff with full jitter between attempts, up to
/// <see cref="MaxAttempts"/>, every attempt logged. Safe with several instances: each delivery attempt is
/// claimed atomically by one of them.
/// </summary>
internal sealed class WebhookDispatcher(WebhookStore store, IHttpClientFactory http, TimeProvider time, Data.DatabaseHealth database, ILogger<WebhookDispatcher> logger,
    Observability.NexusMetrics metrics) : BackgroundService
{
    public const int MaxAttempts = 8;
    public const string HttpClientName = "webhooks";
    private readonly SemaphoreSlim wake = new(0);

    /// <summary>Completed rounds: a round ends once every delivery that was due when it began has been attempted.</summary>
    public LoopPasses Passes { get; } = new();

    public void Wake()
    {
        if (wake.CurrentCount == 0)
        {
            wake.Release();
        }
    }

    /// <summary>Delay before attempt n+1: 2^n seconds, capped at one hour, with full jitter.</summary>
    public static TimeSpan Backoff(int attemptsSoFar) =>
        TimeSpan.FromSeconds(Random.Shared.NextDouble() * Math.Min(3600, Math.Pow(2, attemptsSoFar + 1)));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await DeliverDueAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException && Data.DatabaseHealth.IsOutage(e))
            {
                // Logged once per outage, not once per round.
                database.ReportOutage(e);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Webhook dispatch round failed; retrying");
            }

            Passes.PassCompleted();

            try
            {
                await wake.WaitAsync(TimeSpan.FromSeconds(1), stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async Task DeliverDueAsync(CancellationToken ct)
    {
        foreach (var delivery in await store.DueAsync(50, ct))
        {
            if (await store.ClaimAsync(delivery, TimeSpan.FromMinutes(1), ct))
            {
                await AttemptAsync(delivery, ct);
            }
        }
    }

    private async Task AttemptAsync(WebhookDelivery delivery, CancellationToken ct)
    {
        if (await store.FindAsync(delivery.WebhookId, ct) is not { } found)
        {
            return;
        }

        var (webhook, secret) = found;
        int? status = null;
        string? error = null;
        // One span per delivery attempt, the HTTP call inside it; the URL's host only (a webhook URL may carry a token).
        using var activity = Hosting.NexusTelemetry.Source.StartActivity("webhook deliver", System.Diagnostics.ActivityKind.Internal);
        activity?.SetTag("nexus.webhook.event", delivery.Event);
        activity?.SetTag("nexus.webhook.delivery_id", delivery.Id);
        activity?.SetTag("nexus.webhook.attempt", delivery.Attempts + 1);
        activity?.SetTag("server.address", Uri.TryCreate(webhook.Url, UriKind.Absolute, out var parsed) ? parsed.Host : null);
        try
        {
            var timestamp = time.GetUtcNow().ToUnixTimeSeconds();
            using var request = new HttpRequestMessage(HttpMethod.Post, webhook.Url) { Content = new StringContent(delivery.Payload, Encoding.UTF8, "application/json") };
            request.Headers.Add("webhook-id", delivery.Id);
            request.Headers.Add("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.Add("webhook-signature", WebhookSignature.Sign(secret, delivery.Id, timestamp, delivery.Payload));
            using var response = await http.CreateClient(HttpClientName).SendAsync(request, ct);
            status = (int)response.StatusCode;
            activity?.SetTag("http.response.status_code", status);
            if (response.IsSuccessStatusCode)
            {
                metrics.WebhookDelivery(delivery.Event, delivered: true);
                await store.RecordAttemptAsync(delivery.Id, true, status, null, null, ct);
                return;
            }

            error = $"HTTP {status}";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            // One word for refused, unreachable, reset, TLS failure and timeout: which one it was would tell an admin
            // probing with webhook URLs whether an internal port answered.
            error = "unreachable";
        }

        metrics.WebhookDelivery(delivery.Event, delivered: false);
        activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, error);
        var attempts = delivery.Attempts + 1;
        var retryAt = attempts >= MaxAttempts ? (DateTimeOffset?)null : time.GetUtcNow() + Backoff(attempts);
        await store.RecordAttemptAsync(delivery.Id, false, status, error, retryAt, ct);
        logger.LogInformation("Webhook {Delivery} to {Host} failed ({Error}); {Next}", delivery.Id, new Uri(webhook.Url).Host, error,
            retryAt is null ? "giving up" : $"retrying at {retryAt:O}");
    }

    public override void Dispose()
    {
        wake.Dispose();
        base.Dispose();
    }
}
