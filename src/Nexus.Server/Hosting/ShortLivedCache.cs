using System.Collections.Concurrent;

namespace Nexus.Server.Hosting;

/// <summary>
/// A per-instance cache of database rows for hot read paths, with a time-to-live that bounds how late a change made
/// by another instance is seen. Loads are single-flight: when an entry expires under load, one request reads the
/// database and the concurrent ones await that same read instead of all querying at once (which, at 32 concurrent
/// requests, showed up as p99 spikes every TTL). Unknown keys (a null load) are never cached: the key space is
/// unbounded. Expired entries are swept whenever the cache has doubled since the last sweep, so it holds about what
/// was read within one TTL (at most twice that, and never more than maxEntries) instead of every key ever read: over a
/// million connections read at random (bench/scale.sh) it used to hold up to maxEntries expired rows, all of them garbage.
/// With a TTL of 0 nothing is kept once loaded; concurrent misses still share one load.
/// </summary>
internal sealed class ShortLivedCache<TValue>(TimeProvider time, Func<int> ttlSeconds, int maxEntries = 200_000)
    where TValue : class
{
    private sealed class Entry(long loadedAt, Task<TValue?> value)
    {
        public long LoadedAt { get; } = loadedAt;

        public Task<TValue?> Value { get; } = value;
    }

    /// <summary>The fewest entries at which a sweep runs (a small cache is never swept: it costs nothing to keep).</summary>
    internal const int MinimumSweep = 1024;

    private readonly ConcurrentDictionary<string, Entry> entries = new(StringComparer.Ordinal);
    private readonly Lock sweeping = new();
    private int sweepAt = MinimumSweep;

    /// <summary>Entries held, expired ones included (for tests).</summary>
    internal int Count => entries.Count;

    public ValueTask<TValue?> GetAsync(string key, Func<string, Task<TValue?>> load)
    {
        var now = time.GetTimestamp();
        if (entries.TryGetValue(key, out var entry))
        {
            if (!entry.Value.IsCompleted)
            {
                return new ValueTask<TValue?>(entry.Value);
            }

            if (entry.Value.IsCompletedSuccessfully && time.GetElapsedTime(entry.LoadedAt, now).TotalSeconds < ttlSeconds())
            {
                return new ValueTask<TValue?>(entry.Value.Result);
            }
        }

        return new ValueTask<TValue?>(LoadAsync(key, entry, now, load));
    }

    /// <summary>Drops an entry at once; a load already in flight is not re-inserted.</summary>
    public void Invalidate(string key) => entries.TryRemove(key, out _);

    private async Task<TValue?> LoadAsync(string key, Entry? expired, long now, Func<string, Task<TValue?>> load)
    {
        if (entries.Count >= Volatile.Read(ref sweepAt))
        {
            Sweep(now);
            expired = entries.TryGetValue(key, out var current) ? current : null;
        }

        var source = new TaskCompletionSource<TValue?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var mine = new Entry(now, source.Task);
        var installed = expired is null ? entries.TryAdd(key, mine) : entries.TryUpdate(key, mine, expired);
        if (!installed)
        {
            // Another request installed a load first: share its result.
            return entries.TryGetValue(key, out var other) ? await other.Value : await load(key);
        }

        try
        {
            var value = await load(key);
            if (value is null || ttlSeconds() <= 0)
            {
                entries.TryRemove(KeyValuePair.Create(key, mine));
            }

            source.SetResult(value);
            return value;
        }
        catch (Exception e)
        {
            entries.TryRemove(KeyValuePair.Create(key, mine));
            source.SetException(e);
            _ = source.Task.Exception; // observed: the caller below rethrows it
            throw;
        }
    }

    /// <summary>Drops the expired entries (loads in flight stay); all of them if the live ones alone reach maxEntries.</summary>
    private void Sweep(long now)
    {
        lock (sweeping)
        {
            if (entries.Count < sweepAt)
            {
                return;
            }

            var ttl = ttlSeconds();
            foreach (var (key, entry) in entries)
            {
                if (entry.Value.IsCompleted && time.GetElapsedTime(entry.LoadedAt, now).TotalSeconds >= ttl)
                {
                    entries.TryRemove(KeyValuePair.Create(key, entry));
                }
            }

            if (entries.Count >= maxEntries)
            {
                entries.Clear();
            }

            Volatile.Write(ref sweepAt, Math.Max(MinimumSweep, 2 * entries.Count));
        }
    }
}
