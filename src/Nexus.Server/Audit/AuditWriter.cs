namespace Nexus.Server.Audit;

/// <summary>
/// Writes the token_read events <see cref="AuditLog.TokenRead"/> queues, a transaction per batch, for as long as Nexus
/// runs, and what is still queued when it stops (within the host's shutdown timeout).
/// </summary>
internal sealed class AuditWriter(AuditLog audit) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => audit.WriteQueuedAsync(stoppingToken);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // Since .NET 10 BackgroundService starts ExecuteAsync with Task.Run and the stopping token: a host stopped before
        // the thread pool got to it (a busy pool, a quick restart) never runs the loop at all. What was queued is then
        // written here, once the loop is known not to be running (never started, or finished).
        if (ExecuteTask is null || ExecuteTask.IsCompleted)
        {
            using var stopped = new CancellationTokenSource();
            await stopped.CancelAsync();
            await audit.WriteQueuedAsync(stopped.Token);
        }
    }
}
