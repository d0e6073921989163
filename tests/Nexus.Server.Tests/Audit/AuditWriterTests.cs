using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Nexus.Server.Audit;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Audit;

/// <summary>
/// token_read events are queued by the read and written in batches off the request path (AuditWriter): a query of
/// the log still sees every read recorded before it, and stopping Nexus writes what is still queued.
/// </summary>
public sealed class AuditWriterTests
{
    [Fact]
    public async Task ReadsOfMoreConnectionsThanOneBatchHoldAreAllInTheLogTheQueryAfterThemReturns()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        var audit = server.Services.GetRequiredService<AuditLog>();
        var count = AuditLog.MaxBatch * 2 + 7;
        for (var i = 0; i < count; i++)
        {
            audit.TokenRead("api_key:ak_batch", "ws_batch", $"conn_batch_{i:D5}");
        }

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var events = await audit.QueryAsync("ws_batch", null, AuditEvents.TokenRead, count + 10, CancellationToken.None);
        Assert.True(count == events.Count, $"{events.Count} of {count} events after {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s");
        Assert.Equal(count, events.Select(e => e.ConnectionId).Distinct().Count());
        Assert.All(events, e =>
        {
            Assert.Equal("api_key:ak_batch", e.Actor);
            Assert.Equal("ws_batch", e.WorkspaceId);
            Assert.Equal(1, e.Detail.GetProperty("reads").GetInt64());
            Assert.Equal(60, e.Detail.GetProperty("interval_seconds").GetInt32());
        });
        // Newest first: the order of the reads, whatever batch wrote them.
        Assert.Equal($"conn_batch_{count - 1:D5}", events[0].ConnectionId);
        Assert.Equal("conn_batch_00000", events[^1].ConnectionId);
    }

    [Fact]
    public async Task ReadsStillQueuedWhenNexusStopsAreWrittenBeforeItExits()
    {
        await using var db = await TestDatabase.CreateAsync();
        var first = await NexusTestServer.StartAsync(db);
        var audit = first.Services.GetRequiredService<AuditLog>();
        for (var i = 0; i < 300; i++)
        {
            audit.TokenRead("api_key:ak_stop", "ws_stop", $"conn_stop_{i:D3}");
        }

        var (issuer, encryptionKey, apiKey) = (first.Issuer, first.EncryptionKey, first.ApiKey);
        await first.DisposeAsync();

        await using var second = await NexusTestServer.StartAsync(db, s =>
        {
            s["BASE_URL"] = issuer;
            s["ENCRYPTION_KEY"] = encryptionKey;
            s["API_KEY"] = apiKey;
        });
        var events = await second.Services.GetRequiredService<AuditLog>().QueryAsync("ws_stop", null, AuditEvents.TokenRead, 500, CancellationToken.None);
        Assert.Equal(300, events.Count);
    }

    [Fact]
    public async Task AWriterStoppedBeforeItsLoopEverRanStillWritesWhatIsQueued()
    {
        // Since .NET 10 a BackgroundService's ExecuteAsync starts on the thread pool (Task.Run with the stopping
        // token): a host stopped before a busy pool got to it never runs the loop. A token cancelled before the start
        // makes that happen every time.
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        var services = server.Services;
        var audit = new AuditLog(services.GetRequiredService<NexusDatabase>(), services.GetRequiredService<NexusOptions>(), TimeProvider.System,
            services.GetRequiredService<DatabaseHealth>(), NullLogger<AuditLog>.Instance);
        for (var i = 0; i < 300; i++)
        {
            audit.TokenRead("api_key:ak_early", "ws_early", $"conn_early_{i:D3}");
        }

        using var writer = new AuditWriter(audit);
        await writer.StartAsync(new CancellationToken(canceled: true));
        await writer.StopAsync(CancellationToken.None);

        // Read through the server's own log: this one's writer has stopped, so its query would wait for a flush.
        var events = await services.GetRequiredService<AuditLog>().QueryAsync("ws_early", null, AuditEvents.TokenRead, 500, CancellationToken.None);
        Assert.Equal(300, events.Count);
    }

    [Fact]
    public async Task RepeatedReadsOfOneConnectionWithinTheIntervalQueueNoFurtherEvents()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        var audit = server.Services.GetRequiredService<AuditLog>();
        for (var i = 0; i < 5; i++)
        {
            audit.TokenRead("api_key:ak_repeat", "ws_repeat", "conn_repeat");
        }

        // The first read is recorded; the four after it are counted into the next event, an interval later.
        var events = await audit.QueryAsync("ws_repeat", "conn_repeat", AuditEvents.TokenRead, 10, CancellationToken.None);
        Assert.Equal(1, Assert.Single(events).Detail.GetProperty("reads").GetInt64());
    }

    [Fact]
    public async Task WithTheIntervalSetToZeroEveryReadIsAnEventOfOneRead()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:AuditTokenReadIntervalSeconds"] = "0");
        var audit = server.Services.GetRequiredService<AuditLog>();
        for (var i = 0; i < 3; i++)
        {
            audit.TokenRead("api_key:ak_every", "ws_every", "conn_every");
        }

        var events = await audit.QueryAsync("ws_every", "conn_every", AuditEvents.TokenRead, 10, CancellationToken.None);
        Assert.Equal(3, events.Count);
        Assert.All(events, e =>
        {
            Assert.Equal(1, e.Detail.GetProperty("reads").GetInt64());
            Assert.Equal(0, e.Detail.GetProperty("interval_seconds").GetInt32());
        });
        Assert.Equal(3, events.Select(e => e.Id).Distinct().Count());
    }
}
