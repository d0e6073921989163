using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Data;

/// <summary>
/// Issue 19, item 4: PostgreSQL stops under mixed load. Nexus answers 503 with Retry-After in each protocol's own
/// format (never 500), keeps serving what its caches hold, reports not-ready, logs the outage once, and recovers
/// by itself when the database is back.
/// </summary>
public sealed class DatabaseOutageTests
{
    private sealed record Answer(string Kind, HttpStatusCode Status, string? RetryAfter, string Body);

    [Fact]
    public async Task APostgreSqlOutageUnderLoadIsA503WithRetryAfterAndNexusRecoversWithoutARestart()
    {
        Assert.SkipWhen(PostgresCluster.FindBinaries() is null, "PostgreSQL binaries are not installed.");
        await using var cluster = await PostgresCluster.StartAsync();
        await using var fake = await FakeOAuthProvider.StartAsync();
        await using var db = await TestDatabase.CreateAsync(cluster.AdminConnectionString);
        var logs = new CapturedLogs();
        await using var server = await NexusTestServer.StartAsync(db, s =>
        {
            s["ALLOWED_RETURN_URLS"] = BrokerFixture.ReturnUrl;
            s["Nexus:ConnectionCacheSeconds"] = "60";
            s["Nexus:ApiKeyCacheSeconds"] = "60";
        }, services: s => s.AddSingleton<Microsoft.Extensions.Logging.ILoggerProvider>(logs));
        using var kit = new BrokerKit(server, fake);
        var provider = await kit.RegisterAsync("google");
        var (connectionId, _) = await kit.ConnectAsync(provider);
        var (clientId, secret) = await server.CreateAppClientAsync();

        var answers = new ConcurrentQueue<Answer>();
        using var stop = new CancellationTokenSource();
        var progress = new SemaphoreSlim(0);

        async Task LoadAsync(string kind, Func<Task<HttpResponseMessage>> send)
        {
            while (!stop.IsCancellationRequested)
            {
                using var response = await send();
                answers.Enqueue(new Answer(kind, response.StatusCode, response.Headers.RetryAfter?.ToString(), await response.Content.ReadAsStringAsync()));
                progress.Release();
            }
        }

        var load = new[]
        {
            LoadAsync("token issuance", () => server.RequestTokenAsync(clientId, secret)),
            LoadAsync("token read", () => server.Http.SendAsync(kit.Gateway(HttpMethod.Get, $"/v1/token/{connectionId}"))),
            LoadAsync("request-connection", () => server.Http.SendAsync(kit.Gateway(HttpMethod.Post, "/v1/request-connection",
                new { provider_name = provider, workspace_id = "user_abc123", return_url = BrokerFixture.ReturnUrl }))),
        };

        async Task WaitForAsync(Func<Answer, bool> seen, string what)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (!answers.Any(seen))
            {
                try
                {
                    await progress.WaitAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"No {what} within 60 s. Answers: {string.Join(", ", answers.GroupBy(a => (a.Kind, a.Status)).Select(g => $"{g.Key}×{g.Count()}"))}\n{logs.All}");
                }
            }
        }

        // Every kind of request answered once before the outage, so the caches the outage relies on hold what it reads.
        await WaitForAsync(a => a.Kind == "request-connection" && a.Status == HttpStatusCode.Created, "request-connection before the outage");
        await WaitForAsync(a => a.Kind == "token read" && a.Status == HttpStatusCode.OK, "a token read before the outage");
        await WaitForAsync(a => a.Kind == "token issuance" && a.Status == HttpStatusCode.OK, "a token issued before the outage");
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/readyz")).StatusCode);

        await cluster.StopAsync();
        var outageStart = answers.Count;
        await WaitForAsync(a => a.Kind == "request-connection" && a.Status == HttpStatusCode.ServiceUnavailable, "503 on request-connection");
        using (var ready = await server.Http.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.NotNull(ready.Headers.RetryAfter);
        }

        // The cached connection and API key keep token reads going during the outage.
        var readsBefore = answers.Count(a => a.Kind == "token read" && a.Status == HttpStatusCode.OK);
        await WaitForAsync(a => a.Kind == "token read" && a.Status == HttpStatusCode.OK && answers.Count(b => b.Kind == "token read" && b.Status == HttpStatusCode.OK) > readsBefore + 5,
            "cached token reads during the outage");

        await cluster.StartAgainAsync();
        var restarted = answers.Count;
        await WaitForAsync(a => a.Kind == "request-connection" && a.Status == HttpStatusCode.Created
            && answers.Skip(restarted).Any(b => b.Kind == "request-connection" && b.Status == HttpStatusCode.Created), "request-connection after the restart");
        await WaitForAsync(a => answers.Skip(restarted).Any(b => b.Kind == "token issuance" && b.Status == HttpStatusCode.OK), "token issuance after the restart");
        await stop.CancelAsync();
        await Task.WhenAll(load);
        // Ready again once the outage probe (every second) has seen the database answer.
        await RefreshKit.EventuallyAsync(async () => (await server.Http.GetAsync("/readyz")).StatusCode == HttpStatusCode.OK, "/readyz ready again");

        var all = answers.ToList();
        Assert.DoesNotContain(all, a => (int)a.Status >= 500 && a.Status != HttpStatusCode.ServiceUnavailable);
        var unavailable = all.Where(a => a.Status == HttpStatusCode.ServiceUnavailable).ToList();
        Assert.NotEmpty(unavailable);
        Assert.All(unavailable, a => Assert.Equal("5", a.RetryAfter));
        Assert.All(unavailable.Where(a => a.Kind == "token issuance"),
            a => Assert.Equal("temporarily_unavailable", JsonDocument.Parse(a.Body).RootElement.GetProperty("error").GetString()));
        Assert.All(unavailable.Where(a => a.Kind != "token issuance"),
            a => Assert.Equal("database_unavailable", JsonDocument.Parse(a.Body).RootElement.GetProperty("code").GetString()));

        // Logged once when it started and once when it ended, not once per request.
        var outageLines = logs.Lines.Where(l => l.Contains("is unavailable", StringComparison.Ordinal) || l.Contains("is reachable again", StringComparison.Ordinal)).ToList();
        Assert.True(outageLines.Count(l => l.Contains("is unavailable", StringComparison.Ordinal)) == 1
            && outageLines.Count(l => l.Contains("is reachable again", StringComparison.Ordinal)) == 1, string.Join("\n", outageLines));
        Assert.DoesNotContain(logs.Lines, l => l.Contains("Unhandled error", StringComparison.Ordinal) || l.Contains("Npgsql", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AFailureReportedWhileTheDatabaseAnswersStartsNoOutageAndAStoppedOneIsLoggedOnceHoweverManyReportIt()
    {
        // An operation that ran on a connection the server dropped before a restart, or that reports its failure late,
        // after the probe saw the database answer again, says nothing about the database now: a new connection is
        // asked before an outage is declared (and logged). A real one is declared once, however many report it.
        Assert.SkipWhen(PostgresCluster.FindBinaries() is null, "PostgreSQL binaries are not installed.");
        await using var cluster = await PostgresCluster.StartAsync();
        await using var db = await TestDatabase.CreateAsync(cluster.AdminConnectionString);
        using var database = new NexusDatabase(new NexusOptions { DatabaseUrl = db.DatabaseUrl, DataDirectory = db.DataDirectory });
        using var logs = new CapturedLogs();
        using var loggers = new LoggerFactory([logs]);
        var health = new DatabaseHealth(database, TimeProvider.System, new ApplicationLifetime(NullLogger<ApplicationLifetime>.Instance), loggers.CreateLogger<DatabaseHealth>());
        var dropped = new Npgsql.NpgsqlException("Exception while reading from stream", new System.IO.EndOfStreamException());
        Assert.True(DatabaseHealth.IsOutage(dropped));

        health.ReportOutage(dropped);
        await RefreshKit.EventuallyAsync(() => Task.FromResult(logs.Lines.Any(l => l.Contains("not an outage", StringComparison.Ordinal))), "the failure checked on a new connection");
        Assert.False(health.IsDown);
        Assert.DoesNotContain(logs.Lines, l => l.Contains("is unavailable", StringComparison.Ordinal));
        Assert.True(await health.IsReadyAsync(TestContext.Current.CancellationToken));

        await cluster.StopAsync();
        Assert.False(await health.IsReadyAsync(TestContext.Current.CancellationToken));
        health.ReportOutage(dropped);
        health.ReportOutage(dropped);
        await RefreshKit.EventuallyAsync(() => Task.FromResult(health.IsDown), "the outage declared");
        health.ReportOutage(dropped);
        await cluster.StartAgainAsync();
        await RefreshKit.EventuallyAsync(() => Task.FromResult(!health.IsDown), "the probe seeing the database again");
        Assert.Single(logs.Lines, l => l.Contains("is unavailable", StringComparison.Ordinal));
        Assert.Single(logs.Lines, l => l.Contains("is reachable again", StringComparison.Ordinal));
        Assert.True(await health.IsReadyAsync(TestContext.Current.CancellationToken));
    }
}
