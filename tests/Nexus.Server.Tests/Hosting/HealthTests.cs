using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

public sealed class HealthTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task ReadyzReportsTheEngineTheSuiteRunsOn()
    {
        var ready = JsonDocument.Parse(await fixture.Server.Http.GetStringAsync("/readyz")).RootElement;
        Assert.Equal("ok", ready.GetProperty("status").GetString());
        // Proves that the PostgreSQL pass of the test script really runs on PostgreSQL.
        Assert.Equal(fixture.Database.Engine, ready.GetProperty("database").GetString());
    }

    [Fact]
    public async Task HealthzAnswersWithoutTouchingTheDatabase()
    {
        // Every request's database connections are counted by a middleware put in front of Nexus's pipeline.
        var opened = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        await using var database = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(database, services: s => s.AddTransient<IStartupFilter>(_ => new CountConnections(opened)));

        var health = JsonDocument.Parse(await server.Http.GetStringAsync("/healthz")).RootElement;
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.Equal(0, opened["/healthz"]);

        // The count is real: /readyz asks the database.
        Assert.Equal("ok", JsonDocument.Parse(await server.Http.GetStringAsync("/readyz")).RootElement.GetProperty("status").GetString());
        Assert.True(opened["/readyz"] >= 1);
    }

    private sealed class CountConnections(System.Collections.Concurrent.ConcurrentDictionary<string, int> opened) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, call) =>
            {
                var count = new System.Runtime.CompilerServices.StrongBox<int>();
                Nexus.Server.Data.NexusDatabase.OpenedInFlow.Value = count;
                // Recorded before the answer leaves, so the test never reads it too early.
                context.Response.OnStarting(() =>
                {
                    opened[context.Request.Path.Value!] = count.Value;
                    return Task.CompletedTask;
                });
                await call(context);
            });
            next(app);
        };
    }
}
