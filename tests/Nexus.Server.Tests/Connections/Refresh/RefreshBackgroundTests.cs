using System.Net;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections.Refresh;

/// <summary>The background refresher keeps tokens fresh and refresh tokens alive when nobody reads them.</summary>
public sealed class RefreshBackgroundTests
{
    [Fact]
    public async Task TheBackgroundRefresherRefreshesAheadOfExpiryWithoutAnyRead()
    {
        await using var scene = await RefreshScene.StartAsync(background: true);
        // 8 s tokens: with the default margin capped at half the lifetime, due 4 s in, and the background looks
        // up to one interval (1 s) earlier.
        scene.Upstream.ExpiresIn = 8;
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var family = Assert.Single(scene.Upstream.Families.Values);
        var first = family.Chain.Single();

        await scene.Upstream.WaitUntilAsync(u => u.Rotations >= 2, "two background refreshes", TimeSpan.FromSeconds(20));

        var chain = family.Chain.ToList();
        var rotations = scene.Upstream.RefreshCalls.Where(c => c.Outcome == "rotated").ToList();
        for (var i = 0; i < 2; i++)
        {
            // Each token was refreshed before it expired, and not before it was due.
            Assert.InRange(rotations[i].At, chain[i].IssuedAt + 2_800, chain[i].ExpiresAt - 1);
        }

        Assert.Equal(0, scene.Upstream.Reuses);
        Assert.Equal(first.AccessToken, chain[0].AccessToken);
        // Nobody read a credential: the refreshes were the background's.
        var reads = await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}&event=token_read");
        Assert.Equal(0, reads.GetProperty("events").GetArrayLength());
        // A read hands out the background's latest token (the refresher may have rotated once more meanwhile: 8 s tokens).
        var read = await scene.Kit.TokenAsync(id);
        Assert.Contains(read, family.Chain.ToList().Skip(2).Select(t => t.AccessToken));
    }

    [Fact]
    public async Task OneSlowProviderCallDoesNotHoldUpTheOtherBackgroundRefreshes()
    {
        await using var scene = await RefreshScene.StartAsync(background: true, s => s["Nexus:UpstreamTimeoutSeconds"] = "120");
        scene.Upstream.ExpiresIn = 4; // due for the background refresher 1 s after it is issued
        scene.Upstream.RefreshDelay = TimeSpan.FromMinutes(2);
        await scene.Kit.ConnectAsync(scene.Provider);
        await scene.Upstream.WaitUntilAsync(u => u.InFlight == 1, "the first refresh held at the provider");

        // A connection that comes due while the first refresh hangs is refreshed anyway.
        var second = await scene.Kit.ConnectAsync(scene.Provider);
        await scene.Upstream.WaitUntilAsync(u => u.InFlight == 2, "the second refresh started", TimeSpan.FromSeconds(10));

        scene.Upstream.RefreshDelay = TimeSpan.Zero;
        await scene.Upstream.WaitUntilAsync(u => u.Rotations >= 2, "both refreshes done");
        Assert.Equal(HttpStatusCode.OK, (await scene.Kit.ReadAsync(second)).Status);
        Assert.Equal(0, scene.Upstream.Reuses);
    }

    [Fact]
    public async Task KeepAliveUsesAnIdleRefreshTokenWhoseAccessTokenIsLongLived()
    {
        await using var scene = await RefreshScene.StartAsync(background: true, s => s["Nexus:Refresh:KeepAliveSeconds"] = "3600");
        scene.Upstream.ExpiresIn = 30 * 86_400;
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        await scene.RefresherSettledAsync();
        Assert.Equal(0, scene.Upstream.Rotations);

        scene.Server.Time.Advance(TimeSpan.FromSeconds(3601));
        await scene.Upstream.WaitUntilAsync(u => u.Rotations == 1, "a keep-alive refresh");
        await scene.RefresherSettledAsync();
        Assert.Equal(1, scene.Upstream.Rotations);
        Assert.Equal(HttpStatusCode.OK, (await scene.Kit.ReadAsync(id)).Status);
    }

    [Fact]
    public async Task ANewConnectionIsScheduledInTheWriteThatActivatesItNotByAFirstPassOfTheRefresher()
    {
        // The background refresher is off: whatever schedule the connection has, its activation wrote.
        await using var scene = await RefreshScene.StartAsync();
        var issued = scene.NexusNow;
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        // 3600 s token, the default 300 s margin and the 1 s look-ahead (one polling interval).
        Assert.InRange((await scene.ColumnAsync(id, "next_refresh_at"))!.Value - issued, (3600 - 301) * 1000L - 2000, (3600 - 301) * 1000L + 1000);
        var connection = await scene.Kit.ExpectAsync(HttpMethod.Get, $"/v1/connections/{id}", null, HttpStatusCode.OK);
        Assert.InRange(connection.GetProperty("next_refresh_at").GetInt64() * 1000 - issued, (3600 - 301) * 1000L - 2000, (3600 - 301) * 1000L + 1000);
        Assert.Equal(0, scene.Upstream.Rotations);
    }

    [Fact]
    public async Task AChangedProviderMarginReschedulesItsConnections()
    {
        await using var scene = await RefreshScene.StartAsync(background: true);
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var issued = scene.NexusNow;
        // Scheduled with the default 300 s margin (and the 1 s look-ahead), by the activation itself.
        Assert.InRange((await scene.ColumnAsync(id, "next_refresh_at"))!.Value - issued, (3600 - 301) * 1000L - 2000, (3600 - 301) * 1000L + 1000);
        // The refresher has seen the provider with its old margin (it compares margins from one pass to the next).
        await scene.RefresherSettledAsync();

        await scene.Kit.ExpectAsync(HttpMethod.Patch, $"/v1/providers/{scene.Provider}", new { refresh_margin_seconds = 900 }, HttpStatusCode.OK);
        Assert.Equal(900, (await scene.Kit.ExpectAsync(HttpMethod.Get, $"/v1/providers/{scene.Provider}", null, HttpStatusCode.OK)).GetProperty("refresh_margin_seconds").GetInt32());
        // The PATCH first marks the provider's connections due now (next_refresh_at = 0) for the background refresher
        // to reschedule; that intermediate 0 is not the new schedule.
        await RefreshKit.EventuallyAsync(async () => await scene.ColumnAsync(id, "next_refresh_at") is { } next and > 0 && next - issued < (3600 - 800) * 1000L,
            "the new margin in the schedule", TimeSpan.FromSeconds(15));
        Assert.InRange((await scene.ColumnAsync(id, "next_refresh_at"))!.Value - issued, (3600 - 901) * 1000L - 2000, (3600 - 901) * 1000L + 1000);
        Assert.Equal(0, scene.Upstream.Rotations);
    }

    [Fact]
    public async Task ARefreshMarginOutsideItsRangeIsRefusedWithAFieldError()
    {
        await using var scene = await RefreshScene.StartAsync();
        var problem = await scene.Kit.ExpectAsync(HttpMethod.Patch, $"/v1/providers/{scene.Provider}", new { refresh_margin_seconds = -1 }, HttpStatusCode.BadRequest);
        Assert.True(problem.GetProperty("errors").TryGetProperty("refresh_margin_seconds", out _));
    }
}
