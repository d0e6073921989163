using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections.Refresh;

/// <summary>
/// The background refresher: every Nexus:Refresh:IntervalSeconds it takes the connections whose next_refresh_at has
/// come (in batches, oldest first) and refreshes them ahead of expiry, keeps idle refresh tokens alive, retries
/// transient failures when their backoff ends, and moves connections whose token expired without a refresh token to
/// attention_required. Every instance may run it: each connection is refreshed under its row lock taken with SKIP
/// LOCKED, so two instances never work on the same connection and neither waits for the other.
/// </summary>
internal sealed class RefreshWorker(
    ConnectionRefresher refresher,
    RefreshStore store,
    ProviderRegistry registry,
    NexusOptions options,
    TimeProvider time,
    ILogger<RefreshWorker> logger) : BackgroundService
{
    private readonly Dictionary<string, int?> margins = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Refresh.BackgroundEnabled)
        {
            logger.LogInformation("The background refresher is disabled on this instance (Nexus:Refresh:BackgroundEnabled=false)");
            return;
        }

        // Let the host finish starting before the first pass.
        await Task.Yield();
        while (!stoppingToken.IsCancellationRequested)
        {
            var busy = false;
            try
            {
                await WatchMarginsAsync(stoppingToken);
                busy = await RunOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Background refresh pass failed; trying again in {Seconds} s", options.Refresh.IntervalSeconds);
            }

            try
            {
                // A full batch means more are due: go on at once rather than falling behind by a whole interval.
                await Task.Delay(busy ? TimeSpan.Zero : TimeSpan.FromSeconds(options.Refresh.IntervalSeconds), time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One batch. True when the batch was full and at least one connection moved on (more may be due now).</summary>
    public async Task<bool> RunOnceAsync(CancellationToken ct)
    {
        var due = (await store.DueAsync(time.GetUtcNow().ToUnixTimeMilliseconds(), options.Refresh.BatchSize, ct)).ToArray();
        if (due.Length == 0)
        {
            return false;
        }

        // Instances reading the same batch start at different places, so they collide on fewer rows.
        Random.Shared.Shuffle(due);
        var progressed = 0;
        // Refreshes themselves are not cancelled by shutdown (a rotated refresh token must be stored); the loop
        // only stops starting new ones.
        await Parallel.ForEachAsync(due, new ParallelOptions { MaxDegreeOfParallelism = options.Refresh.Concurrency, CancellationToken = ct }, async (id, _) =>
        {
            var result = await refresher.RefreshInBackgroundAsync(id);
            if (result.Status != RefreshStatus.Skipped)
            {
                Interlocked.Increment(ref progressed);
            }
        });
        return due.Length == options.Refresh.BatchSize && progressed > 0;
    }

    /// <summary>
    /// A provider's refresh_margin_seconds changed (PATCH /v1/providers/{name}): its connections were scheduled with
    /// the old margin, so they are scheduled again.
    /// </summary>
    private async Task WatchMarginsAsync(CancellationToken ct)
    {
        foreach (var provider in await registry.ListAsync(ct))
        {
            var margin = provider.Config.RefreshMarginSeconds;
            if (margins.TryGetValue(provider.Name, out var known) && known != margin)
            {
                refresher.ForgetProvider(provider.Name);
                var count = await store.UnscheduleProviderAsync(provider.Name, ct);
                logger.LogInformation("Refresh margin of provider {Provider} changed; rescheduling {Count} connection(s)", provider.Name, count);
            }

            margins[provider.Name] = margin;
        }
    }
}
