using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections.Refresh;

/// <summary>These tests run real Nexus processes and load the machine: they run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RefreshClusterGroup
{
    public const string Name = "Refresh cluster (real processes)";
}

/// <summary>
/// Nexus as an operator runs it: separate processes on one database, behind a load balancer, one of them killed
/// with SIGKILL while refreshes are in flight. The upstream rotates refresh tokens and revokes the grant on any reuse,
/// so a refresh done twice shows up as a failed read.
/// </summary>
[Collection(RefreshClusterGroup.Name)]
public sealed class RefreshClusterTests
{
    /// <summary>
    /// 30 s by default to keep CI short (the issue asks for a minute); NEXUS_REFRESH_SOAK_SECONDS=60 runs the full minute.
    /// </summary>
    private static TimeSpan SoakDuration => TimeSpan.FromSeconds(
        int.TryParse(Environment.GetEnvironmentVariable("NEXUS_REFRESH_SOAK_SECONDS"), NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : 30);

    [Fact]
    public async Task TwoInstancesOnOnePostgresServeFiveHundredConcurrentReadsWithoutAFailedReadOrAReusedRefreshToken()
    {
        Assert.SkipUnless(TestDatabase.UsePostgres,
            "Several Nexus instances need PostgreSQL (row locks with SKIP LOCKED); on SQLite Nexus runs as one instance only.");
        await using var upstream = await RotatingProvider.StartAsync();
        await using var db = await TestDatabase.CreateAsync();
        var shared = NexusServerProcess.SharedSettings();
        shared["Nexus__Refresh__IntervalSeconds"] = "1";
        await using var a = await NexusServerProcess.StartAsync(db, shared);
        await using var b = await NexusServerProcess.StartAsync(db, shared);
        using var kit = new RefreshKit(a.Http, shared["API_KEY"]!);

        // Tokens live 4 s; with a 1 s margin a read refreshes 3 s in, the background refresher half a second earlier.
        upstream.ExpiresIn = 4;
        const long refreshDueAfterMs = 4000 - 1000 - 500;
        var provider = await kit.RegisterAsync(upstream, new { refresh_margin_seconds = 1 });
        var ids = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            ids.Add(await kit.ConnectAsync(provider));
        }

        var failures = new ConcurrentQueue<string>();
        long reads = 0;
        var end = DateTime.UtcNow + SoakDuration;
        var readers = Enumerable.Range(0, 500).Select(async reader =>
        {
            // The load balancer: every other request goes to the other instance.
            var instances = new[] { a.Http, b.Http };
            var turn = reader;
            while (DateTime.UtcNow < end)
            {
                var id = ids[Random.Shared.Next(ids.Count)];
                var sentAt = RotatingProvider.Now;
                var (status, token, body) = await kit.ReadAsync(id, instances[turn++ % 2]);
                if (status != HttpStatusCode.OK)
                {
                    failures.Enqueue($"{(int)status} {body}");
                }
                else if (!upstream.Accepts(token!, sentAt))
                {
                    failures.Enqueue($"a token the provider no longer accepts was served for {id}");
                }

                Interlocked.Increment(ref reads);
            }
        }).ToList();
        await Task.WhenAll(readers);
        var endMs = RotatingProvider.Now;

        Assert.True(failures.IsEmpty, $"{failures.Count} of {reads} reads failed, e.g. {string.Join(" | ", failures.Take(5))}\nA: {a.Output}\nB: {b.Output}");
        Assert.Equal(0, upstream.Reuses);

        // Refreshes equal expiries: every token that expired during the run had been replaced by exactly one refresh
        // (a second one would have been a reuse), and no token was refreshed before it was due (which would be a
        // refresh too many). The only refreshes without an expiry are of tokens whose expiry falls after the run.
        var rotations = upstream.RefreshCalls.Where(c => c.Outcome == "rotated" && c.At <= endMs).ToList();
        Assert.All(rotations, r => Assert.True(r.At >= r.Presented!.IssuedAt + refreshDueAfterMs - 50,
            $"a token issued at {r.Presented.IssuedAt} was refreshed {r.At - r.Presented.IssuedAt} ms later, before it was due"));
        var expired = 0;
        foreach (var family in upstream.Families.Values)
        {
            var chain = family.Chain.ToList();
            for (var i = 0; i < chain.Count; i++)
            {
                if (chain[i].ExpiresAt <= endMs)
                {
                    expired++;
                    Assert.True(i < chain.Count - 1, $"a token of {family.Id} expired at {chain[i].ExpiresAt} without a refresh");
                }
            }
        }

        Assert.InRange(rotations.Count, expired, expired + ids.Count);
        Assert.True(rotations.Count >= ids.Count * (SoakDuration.TotalSeconds / 4 - 1), $"only {rotations.Count} refreshes");
        TestContext.Current.SendDiagnosticMessage($"{reads} reads over two instances, {rotations.Count} refreshes, {expired} expiries, 0 reuses");
    }

