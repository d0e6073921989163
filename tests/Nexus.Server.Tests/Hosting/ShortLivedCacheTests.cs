using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

public sealed class ShortLivedCacheTests
{
    private sealed record Row(string Value);

    [Fact]
    public async Task ConcurrentMissesShareOneLoadAndHitsNeedNone()
    {
        var loads = 0;
        var gate = new TaskCompletionSource();
        var cache = new ShortLivedCache<Row>(new OffsetTimeProvider(), () => 60);
        async Task<Row?> Load(string key)
        {
            Interlocked.Increment(ref loads);
            await gate.Task;
            return new Row(key);
        }

        var waiting = Enumerable.Range(0, 32).Select(_ => cache.GetAsync("k", Load).AsTask()).ToList();
        gate.SetResult();
        Assert.All(await Task.WhenAll(waiting), r => Assert.Equal("k", r!.Value));
        Assert.Equal("k", (await cache.GetAsync("k", Load))!.Value);
        Assert.Equal(1, loads);
    }

    [Fact]
    public async Task InvalidationAndExpiryLoadAgainAndUnknownKeysAreNotCached()
    {
        var loads = 0;
        var ttl = 60;
        var cache = new ShortLivedCache<Row>(TimeProvider.System, () => ttl);
        Task<Row?> Load(string key)
        {
            Interlocked.Increment(ref loads);
            return Task.FromResult<Row?>(key == "missing" ? null : new Row(key));
        }

        await cache.GetAsync("k", Load);
        cache.Invalidate("k");
        await cache.GetAsync("k", Load);
        Assert.Equal(2, loads);
        ttl = 0;
        await cache.GetAsync("k", Load);
        Assert.Equal(3, loads);
        Assert.Null(await cache.GetAsync("missing", Load));
        Assert.Null(await cache.GetAsync("missing", Load));
        Assert.Equal(5, loads);
    }

    [Fact]
    public async Task KeysReadOnceAtRandomDoNotPileUpPastOneTtlOfReads()
    {
        // 1,000 reads a second of distinct keys (a million connections read at random), a 5-second TTL: about 5,000
        // entries are live at any time. The expired ones are swept instead of kept until maxEntries.
        var clock = new ManualClock();
        var cache = new ShortLivedCache<Row>(clock, () => 5);
        var largest = 0;
        for (var i = 0; i < 50_000; i++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(1));
            await cache.GetAsync("k" + i, key => Task.FromResult<Row?>(new Row(key)));
            largest = Math.Max(largest, cache.Count);
        }

