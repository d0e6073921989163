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
}
