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
    /// <summary>Queues <paramref name="eventType"/> for every webhook that listens to it.</summary>
    public Task PublishAsync(string eventType, string? workspaceId, object data, CancellationToken ct = default) => PublishAsync(eventType, workspaceId, null, data, ct);

    /// <summary>
    /// Queues <paramref name="eventType"/> for one webhook alone, whatever it listens to. Returns the delivery's id (null
    /// when the webhook is gone).
    /// </summary>
    public async Task<string?> PublishToAsync(string webhookId, string eventType, string? workspaceId, object data, CancellationToken ct) =>
        (await PublishAsync(eventType, workspaceId, webhookId, data, ct)).SingleOrDefault();

    private async Task<IReadOnlyList<string>> PublishAsync(string eventType, string? workspaceId, string? onlyWebhookId, object data, CancellationToken ct)
    {
        var timestamp = time.GetUtcNow();
        var queued = await store.EnqueueAsync(eventType, workspaceId, onlyWebhookId, id => JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["id"] = id,
            ["type"] = eventType,
            // Unix seconds, like every time in Nexus's JSON (and like the signature's timestamp).
            ["timestamp"] = timestamp.ToUnixTimeSeconds(),
            ["workspace_id"] = workspaceId,
            ["data"] = data,
        }), ct);
        if (queued.Count > 0)
        {
            dispatcher.Wake();
        }

        return queued;
    }
}

