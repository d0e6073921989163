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

    /// <summary>A clock that moves only when told (the cache measures ages with timestamps).</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long ticks = 1;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref ticks);

        public void Advance(TimeSpan by) => Interlocked.Add(ref ticks, by.Ticks);
    }
}
