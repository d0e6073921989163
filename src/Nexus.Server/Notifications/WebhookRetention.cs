using Nexus.Server.Data;
using Nexus.Server.Hosting;

namespace Nexus.Server.Notifications;

/// <summary>
/// The webhook delivery log keeps a finished delivery (delivered, or failed after its last attempt) for
/// Nexus:Retention:WebhookDeliveryDays after it finished (Data/Retention): its last attempt's time, which
/// WebhookStore.RecordAttemptAsync writes to next_attempt_at, so a delivery sent again counts from its new outcome and
/// the (status, next_attempt_at) index finds them. A pending one is never removed.
/// </summary>
internal sealed class WebhookRetention(NexusDatabase db, NexusOptions options) : IRetentionRule
{
    public string Key => "webhook_deliveries";

    public string Name => "finished webhook deliveries";

    public async Task<int> PurgeAsync(DateTimeOffset now, CancellationToken ct) =>
        options.Retention.WebhookDeliveryDays == 0 ? 0
            : await Retention.DeleteAsync(db, "webhook_deliveries", "id", "status IN (@delivered, @failed) AND next_attempt_at < @before",
                new { delivered = DeliveryStatus.Delivered, failed = DeliveryStatus.Failed, before = (now - TimeSpan.FromDays(options.Retention.WebhookDeliveryDays)).ToUnixTimeMilliseconds() },
                ct);
}