        Assert.InRange(largest, 5_000, (2 * 5_000) + ShortLivedCache<Row>.MinimumSweep);
        // A key read again within its TTL is still a hit after the sweeps.
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal("k49999", (await cache.GetAsync("k49999", _ => throw new InvalidOperationException("a hit needs no load")))!.Value);
    }

    [Fact]
    public async Task ConcurrentReadsAndInvalidationsKeepTheSweepsOnTime()
    {
        // The sweep follows a count kept as entries come and go (not ConcurrentDictionary.Count, which takes every
        // lock): with four readers at once, half of whose keys are invalidated again, the cache still holds no more
        // than about one TTL of reads.
        var clock = new ManualClock();
        var cache = new ShortLivedCache<Row>(clock, () => 5);
        var largest = 0;
        await Task.WhenAll(Enumerable.Range(0, 4).Select(reader => Task.Run(async () =>
        {
            for (var i = 0; i < 12_500; i++)
            {
                clock.Advance(TimeSpan.FromMilliseconds(0.25));
                var key = $"r{reader}-{i}";
                await cache.GetAsync(key, k => Task.FromResult<Row?>(new Row(k)));
                if (i % 2 == 0)
                {
                    cache.Invalidate(key);
                }

                var count = cache.Count;
                int seen;
                do
                {
                    seen = Volatile.Read(ref largest);
                }
                while (count > seen && Interlocked.CompareExchange(ref largest, count, seen) != seen);
            }
        })));

        // 4,000 reads a second, half of them dropped at once: about 10,000 live, swept at twice that at most.
        Assert.InRange(largest, 5_000, (2 * 10_000) + ShortLivedCache<Row>.MinimumSweep);
    }

    [Fact]
    public async Task WithTheDoorkeeperAKeyReadOnceIsNotKeptAndAKeyReadAgainIs()
    {
        var clock = new ManualClock();
        var loads = 0;
        var cache = new ShortLivedCache<Row>(clock, () => 5, admitOnSecondRead: true);
        Task<Row?> Load(string key)
        {
            Interlocked.Increment(ref loads);
            return Task.FromResult<Row?>(new Row(key));
        }

        // 50,000 keys read once each (a job walking every connection): next to nothing is kept. Two keys whose 32-bit
        // hashes are equal (among 50,000 keys, about one chance in four that some pair is) share a slot, and the second
        // of them can be taken for the first's second read: harmless, a row cached that did not need to be.
        for (var i = 0; i < 50_000; i++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(1));
            await cache.GetAsync("once-" + i, Load);
        }

        Assert.InRange(cache.Count, 0, 5);

        // A key read again within the TTL is kept from its second read on: the third read needs no load.
        cache = new ShortLivedCache<Row>(clock, () => 5, admitOnSecondRead: true);
        loads = 0;
        await cache.GetAsync("hot", Load);
        clock.Advance(TimeSpan.FromSeconds(1));
        await cache.GetAsync("hot", Load);
        await cache.GetAsync("hot", Load);
        Assert.Equal(2, loads);

        // Once its entry has expired, the reload is kept at once (the key was kept before), and the bound holds: the
        // value is reloaded after one TTL, not served older.
        clock.Advance(TimeSpan.FromSeconds(6));
        await cache.GetAsync("hot", Load);
        await cache.GetAsync("hot", Load);
        Assert.Equal(3, loads);

        // A key whose second read comes later than one TTL after its first is not kept on that read.
        await cache.GetAsync("slow", Load);
        clock.Advance(TimeSpan.FromSeconds(6));
        await cache.GetAsync("slow", Load);
        Assert.Equal(1, cache.Count); // "hot" only
    }

    [Fact]
    public async Task WithATtlOfZeroNothingIsKeptButConcurrentMissesStillShareOneLoad()
    {
        var loads = 0;
        var gate = new TaskCompletionSource();
        var cache = new ShortLivedCache<Row>(TimeProvider.System, () => 0);
        async Task<Row?> Load(string key)
        {
            Interlocked.Increment(ref loads);
            await gate.Task;
            return new Row(key);
        }

        var waiting = Enumerable.Range(0, 8).Select(_ => cache.GetAsync("k", Load).AsTask()).ToList();
        gate.SetResult();
        Assert.All(await Task.WhenAll(waiting), r => Assert.Equal("k", r!.Value));
        Assert.Equal(1, loads);
        Assert.Equal(0, cache.Count);
    }

    /// <summary>A value that says how long it lives, as temporary credentials do.</summary>
    private sealed record Expiring(string Value, DateTimeOffset FreshUntil, DateTimeOffset UsableUntil);

    private sealed class TransientFailure : Exception;

    private static ShortLivedCache<Expiring> ExpiringCache(TimeProvider time) => new(time, new EntryDeadlines<Expiring>(
        e => e.FreshUntil, e => e.UsableUntil, e => e is TransientFailure ? TimeSpan.FromSeconds(5) : null));

    [Fact]
    public async Task EachEntryLivesUntilItsOwnDeadline()
    {
        var time = new OffsetTimeProvider();
        var cache = ExpiringCache(time);
        var loads = new Dictionary<string, int>();
        Task<Expiring?> Load(string key)
        {
            loads[key] = loads.GetValueOrDefault(key) + 1;
            var life = TimeSpan.FromSeconds(key == "short" ? 10 : 60);
            var now = time.GetUtcNow();
            return Task.FromResult<Expiring?>(new Expiring(key, now + life, now + life + TimeSpan.FromSeconds(30)));
        }

        await cache.GetAsync("short", Load);
        await cache.GetAsync("long", Load);
        time.Advance(TimeSpan.FromSeconds(9));
        await cache.GetAsync("short", Load);
        Assert.Equal(1, loads["short"]);

        time.Advance(TimeSpan.FromSeconds(2));
        await cache.GetAsync("short", Load);
        await cache.GetAsync("long", Load);
        Assert.Equal(2, loads["short"]);
        Assert.Equal(1, loads["long"]);

        // A sweep drops what is past being usable, and only that: at 81 s "short" (usable until 51 s) goes, "long"
        // (usable until 90 s) stays until then.
        time.Advance(TimeSpan.FromSeconds(70));
        cache.Sweep();
        Assert.Equal(1, cache.Count);
        time.Advance(TimeSpan.FromSeconds(10));
        cache.Sweep();
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public async Task AFailedReloadServesTheLastValueWhileUsableAndLoadsNoMoreOftenThanTheRetryTime()
    {
        var time = new OffsetTimeProvider();
        var cache = ExpiringCache(time);
        var loads = 0;
        Exception? failure = null;
        Task<Expiring?> Load(string key)
        {
            loads++;
            var now = time.GetUtcNow();
            return failure is not null ? Task.FromException<Expiring?>(failure) : Task.FromResult<Expiring?>(new Expiring(key + loads, now + TimeSpan.FromSeconds(10), now + TimeSpan.FromSeconds(30)));
        }

        Assert.Equal("k1", (await cache.GetAsync("k", Load))!.Value);
        failure = new TransientFailure();
        time.Advance(TimeSpan.FromSeconds(11));
        // Stale but usable: served, and the failure is not asked again for 5 seconds.
        Assert.Equal("k1", (await cache.GetAsync("k", Load))!.Value);
        Assert.Equal("k1", (await cache.GetAsync("k", Load))!.Value);
        Assert.Equal(2, loads);
        time.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal("k1", (await cache.GetAsync("k", Load))!.Value);
        Assert.Equal(3, loads);

        // Past its usable time the failure shows, and is itself remembered until the retry time.
        time.Advance(TimeSpan.FromSeconds(14));
        await Assert.ThrowsAsync<TransientFailure>(async () => await cache.GetAsync("k", Load));
        await Assert.ThrowsAsync<TransientFailure>(async () => await cache.GetAsync("k", Load));
        Assert.Equal(4, loads);

        // Recovered: the next load after the retry time is served.
        failure = null;
        time.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal("k5", (await cache.GetAsync("k", Load))!.Value);
    }

    [Fact]
    public async Task ADefiniteFailureDropsTheEntryAndTheNextReadLoadsAgain()
    {
        var time = new OffsetTimeProvider();
        var cache = ExpiringCache(time);
        var loads = 0;
        Task<Expiring?> Load(string key)
        {
            loads++;
            var now = time.GetUtcNow();
            return loads == 4 ? Task.FromException<Expiring?>(new InvalidOperationException("refused"))
                : Task.FromResult<Expiring?>(new Expiring(key, now + TimeSpan.FromSeconds(10), now + TimeSpan.FromSeconds(30)));
        }

        await cache.GetAsync("owner\na", Load);
        await cache.GetAsync("owner\nb", Load);
        await cache.GetAsync("other\na", Load);
        time.Advance(TimeSpan.FromSeconds(11));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await cache.GetAsync("owner\na", Load));
        Assert.Equal(2, cache.Count);
        await cache.GetAsync("owner\na", Load);
        Assert.Equal(5, loads);

        // One owner's entries go together.
        cache.InvalidatePrefix("owner\n");
        Assert.Equal(1, cache.Count);
    }

    /// <summary>A clock that moves only when told (the cache measures ages with timestamps).</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long ticks = 1;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref ticks);

        public void Advance(TimeSpan by) => Interlocked.Add(ref ticks, by.Ticks);
    }
}
