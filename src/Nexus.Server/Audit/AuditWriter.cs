namespace Nexus.Server.Audit;

/// <summary>
/// Writes the token_read events <see cref="AuditLog.TokenRead"/> queues, a transaction per batch, for as long as Nexus
/// runs, and what is still queued when it stops (within the host's shutdown timeout).
/// </summary>
internal sealed class AuditWriter(AuditLog audit) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => audit.WriteQueuedAsync(stoppingToken);
}
