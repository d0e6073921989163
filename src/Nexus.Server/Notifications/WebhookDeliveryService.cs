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
    /// Queues a <c>webhook.test</c> event for this webhook alone and returns the delivery's id; null when there is no
    /// such webhook.
    /// </summary>
    public async Task<string?> SendTestAsync(string webhookId, CancellationToken ct)
    {
        if (await store.FindAsync(webhookId, ct) is not { } webhook)
        {
            return null;
        }

        // Queued for this webhook alone: published to every webhook that listens, it reached the deployment's other
        // receivers too (each of them, on any "Test", got a webhook.test naming a webhook that is not theirs).
        return await publisher.PublishToAsync(webhookId, WebhookEvents.Test, webhook.WorkspaceId, new { webhook_id = webhookId, message = TestMessage }, ct);
    }

    /// <summary>
    /// Sends a delivery again: after its last scheduled attempt failed (the receiver was down for longer than the retry
    /// schedule's day), or now rather than at its next retry. A delivered one is not sent twice.
    /// </summary>
    public async Task<WebhookResend> ResendAsync(string webhookId, string deliveryId, CancellationToken ct)
    {
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
