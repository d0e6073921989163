using System.Text.Json;
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
        var health = JsonDocument.Parse(await fixture.Server.Http.GetStringAsync("/healthz")).RootElement;
        Assert.Equal("ok", health.GetProperty("status").GetString());
    }
}
