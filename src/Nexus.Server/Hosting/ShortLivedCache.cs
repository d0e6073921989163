namespace Nexus.Server.Hosting;

/// <summary>
/// How long each entry of a <see cref="ShortLivedCache{TValue}"/> lives when the value itself says so (temporary
/// credentials that carry their own expiry), instead of one time-to-live for every entry.
/// </summary>
/// <param name="FreshUntil">Until when a loaded value is served without a new load (e.g. its expiry minus a margin).</param>
/// <param name="UsableUntil">
/// Until when a value may stand in for a reload that failed with a failure <paramref name="RetryAfter"/> calls
/// passing; the entry is swept after it.
/// </param>
/// <param name="RetryAfter">
/// For a failed load: null when the failure is definite (the entry goes, the next read loads again); otherwise how
/// long no new load is made for the key, the entry serving the last value while it is usable, else the failure.
/// </param>
internal sealed record EntryDeadlines<TValue>(Func<TValue, DateTimeOffset> FreshUntil, Func<TValue, DateTimeOffset> UsableUntil, Func<Exception, TimeSpan?> RetryAfter);

/// <summary>
/// A per-instance cache for hot read paths. Loads are single-flight: when an entry expires under load, one request
/// loads it and the concurrent ones await that same load instead of all querying at once (which, at 32 concurrent
/// requests, showed up as p99 spikes every TTL). Unknown keys (a null load) are never cached: the key space is
/// unbounded. Expired entries are swept whenever the cache has doubled since the last sweep, so it holds about what
/// was read within one lifetime (at most twice that, and never more than maxEntries) instead of every key ever read:
/// over a million connections read at random (bench/scale.sh) it used to hold up to maxEntries expired rows.
/// <list type="bullet">
/// <item>With a time-to-live (database rows): one TTL for every entry, which bounds how late a change made by another
/// instance is seen. With a TTL of 0 nothing is kept once loaded; concurrent misses still share one load.</item>
/// <item>With a doorkeeper (<c>admitOnSecondRead</c>, as TinyLFU's): a loaded value is kept only when its key was
/// also read within the TTL before (or was kept before), so keys read once, as when a job walks every connection,
/// cost no entry, no sweep and no garbage that outlives a collection; a key read again is kept from then on. It
/// remembers a key's last miss in one slot of a fixed table (16,384 slots, 128 kB; two keys in a slot push each
/// other out), so it never delays a change and changes no bound: a value is still at most one TTL old.</item>
/// <item>With <see cref="EntryDeadlines{TValue}"/> (temporary credentials): each entry lives as long as its value says,
/// and a reload that fails transiently keeps serving the last value while it is usable, without a new load before
/// the failure's retry time, so an outage of the source neither breaks working callers nor turns every read into a
/// load. Deadlines are read from <see cref="TimeProvider.GetUtcNow"/>, as the values' own expiries are.</item>
/// </list>
/// </summary>
internal sealed class ShortLivedCache<TValue>
    where TValue : class
{
    private sealed class Entry(long loadedAt, Task<TValue?> value)
    {
        public long LoadedAt { get; } = loadedAt;

        public Task<TValue?> Value { get; } = value;

        /// <summary>With deadlines: until when the value (or the failure) is served without a new load. Set before the value completes.</summary>
        public DateTimeOffset FreshUntil { get; set; } = DateTimeOffset.MaxValue;

        /// <summary>With deadlines: until when the value may stand in for a failed reload; swept after it.</summary>
        public DateTimeOffset KeepUntil { get; set; } = DateTimeOffset.MaxValue;
    }

    /// <summary>The fewest entries at which a sweep runs (a small cache is never swept: it costs nothing to keep).</summary>
    internal const int MinimumSweep = 1024;

    // Counted as entries come and go (CountedDictionary): the sweep is decided on every miss.
    private readonly CountedDictionary<string, Entry> entries = new(StringComparer.Ordinal);
    private readonly Lock sweeping = new();
    private readonly TimeProvider time;
    private readonly Func<int> ttlSeconds;
    private readonly EntryDeadlines<TValue>? deadlines;
    private readonly int maxEntries;

    /// <summary>Slots of the doorkeeper: the hash of the key last missed there (high half) and when, in seconds since start (low half).</summary>
    private const int DoorkeeperSlots = 16_384;
    private readonly long[]? doorkeeper;
    private readonly long started;
    private int sweepAt = MinimumSweep;

    /// <summary>A cache whose entries all live <paramref name="ttlSeconds"/> (read at each use, so a setting may change it).</summary>
    /// <param name="admitOnSecondRead">Keep a value only from its key's second read within one TTL (the doorkeeper above).</param>
    public ShortLivedCache(TimeProvider time, Func<int> ttlSeconds, int maxEntries = 200_000, bool admitOnSecondRead = false)
    {
        this.time = time;
        this.ttlSeconds = ttlSeconds;
        this.maxEntries = maxEntries;
        doorkeeper = admitOnSecondRead ? new long[DoorkeeperSlots] : null;
        started = time.GetTimestamp();
    }

    /// <summary>A cache whose entries each live as long as their value says (<see cref="EntryDeadlines{TValue}"/>).</summary>
    public ShortLivedCache(TimeProvider time, EntryDeadlines<TValue> deadlines, int maxEntries = 200_000)
    {
        this.time = time;
        this.deadlines = deadlines;
        ttlSeconds = static () => int.MaxValue;
        this.maxEntries = maxEntries;
    }

    /// <summary>Entries held, expired ones included (for tests).</summary>
    internal int Count => entries.Count;

    public ValueTask<TValue?> GetAsync(string key, Func<string, Task<TValue?>> load) => GetAsync(key, load, static (k, l) => l(k));

    /// <summary>As <see cref="GetAsync(string, Func{string, Task{TValue}})"/>, with the load's arguments passed as <paramref name="state"/> (no closure per read on a hot path).</summary>
    public ValueTask<TValue?> GetAsync<TState>(string key, TState state, Func<string, TState, Task<TValue?>> load)
    {
        var now = time.GetTimestamp();
        if (entries.TryGetValue(key, out var entry))
        {
            if (!entry.Value.IsCompleted)
            {
                return new ValueTask<TValue?>(entry.Value);
            }

            if (deadlines is not null)
            {
                // A value, or a remembered transient failure, until its own deadline.
                if (time.GetUtcNow() < entry.FreshUntil)
                {
                    return entry.Value.IsCompletedSuccessfully ? new ValueTask<TValue?>(entry.Value.Result) : new ValueTask<TValue?>(entry.Value);
                }
            }
            else if (entry.Value.IsCompletedSuccessfully && time.GetElapsedTime(entry.LoadedAt, now).TotalSeconds < ttlSeconds())
            {
                return new ValueTask<TValue?>(entry.Value.Result);
            }
        }

        return new ValueTask<TValue?>(LoadAsync(key, entry, now, state, load));
    }

    /// <summary>Drops an entry at once; a load already in flight is not re-inserted.</summary>
    public void Invalidate(string key) => entries.TryRemove(key);

    /// <summary>Drops every entry whose key starts with <paramref name="prefix"/> (all of one owner's); walks the cache.</summary>
    public void InvalidatePrefix(string prefix)
    {
        foreach (var (key, _) in entries)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                entries.TryRemove(key);
            }
        }
    }

    /// <summary>Drops the expired entries now, whatever the cache's size (loads in flight stay).</summary>
    internal void Sweep() => Sweep(time.GetTimestamp(), force: true);

    private async Task<TValue?> LoadAsync<TState>(string key, Entry? expired, long now, TState state, Func<string, TState, Task<TValue?>> load)
    {
        if (entries.Count >= Volatile.Read(ref sweepAt))
        {
            Sweep(now, force: false);
            expired = entries.TryGetValue(key, out var current) ? current : null;
        }

        var source = new TaskCompletionSource<TValue?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var mine = new Entry(now, source.Task);
        var installed = expired is null ? entries.TryAdd(key, mine) : entries.TryUpdate(key, mine, expired);
        if (!installed)
        {
            // Another request installed a load first: share its result.
            return entries.TryGetValue(key, out var other) ? await other.Value : await load(key, state);
        }

        try
        {
            var value = await load(key, state);
            var ttl = ttlSeconds();
            if (value is null || ttl <= 0 || (doorkeeper is not null && expired is null && !SeenBefore(key, now, ttl)))
            {
                entries.TryRemove(KeyValuePair.Create(key, mine));
            }
            else if (deadlines is not null)
            {
                mine.FreshUntil = deadlines.FreshUntil(value);
                mine.KeepUntil = deadlines.UsableUntil(value);
            }

            source.SetResult(value);
            return value;
        }
        catch (Exception e)
        {
            if (deadlines?.RetryAfter(e) is { } retryAfter)
            {
                // A transient failure: no new load before the retry time; meanwhile the last value while it is usable.
                var at = time.GetUtcNow();
                var last = expired is { Value.IsCompletedSuccessfully: true } && expired.Value.Result is { } previous && at < deadlines.UsableUntil(previous) ? previous : null;
                mine.FreshUntil = at + retryAfter;
                mine.KeepUntil = last is null ? mine.FreshUntil : Max(mine.FreshUntil, deadlines.UsableUntil(last));
                if (last is not null)
                {
                    // Not past the point where it stops being usable, whatever the retry time.
                    mine.FreshUntil = Min(mine.FreshUntil, deadlines.UsableUntil(last));
                    source.SetResult(last);
                    return last;
                }
            }
            else
            {
                entries.TryRemove(KeyValuePair.Create(key, mine));
            }

            source.SetException(e);
            _ = source.Task.Exception; // observed: the caller below rethrows it
            throw;
        }
    }

    /// <summary>
    /// Whether the key's previous miss was within <paramref name="ttl"/> seconds (then it is kept); otherwise this miss
    /// is remembered in its slot. A slot another key took since answers no: that key is simply read once more.
    /// </summary>
    private bool SeenBefore(string key, long now, int ttl)
    {
        var hash = StringComparer.Ordinal.GetHashCode(key);
        ref var slot = ref doorkeeper![(uint)hash % DoorkeeperSlots];
        var seconds = (uint)time.GetElapsedTime(started, now).TotalSeconds;
        var last = Volatile.Read(ref slot);
        if (last != 0 && (int)(last >> 32) == hash && seconds - (uint)last <= (uint)ttl)
        {
            return true;
        }

        Volatile.Write(ref slot, ((long)hash << 32) | seconds);
        return false;
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    /// <summary>Drops the expired entries (loads in flight stay); all of them if the live ones alone reach maxEntries.</summary>
    private void Sweep(long now, bool force)
    {
        lock (sweeping)
        {
            if (!force && entries.Count < sweepAt)
            {
                return;
            }

            var ttl = ttlSeconds();
            var utcNow = time.GetUtcNow();
            foreach (var (key, entry) in entries)
            {
                var expired = deadlines is not null
                    ? utcNow >= entry.FreshUntil && utcNow >= entry.KeepUntil
                    : time.GetElapsedTime(entry.LoadedAt, now).TotalSeconds >= ttl;
                if (entry.Value.IsCompleted && expired)
                {
                    entries.TryRemove(KeyValuePair.Create(key, entry));
                }
            }

            var count = entries.Recount();
            if (count >= maxEntries)
            {
                entries.Clear();
                count = 0;
            }

            Volatile.Write(ref sweepAt, Math.Max(MinimumSweep, 2 * count));
        }
    }
}
