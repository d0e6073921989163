using System.Collections.Concurrent;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections.Refresh;

/// <summary>
/// The background refresher: every Nexus:Refresh:IntervalSeconds it takes the connections whose next_refresh_at has
/// come (in batches, oldest first) and refreshes them ahead of expiry, keeps idle refresh tokens alive, retries
/// transient failures when their backoff ends, and moves connections whose token expired without a refresh token to
/// attention_required. Up to Nexus:Refresh:Concurrency refreshes run at once. Every instance may run it: each
/// connection is refreshed under its row lock taken with SKIP LOCKED, so two instances never work on the same
/// connection and neither waits for the other; and each takes its batch by claiming it (RefreshStore.ClaimDueAsync), so
/// the instances work on different connections instead of contending for the same oldest ones.
/// </summary>
internal sealed class RefreshWorker(
    ConnectionRefresher refresher,
    ResourceTokens resourceTokens,
    RefreshStore store,
    ProviderRegistry registry,
    NexusOptions options,
    TimeProvider time,
    Data.DatabaseHealth database,
    ILogger<RefreshWorker> logger) : BackgroundService
{
    private readonly Dictionary<string, int?> margins = new(StringComparer.Ordinal);

    private bool marginsKnown;

    /// <summary>Refreshes this worker has started and that have not finished, by connection id.</summary>
    private readonly ConcurrentDictionary<string, Task> running = new(StringComparer.Ordinal);

    private readonly SemaphoreSlim slots = new(options.Refresh.Concurrency, options.Refresh.Concurrency);

    /// <summary>Refreshes that did something (not skipped) since the last pass.</summary>
    private int progressed;

    /// <summary>Completed passes: a pass ends once it has started a refresh for every connection it found due.</summary>
    public LoopPasses Passes { get; } = new();

    /// <summary>Refreshes started by this worker that have not finished.</summary>
    public int Running => running.Count;

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
                var started = await DispatchAsync(stoppingToken);
                // A full batch that moved connections on means more may be due: look again at once rather than
                // falling behind by a whole interval.
                busy = started == options.Refresh.BatchSize && Interlocked.Exchange(ref progressed, 0) > 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (Data.DatabaseHealth.IsOutage(e))
            {
                // Logged once per outage, not once per pass.
                database.ReportOutage(e);
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Background refresh pass failed; trying again in {Seconds} s", options.Refresh.IntervalSeconds);
            }

            Passes.PassCompleted();
            try
            {
                await Task.Delay(busy ? TimeSpan.Zero : TimeSpan.FromSeconds(options.Refresh.IntervalSeconds), time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        // Shutdown: refreshes already talking to a provider finish (a rotated refresh token must be stored).
        await Task.WhenAll(running.Values);
    }

    /// <summary>
    /// Shutdown: after the worker's own refreshes, waits for the refreshes and resource token mints that requests
    /// started on this instance. They run detached from their callers (a caller that gave up does not stop one, see
    /// ConnectionRefresher.RefreshLockedAsync), so without this a stop while a provider is answering would end the
    /// process before the rotated refresh token is stored, and the stored one is already used up. Bounded by the host's
    /// shutdown timeout (<paramref name="cancellationToken"/>); each provider call by Nexus:UpstreamTimeoutSeconds.
    /// </summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        var inFlight = refresher.InFlight.Concat(resourceTokens.InFlight).ToList();
        if (inFlight.Count == 0)
        {
            return;
        }

        logger.LogInformation("Waiting for {Count} refreshes in flight before stopping", inFlight.Count);
        try
        {
            // Their outcome is their callers' (and the log's): here only their end counts.
            await Task.WhenAll(inFlight).ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            logger.LogWarning("Stopping with {Count} refreshes still in flight: the host's shutdown timeout passed", inFlight.Count(t => !t.IsCompleted));
        }
    }

    /// <summary>
    /// Starts a refresh for each due connection that is not already running, at most Concurrency at a time. It is a
    /// pipeline, not a batch: a slot freed by a fast refresh is used at once, so one slow provider call (up to
    /// Nexus:UpstreamTimeoutSeconds) holds one slot, never the whole refresher. Returns how many it started.
    /// </summary>
    private async Task<int> DispatchAsync(CancellationToken ct)
    {
        var batch = options.Refresh.BatchSize;
        // The batch is this instance's for two intervals: the other instances claim other connections meanwhile.
        // Dispatching a batch takes well under a second when providers answer; when they are slow, a claim that runs
        // out before its connection was started lets another instance take it, which is only the collision a claim
        // avoids, never a second refresh (the row lock decides).
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var due = await store.ClaimDueAsync(now, batch, now + (2000L * options.Refresh.IntervalSeconds), ct);
        var started = 0;
        foreach (var id in due)
        {
            if (started == batch)
            {
                break;
            }

            if (running.ContainsKey(id))
            {
                continue;
            }

            await slots.WaitAsync(ct);
            var completion = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            running[id] = completion.Task;
            _ = RunAsync(id, completion);
            started++;
        }

        return started;
    }

    private async Task RunAsync(string id, TaskCompletionSource completion)
    {
        try
        {
            // Not cancelled by shutdown: see ExecuteAsync.
            if ((await refresher.RefreshInBackgroundAsync(id)).Status != RefreshStatus.Skipped)
            {
                Interlocked.Increment(ref progressed);
            }
        }
        catch (Exception e) when (Data.DatabaseHealth.IsOutage(e))
        {
            database.ReportOutage(e);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Background refresh of connection {ConnectionId} failed", id);
        }
        finally
        {
            running.TryRemove(id, out _);
            slots.Release();
            completion.SetResult();
        }
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
            // A provider that appeared since the last pass may have had connections activated (and scheduled, see
            // ConnectionStore.ActivateAsync) and its margin changed since, all between two passes: its few
            // connections are scheduled again too. The first pass only learns the margins.
            var seen = margins.TryGetValue(provider.Name, out var known);
            if (seen ? known != margin : marginsKnown)
            {
                refresher.ForgetProvider(provider.Name);
                var count = await store.UnscheduleProviderAsync(provider.Name, ct);
                if (seen || count > 0)
                {
                    logger.LogInformation("Refresh margin of provider {Provider} changed; rescheduling {Count} connection(s)", provider.Name, count);
                }
            }

            margins[provider.Name] = margin;
        }

        marginsKnown = true;
    }

    public override void Dispose()
    {
        slots.Dispose();
        base.Dispose();
    }
}
