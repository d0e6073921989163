using Nexus.Server.Notifications;

namespace Nexus.Server.Connections.Refresh;

/// <summary>
/// Publishes the connection events of the webhook contract (README, "Webhooks"). Payloads carry ids, statuses,
/// provider error codes and Unix-second times, never a token. Publishing only queues deliveries; a failure to
/// queue is logged and never fails the operation that caused the event (a user's consent, a refresh, a delete).
/// </summary>
internal sealed class ConnectionNotifier(WebhookPublisher publisher, ILogger<ConnectionNotifier> logger)
{
    public Task ActivatedAsync(string connectionId, string workspaceId, string provider, long? expiresAtMs, string reason) =>
        PublishAsync(WebhookEvents.ConnectionActive, workspaceId, new
        {
            connection_id = connectionId,
            provider,
            status = ConnectionStatus.Active,
            expires_at = expiresAtMs / 1000,
            reason,
        });

    public Task AttentionRequiredAsync(string connectionId, string workspaceId, string provider, string error, string? description) =>
        PublishAsync(WebhookEvents.ConnectionAttentionRequired, workspaceId, new
        {
            connection_id = connectionId,
            provider,
            status = ConnectionStatus.AttentionRequired,
            error,
            error_description = description,
        });

    public Task RefreshFailedAsync(string connectionId, string workspaceId, string provider, string error, string? description, long failures, long retryAtMs, long? expiresAtMs) =>
        PublishAsync(WebhookEvents.ConnectionRefreshFailed, workspaceId, new
        {
            connection_id = connectionId,
            provider,
            status = ConnectionStatus.Active,
            error,
            error_description = description,
            failures,
            retry_at = retryAtMs / 1000,
            expires_at = expiresAtMs / 1000,
        });

    /// <summary>connection.recovered: refreshes work again after <paramref name="failures"/> transient failures in a row (sent once per streak).</summary>
    public Task RecoveredAsync(string connectionId, string workspaceId, string provider, long failures, long? expiresAtMs) =>
        PublishAsync(WebhookEvents.ConnectionRecovered, workspaceId, new
        {
            connection_id = connectionId,
            provider,
            status = ConnectionStatus.Active,
            failures,
            expires_at = expiresAtMs / 1000,
        });

    public Task RevokedAsync(string connectionId, string workspaceId, string provider, string previousStatus, string providerRevocation) =>
        PublishAsync(WebhookEvents.ConnectionRevoked, workspaceId, new
        {
            connection_id = connectionId,
            provider,
            previous_status = previousStatus,
            provider_revocation = providerRevocation,
        });

    private async Task PublishAsync(string eventType, string workspaceId, object data)
    {
        try
        {
            await publisher.PublishAsync(eventType, workspaceId, data, CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning(e, "Could not queue webhook event {Event}", eventType);
        }
    }
}