    [Fact]
    public async Task AnInstanceKilledInTheMiddleOfRefreshesLeavesNoConnectionStuckOrLost()
    {
        await using var upstream = await RotatingProvider.StartAsync();
        await using var db = await TestDatabase.CreateAsync();
        var shared = NexusServerProcess.SharedSettings();
        shared["Nexus__Refresh__IntervalSeconds"] = "1";
        shared["Nexus__Refresh__Concurrency"] = "8";
        // The provider holds refreshes for 150 s: Nexus (120 s) must not give up on them (and start another) before the kill,
        // or a slow machine would see two calls for one connection and the count below would not mean what it says.
        shared["Nexus__UpstreamTimeoutSeconds"] = "120";
        // Disposed (killed) however the test ends; the kill below is the one the test is about.
        await using var first = await NexusServerProcess.StartAsync(db, shared);
        using var kit = new RefreshKit(first.Http, shared["API_KEY"]!);
        var provider = await kit.RegisterAsync(upstream);

        // 6 s tokens, due 2 s after they are issued; the provider holds every refresh before doing anything.
        upstream.ExpiresIn = 6;
        upstream.RefreshDelay = TimeSpan.FromSeconds(150);
        var ids = new List<string>();
        for (var i = 0; i < 12; i++)
        {
            ids.Add(await kit.ConnectAsync(provider));
        }

        // The background refresher has taken the first 8 (its concurrency) to the provider. Once the tokens are due
        // for reads too (3 s in), reads join those refreshes or start their own, and wait with them.
        await upstream.WaitUntilAsync(u => u.InFlight >= 8, "refreshes in flight", TimeSpan.FromSeconds(60));
        await Task.Delay(TimeSpan.FromSeconds(3.5));
        var stranded = ids.Select(id => kit.ReadAsync(id, first.Http)).ToList();
        await upstream.WaitUntilAsync(u => u.InFlight == ids.Count, "every connection's refresh in flight", TimeSpan.FromSeconds(40));
        Assert.All(stranded, read => Assert.False(read.IsCompleted));

        await first.KillAsync();
        foreach (var read in stranded)
        {
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => read);
        }

        await upstream.WaitUntilAsync(u => u.InFlight == 0, "the provider to notice the dead client");
        Assert.Equal(ids.Count, upstream.RefreshCalls.Count(c => c.Outcome == "abandoned"));
        Assert.Equal(0, upstream.Rotations);
        upstream.RefreshDelay = TimeSpan.Zero;

        // Restart: on PostgreSQL the dead sessions' row locks are gone with them; nothing else was left behind.
        var restartedAt = RotatingProvider.Now;
        await using var second = await NexusServerProcess.StartAsync(db, shared);
        using var secondKit = new RefreshKit(second.Http, shared["API_KEY"]!);
        await upstream.WaitUntilAsync(
            u => u.Families.Values.All(f => u.RefreshCalls.Any(c => c.FamilyId == f.Id && c.Outcome == "rotated" && c.At > restartedAt)),
            "every connection refreshed after the restart", TimeSpan.FromSeconds(60));

        foreach (var id in ids)
        {
            var (status, token, body) = await secondKit.ReadAsync(id);
            Assert.True(status == HttpStatusCode.OK, $"{id}: {(int)status} {body}\n{second.Output}");
            Assert.True(upstream.Accepts(token!, RotatingProvider.Now));
            Assert.Equal("active", (await secondKit.ConnectionAsync(id)).GetProperty("status").GetString());
        }

        Assert.Equal(0, upstream.Reuses);
        Assert.Equal(12, upstream.Families.Count);
    }
}
