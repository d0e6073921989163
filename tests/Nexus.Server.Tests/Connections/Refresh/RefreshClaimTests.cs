using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections.Refresh;

/// <summary>
/// The background refreshers of several instances take their batches by claiming them (issue 20, refresh storm): each
/// due connection goes to one refresher's batch, the oldest first, and comes back when the claim runs out or once the
/// refresh engine has written the connection. Each store here has its own connection pool, as an instance has.
/// </summary>
public sealed class RefreshClaimTests
{
    private const int Connections = 30;

    /// <summary>Far after every next_refresh_at the test sets: everything is due at this instant.</summary>
    private const long Now = 1_000_000;

    [Fact]
    public async Task RefreshersClaimingAtOnceGetDisjointBatchesOldestFirstUntilTheClaimsRunOut()
    {
        await using var scene = await RefreshScene.StartAsync();
        var ids = await DueConnectionsAsync(scene);
        var stores = Enumerable.Range(0, 3).Select(_ => NewInstanceStore(scene)).ToList();
        try
        {
            // Three refreshers at the same instant, twice (on PostgreSQL a claim that met another's row lock passes it by,
            // so one round may leave a few): every connection is claimed, none by two.
            var claimed = new List<string>();
            for (var round = 0; round < 2; round++)
            {
                var batches = await Task.WhenAll(stores.Select(s => s.Store.ClaimDueAsync(Now, 12, Now + 10_000, CancellationToken.None)));
                claimed.AddRange(batches.SelectMany(b => b));
            }

            Assert.Equal(claimed.Count, claimed.Distinct().Count());
            Assert.Equal(ids.Order(), claimed.Order());

            // Claimed, they are nobody else's until the claim runs out; then they are due again, oldest first.
            Assert.Empty(await stores[0].Store.ClaimDueAsync(Now + 9_999, 100, Now + 20_000, CancellationToken.None));
            var again = await stores[1].Store.ClaimDueAsync(Now + 10_000, 5, Now + 20_000, CancellationToken.None);
            Assert.Equal(ids.Take(5), again);
        }
        finally
        {
            stores.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task AWriteOfTheRefreshEngineEndsTheClaimOfItsConnection()
    {
        await using var scene = await RefreshScene.StartAsync();
        var ids = await DueConnectionsAsync(scene);
        var store = scene.Server.Services.GetRequiredService<RefreshStore>();
        Assert.Equal(ids, await store.ClaimDueAsync(Now, 100, Now + 60_000, CancellationToken.None));

        // A refresh that failed transiently is retried when its backoff ends, not when the claim would have run out.
        await using (var held = await store.LockAsync(ids[3], skipLocked: true))
        {
            await RefreshStore.FailTransientlyAsync(held, ids[3], failures: 1, retryAt: Now + 2_000, "provider_timeout", null);
            await held.CommitAsync();
        }

        Assert.Empty(await store.ClaimDueAsync(Now + 1_999, 100, Now + 60_000, CancellationToken.None));
        Assert.Equal([ids[3]], await store.ClaimDueAsync(Now + 2_000, 100, Now + 60_000, CancellationToken.None));
    }

    /// <summary>Connects <see cref="Connections"/> connections and makes them due, the first the oldest.</summary>
    private static async Task<List<string>> DueConnectionsAsync(RefreshScene scene)
    {
        var ids = new List<string>();
        for (var i = 0; i < Connections; i++)
        {
            ids.Add(await scene.Kit.ConnectAsync(scene.Provider));
        }

        await using var connection = await scene.Server.Services.GetRequiredService<NexusDatabase>().OpenAsync();
        for (var i = 0; i < ids.Count; i++)
        {
            await connection.ExecuteAsync("UPDATE connections SET next_refresh_at = @due WHERE id = @id", new { due = 1000 + i, id = ids[i] });
        }

        return ids;
    }

    /// <summary>A refresh store with a database connection pool of its own, as another Nexus instance has.</summary>
    private static InstanceStore NewInstanceStore(RefreshScene scene)
    {
        var options = scene.Server.Services.GetRequiredService<NexusOptions>();
        var database = new NexusDatabase(options);
        return new InstanceStore(database, new RefreshStore(database, options));
    }

    private sealed record InstanceStore(NexusDatabase Database, RefreshStore Store) : IDisposable
    {
        public void Dispose()
        {
            Store.Dispose();
            Database.Dispose();
        }
    }
}
