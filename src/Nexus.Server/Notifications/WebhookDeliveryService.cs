namespace Nexus.Server.Notifications;

/// <summary>What became of a request to send a delivery again.</summary>
internal enum ResendOutcome
{
    /// <summary>Due now: the dispatcher was woken and sends it in the webhook's turn.</summary>
    Queued,

    /// <summary>The webhook has no such delivery (or there is no such webhook).</summary>
    NotFound,

    /// <summary>It was delivered already: nothing changed, a delivered message is never sent twice.</summary>
    AlreadyDelivered,

    /// <summary>The webhook is paused: nothing is queued or sent to it until it is resumed.</summary>
    Paused,
}

/// <summary>A resend's outcome and the delivery as it now stands (null when not found).</summary>
internal sealed record WebhookResend(ResendOutcome Outcome, WebhookDelivery? Delivery);

/// <summary>
/// Sending to a webhook because an administrator asked, whoever asks: <c>POST /v1/admin/webhooks/{id}/test</c> and
/// <c>POST /v1/admin/webhooks/{id}/deliveries/{deliveryId}/retry</c>, and the dashboard's "Send test event" and
/// "Send again" buttons (Site management › Webhooks) both call this.
/// </summary>
internal sealed class WebhookDeliveryService(WebhookStore store, WebhookPublisher publisher, WebhookDispatcher dispatcher)
{
    /// <summary>The <c>message</c> of a <c>webhook.test</c> event's data.</summary>
    public const string TestMessage = "Hello from Nexus";

    /// <summary>
    /// Queues a <c>webhook.test</c> event for this webhook alone: Queued with the delivery's id, NotFound, or Paused
    /// (nothing queued: a paused webhook is sent nothing).
    /// </summary>
    public async Task<(ResendOutcome Outcome, string? DeliveryId)> SendTestAsync(string webhookId, CancellationToken ct)
    {
        if (await store.FindAsync(webhookId, ct) is not { } webhook)
        {
            return (ResendOutcome.NotFound, null);
        }

        if (webhook.DisabledAt is not null)
        {
            return (ResendOutcome.Paused, null);
        }

        // Queued for this webhook alone: published to every webhook that listens, it reached the deployment's other
        // receivers too (each of them, on any "Test", got a webhook.test naming a webhook that is not theirs).
        return await publisher.PublishToAsync(webhookId, WebhookEvents.Test, webhook.WorkspaceId, new { webhook_id = webhookId, message = TestMessage }, ct) is { } id
            ? (ResendOutcome.Queued, id)
            : (ResendOutcome.NotFound, null);
    }

    /// <summary>
    /// Sends a delivery again: after its last scheduled attempt failed (the receiver was down for longer than the retry
    /// schedule's day), or now rather than at its next retry. A delivered one is not sent twice.
    /// </summary>
    public async Task<WebhookResend> ResendAsync(string webhookId, string deliveryId, CancellationToken ct)
    {
        if (await store.FindAsync(webhookId, ct) is { DisabledAt: not null })
        {
            return await store.FindDeliveryAsync(webhookId, deliveryId, ct) switch
            {
                null => new(ResendOutcome.NotFound, null),
                { Status: DeliveryStatus.Delivered } delivered => new(ResendOutcome.AlreadyDelivered, delivered),
                var paused => new(ResendOutcome.Paused, paused),
            };
        }

        if (await store.RetryAsync(webhookId, deliveryId, ct) is not { } delivery)
        {
            return new(ResendOutcome.NotFound, null);
        }

        if (delivery.Status == DeliveryStatus.Delivered)
        {
            return new(ResendOutcome.AlreadyDelivered, delivery);
        }

        dispatcher.Wake();
        return new(ResendOutcome.Queued, delivery);
    }
}