/// <summary>
/// Delivers queued webhooks with retries on the schedule Standard Webhooks senders use (<see cref="RetryDelays"/>:
/// about a day in all), every attempt logged. Safe with several instances: each delivery attempt is claimed
/// atomically by one of them.
/// </summary>
/// <remarks>
/// Each webhook has its own lane: one delivery in flight at a time per webhook (on each instance), oldest first, so a
/// receiver sees its events in the order they were queued as far as its own failures allow. Lanes run side by side, at
/// most <see cref="MaxConcurrentDeliveries"/> attempts at once, and the loop that starts them never waits for them: a
/// receiver that is slow or down (each attempt may take the full timeout) delays only its own backlog.
/// </remarks>
internal sealed class WebhookDispatcher(WebhookStore store, IHttpClientFactory http, TimeProvider time, Data.DatabaseHealth database, ILogger<WebhookDispatcher> logger,
    Observability.NexusMetrics metrics) : BackgroundService
{
    /// <summary>
    /// The waits after a failed attempt: after the 1st, 5 s; after the 2nd, 5 min; … after the 7th, 10 h; the 8th
    /// failure is final. This is the schedule of Standard Webhooks senders (immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
    /// 10 h, 10 h): a delivery survives a receiver that is down for a redeploy, or a night, not only for a few minutes
    /// (the exponential 2^n s backoff it replaces gave up after about 4 minutes).
    /// </summary>
    public static readonly TimeSpan[] RetryDelays =
    [
        TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(30), TimeSpan.FromHours(2), TimeSpan.FromHours(5), TimeSpan.FromHours(10), TimeSpan.FromHours(10),
    ];

    /// <summary>Attempts before a delivery is <c>failed</c>: the first and one after each of <see cref="RetryDelays"/>.</summary>
    public static readonly int MaxAttempts = RetryDelays.Length + 1;

    /// <summary>Delivery attempts in flight at once on one instance, over all webhooks.</summary>
    public const int MaxConcurrentDeliveries = 16;

    /// <summary>
    /// How much of a receiver's answer Nexus reads: none of its body, only the status. Disposing an answer whose body
    /// is unread lets the handler drain at most this much before it drops the connection, so a receiver that answers
    /// with an endless body costs a few KB, not a buffer of up to 2 GB (HttpClient's default for a buffered read).
    /// </summary>
    public const int MaxResponseDrainBytes = 4 * 1024;

    public const string HttpClientName = "webhooks";

    /// <summary>The delivery log's last_error for an attempt whose signing secret could not be decrypted (no key id, nothing secret).</summary>
    public const string UndecryptableSecret = "signing secret cannot be decrypted";
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(1);
    private readonly SemaphoreSlim wake = new(0);
    private readonly SemaphoreSlim slots = new(MaxConcurrentDeliveries);

    // Touched by the loop only: the lane of each webhook with deliveries in flight.
    private readonly Dictionary<string, Task> lanes = new(StringComparer.Ordinal);

    // Webhooks whose secret could not be decrypted, logged once each until it can be again.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> undecryptable = new(StringComparer.Ordinal);

    /// <summary>
    /// Completed passes: a pass is a round that found no delivery due and none in flight on this instance, so after
    /// two passes from a given moment every delivery that was due then has been attempted.
    /// </summary>
    public LoopPasses Passes { get; } = new();

    public void Wake()
    {
        if (wake.CurrentCount == 0)
        {
            wake.Release();
        }
    }

    /// <summary>The wait after <paramref name="attemptsSoFar"/> failed attempts of the current schedule, with ±20% jitter so that deliveries that failed together do not all come back at once; null when that was the last attempt.</summary>
    public static TimeSpan? Backoff(int attemptsSoFar) =>
        attemptsSoFar < 1 || attemptsSoFar > RetryDelays.Length ? null : RetryDelays[attemptsSoFar - 1] * (0.8 + (0.4 * Random.Shared.NextDouble()));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var idle = false;
            try
            {
                idle = await StartDueLanesAsync(stoppingToken);
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
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }

            if (idle)
            {
                Passes.PassCompleted();
            }

            try
            {
                await wake.WaitAsync(TimeSpan.FromSeconds(1), stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        // Lanes stop at their next await; let them finish so that nothing touches the database after shutdown.
        await Task.WhenAll(lanes.Values);
    }

    /// <summary>Starts a lane for each webhook with a delivery due and none in flight; true when there was nothing to do.</summary>
    private async Task<bool> StartDueLanesAsync(CancellationToken ct)
    {
        foreach (var done in lanes.Where(l => l.Value.IsCompleted).Select(l => l.Key).ToList())
        {
            lanes.Remove(done);
        }

        var idle = lanes.Count == 0;
        foreach (var webhookId in await store.DueWebhooksAsync(200, ct))
        {
            idle = false;
            if (!lanes.ContainsKey(webhookId))
            {
                lanes[webhookId] = Task.Run(() => RunLaneAsync(webhookId, ct), CancellationToken.None);
            }
        }

        return idle;
    }

    /// <summary>Delivers one webhook's due deliveries one after another, oldest first, until none is due.</summary>
    private async Task RunLaneAsync(string webhookId, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var due = await store.DueAsync(webhookId, 10, ct);
                if (due.Count == 0)
                {
                    return;
                }

                foreach (var delivery in due)
                {
                    await slots.WaitAsync(ct);
                    try
                    {
                        // Claimed only once a slot is free, so the lease runs while the attempt does, not while it queues.
                        if (await store.ClaimAsync(delivery, Lease, ct) is { } lease)
                        {
                            await AttemptAsync(delivery, lease, ct);
                        }
                    }
                    finally
                    {
                        slots.Release();
                    }
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e) when (Data.DatabaseHealth.IsOutage(e))
        {
            database.ReportOutage(e);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Webhook delivery lane failed; retrying");
        }
        finally
        {
            // The next round looks again at once: more may have become due for this webhook meanwhile.
            Wake();
        }
    }

    private async Task AttemptAsync(WebhookDelivery delivery, long lease, CancellationToken ct)
    {
        if (await store.FindAsync(delivery.WebhookId, ct) is not { } webhook)
        {
            return;
        }

        if (webhook.DisabledAt is not null)
        {
            // Paused after its lane began: the claimed delivery is due again when the claim's lease ends, once resumed.
            return;
        }

        // Every attempt counts in the log; where it falls in the retry schedule counts from the schedule's start (a
        // failed delivery sent again starts a new schedule, WebhookStore.RetryAsync).
        var attempts = delivery.Attempts + 1;
        var inSchedule = delivery.AttemptsInSchedule + 1;
        WebhookSecrets secrets;
        try
        {
            secrets = await store.SecretsAsync(webhook.Id, ct);
            undecryptable.TryRemove(webhook.Id, out _);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            // Its encryption key was removed from PREVIOUS_ENCRYPTION_KEYS (or the row was damaged). Thrown out of the
            // round, this abandoned every delivery after it and left this one to be claimed again each minute forever
            // with its attempts unchanged; recorded as a failed attempt instead, it follows the retry schedule (the key
            // may be put back) and ends failed. The log says it once per webhook, without the key ring's message.
            var retryAt = Backoff(inSchedule) is { } wait ? time.GetUtcNow() + wait : (DateTimeOffset?)null;
            metrics.WebhookDelivery(delivery.Event, delivered: false);
            await store.RecordAttemptAsync(delivery.Id, lease, false, null, UndecryptableSecret, retryAt, ct);
            if (undecryptable.TryAdd(webhook.Id, true))
            {
                logger.LogError("Webhook {Webhook}: its signing secret cannot be decrypted (encrypted with a key that is not in ENCRYPTION_KEY or PREVIOUS_ENCRYPTION_KEYS); "
                    + "its deliveries fail until the key is configured again or the webhook is recreated", webhook.Id);
            }

            return;
        }

        int? status = null;
        string? error = null;
        // One span per delivery attempt, the HTTP call inside it; the URL's host only (a webhook URL may carry a token).
        using var activity = Hosting.NexusTelemetry.Source.StartActivity("webhook deliver", System.Diagnostics.ActivityKind.Internal);
        activity?.SetTag("nexus.webhook.event", delivery.Event);
        activity?.SetTag("nexus.webhook.delivery_id", delivery.Id);
        activity?.SetTag("nexus.webhook.attempt", attempts);
        activity?.SetTag("server.address", Uri.TryCreate(webhook.Url, UriKind.Absolute, out var parsed) ? parsed.Host : null);
        try
        {
            var timestamp = time.GetUtcNow().ToUnixTimeSeconds();
            using var request = new HttpRequestMessage(HttpMethod.Post, webhook.Url) { Content = new StringContent(delivery.Payload, Encoding.UTF8, "application/json") };
            request.Headers.Add("webhook-id", delivery.Id);
            request.Headers.Add("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
            // Standard Webhooks: several signatures, space-separated, while a replaced secret still signs (a rotation's
            // overlap); a receiver accepts the message when any of them verifies with its secret.
            var signature = WebhookSignature.Sign(secrets.Current, delivery.Id, timestamp, delivery.Payload);
            request.Headers.TryAddWithoutValidation("webhook-signature", secrets.Previous is { } previous
                ? signature + " " + WebhookSignature.Sign(previous, delivery.Id, timestamp, delivery.Payload)
                : signature);
            // The status is the whole answer: headers only, the body never read (see MaxResponseDrainBytes). The
            // default, ResponseContentRead, buffered whatever the receiver sent, up to 2 GB.
            using var response = await http.CreateClient(HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            status = (int)response.StatusCode;
            activity?.SetTag("http.response.status_code", status);
            if (response.IsSuccessStatusCode)
            {
                metrics.WebhookDelivery(delivery.Event, delivered: true);
                await store.RecordAttemptAsync(delivery.Id, lease, true, status, null, null, ct);
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
        var next = Backoff(inSchedule) is { } delay ? time.GetUtcNow() + delay : (DateTimeOffset?)null;
        await store.RecordAttemptAsync(delivery.Id, lease, false, status, error, next, ct);
        logger.LogInformation("Webhook {Delivery} to {Host} failed ({Error}); {Next}", delivery.Id, new Uri(webhook.Url).Host, error,
            next is null ? "giving up" : $"retrying at {next:O}");
    }

    public override void Dispose()
    {
        wake.Dispose();
        slots.Dispose();
        base.Dispose();
    }
}
