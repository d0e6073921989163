using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections.Refresh;

/// <summary>GET /v1/token refreshes a token within its margin, against a provider that rotates refresh tokens and punishes reuse.</summary>
public sealed class RefreshOnReadTests
{
    [Fact]
    public async Task AReadWithinTheMarginGetsAFreshTokenAndTheRotatedRefreshTokenReplacesTheOldOne()
    {
        await using var scene = await RefreshScene.StartAsync(provider: new { refresh_margin_seconds = 60 });
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = await scene.Kit.TokenAsync(id);

        // 90 s before expiry the token is still served as it is. (Nexus's clock is real time plus the advances, so each
        // step leaves room for the seconds a loaded machine takes between the calls.)
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3600 - 90));
        Assert.Equal(first, await scene.Kit.TokenAsync(id));
        Assert.Equal(0, scene.Upstream.Rotations);

        // Within the margin (at most 59 s left) the read refreshes first.
        scene.Server.Time.Advance(TimeSpan.FromSeconds(31));
        var second = await scene.Kit.TokenAsync(id);
        Assert.NotEqual(first, second);
        Assert.True(scene.Upstream.Accepts(second, RotatingProvider.Now));
        Assert.Equal(1, scene.Upstream.Rotations);
        var connection = await scene.Kit.ConnectionAsync(id);
        Assert.InRange(connection.GetProperty("expires_at").GetInt64(), scene.NexusNow / 1000 + 3590, scene.NexusNow / 1000 + 3601);

        // The next refresh presents the rotated refresh token: a reuse of the first one would revoke the grant.
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3600 - 59));
        var third = await scene.Kit.TokenAsync(id);
        Assert.NotEqual(second, third);
        Assert.Equal(2, scene.Upstream.Rotations);
        Assert.Equal(0, scene.Upstream.Reuses);
        Assert.NotNull(await scene.ColumnAsync(id, "last_refreshed_at"));
    }

    [Fact]
    public async Task AProviderThatOmitsTheRefreshTokenKeepsTheStoredOneAndTheNextRefreshStillWorks()
    {
        await using var scene = await RefreshScene.StartAsync(provider: new { refresh_margin_seconds = 60 });
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = await scene.Kit.TokenAsync(id);

        // Google answers refreshes without refresh_token: the stored one must survive, not be overwritten with null.
        scene.Upstream.OmitRefreshToken = true;
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3600 - 30));
        var second = await scene.Kit.TokenAsync(id);
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3600 - 30));
        var third = await scene.Kit.TokenAsync(id);

        // And when the provider starts rotating again, the new token replaces it.
        scene.Upstream.OmitRefreshToken = false;
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3600 - 30));
        var fourth = await scene.Kit.TokenAsync(id);
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3600 - 30));
        var fifth = await scene.Kit.TokenAsync(id);

        Assert.Equal(5, new[] { first, second, third, fourth, fifth }.Distinct().Count());
        Assert.Equal(4, scene.Upstream.Rotations);
        Assert.Equal(0, scene.Upstream.Reuses);
        Assert.Equal("active", (await scene.Kit.ConnectionAsync(id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task AShortLivedTokenIsRefreshedAtHalfItsLifetimeNotOnEveryRead()
    {
        await using var scene = await RefreshScene.StartAsync();
        // 120 s tokens and the default 300 s margin: the margin is capped at half the lifetime (60 s).
        scene.Upstream.ExpiresIn = 120;
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = await scene.Kit.TokenAsync(id);
        scene.Server.Time.Advance(TimeSpan.FromSeconds(40));
        Assert.Equal(first, await scene.Kit.TokenAsync(id));

        scene.Server.Time.Advance(TimeSpan.FromSeconds(22));
        var second = await scene.Kit.TokenAsync(id);
        Assert.NotEqual(first, second);
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(second, await scene.Kit.TokenAsync(id));
        }

        Assert.Equal(1, scene.Upstream.Rotations);
    }

    [Fact]
    public async Task TwoHundredConcurrentReadsOfAnExpiredTokenShareOneRefresh()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = await scene.Kit.TokenAsync(id);
        scene.Upstream.RefreshDelay = TimeSpan.FromMilliseconds(300); // so that every reader arrives while it is in flight
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3601));

        var reads = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => scene.Kit.ReadAsync(id)));

        Assert.All(reads, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        var tokens = reads.Select(r => r.AccessToken).Distinct().ToList();
        Assert.NotEqual(first, Assert.Single(tokens));
        Assert.Equal(1, scene.Upstream.Rotations);
        Assert.Equal(0, scene.Upstream.Reuses);
    }

    [Fact]
    public async Task AManualRefreshGetsANewTokenEvenWhenTheCurrentOneIsFresh()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = await scene.Kit.TokenAsync(id);

        var refreshed = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/refresh/{id}", null, HttpStatusCode.OK);
        Assert.Equal(id, refreshed.GetProperty("connection_id").GetString());
        Assert.Equal("active", refreshed.GetProperty("status").GetString());
        var second = await scene.Kit.TokenAsync(id);
        Assert.NotEqual(first, second);
        Assert.Equal(1, scene.Upstream.Rotations);

        await scene.Kit.ExpectAsync(HttpMethod.Post, "/v1/refresh/conn_doesnotexist", null, HttpStatusCode.NotFound);
        var audit = await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}&event=refreshed");
        Assert.Equal("refreshed", Assert.Single(audit.GetProperty("events").EnumerateArray()).GetProperty("detail").GetProperty("outcome").GetString());
    }

    [Fact]
    public async Task ConcurrentManualRefreshesRefreshOnceAndReuseTheResult()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        // The provider holds the refresh until all 20 callers have joined it (each has read the row by then); a caller
        // that arrived after a refresh finished would rightly get a refresh of its own, so the test does not race that.
        var refresher = scene.Server.Services.GetRequiredService<Nexus.Server.Connections.Refresh.ConnectionRefresher>();
        var joinsBefore = refresher.Joins;
        scene.Upstream.RefreshDelay = TimeSpan.FromMinutes(5);
        var sending = Task.WhenAll(Enumerable.Range(0, 20).Select(_ => scene.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}")));
        await RefreshKit.EventuallyAsync(() => Task.FromResult(refresher.Joins - joinsBefore >= 20), "all 20 manual refreshes joining the one in flight", TimeSpan.FromSeconds(60));
        scene.Upstream.RefreshDelay = TimeSpan.Zero;
        var answers = await sending;
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        Assert.Equal(1, scene.Upstream.Rotations);
        Assert.Equal(0, scene.Upstream.Reuses);
    }

    [Fact]
    public async Task AConnectionWithoutARefreshTokenCannotBeRefreshedByHand()
    {
        await using var scene = await RefreshScene.StartAsync();
        scene.Upstream.RefreshTokenOnConsent = false;
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var problem = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/refresh/{id}", null, HttpStatusCode.Conflict);
        Assert.Equal("refresh_not_supported", problem.GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.OK, (await scene.Kit.ReadAsync(id)).Status);
    }
}
