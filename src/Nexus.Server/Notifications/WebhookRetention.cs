using Nexus.Server.Data;
using Nexus.Server.Hosting;

namespace Nexus.Server.Notifications;

/// <summary>
/// The webhook delivery log keeps a finished delivery (delivered, or failed after its last attempt) for
/// Nexus:Retention:WebhookDeliveryDays after it was queued (Data/Retention); a pending one is never removed.
/// </summary>
internal sealed class WebhookRetention(NexusDatabase db, NexusOptions options) : IRetentionRule
{
    public string Name => "finished webhook deliveries";

    public async Task<int> PurgeAsync(DateTimeOffset now, CancellationToken ct) =>
        options.Retention.WebhookDeliveryDays == 0 ? 0
            : await Retention.DeleteAsync(db, "webhook_deliveries", "id", "status IN (@delivered, @failed) AND created_at < @before",
                new { delivered = DeliveryStatus.Delivered, failed = DeliveryStatus.Failed, before = (now - TimeSpan.FromDays(options.Retention.WebhookDeliveryDays)).ToUnixTimeMilliseconds() },
                ct);
}
