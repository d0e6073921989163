using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// <c>Nexus.Server healthcheck</c>, the container's HEALTHCHECK (the runtime image has no curl). Its use with the
/// compose file's environment runs in Deployment/ComposeEnvironmentTests.
/// </summary>
public sealed class HealthCheckCommandTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task ItExitsZeroWhenNexusAnswersHealthzAndOneWhenNothingListens()
    {
        // Docker retries a failed probe (--retries=3): on a machine busy with parallel tests one probe may time out.
        int? healthy = null;
        for (var attempt = 0; attempt < 3 && healthy != 0; attempt++)
        {
            healthy = await HealthCheckCommand.TryRunAsync(["healthcheck", fixture.Server.Http.BaseAddress!.ToString()]);
        }

        Assert.Equal(0, healthy);
        Assert.Equal(1, await HealthCheckCommand.TryRunAsync(["healthcheck", $"http://127.0.0.1:{LoopbackHost.FreePort()}"]));
    }

    [Fact]
    public async Task ItLeavesOtherCommandsAloneAndRefusesABadArgument()
    {
        Assert.Null(await HealthCheckCommand.TryRunAsync(["migrate"]));
        Assert.Null(await HealthCheckCommand.TryRunAsync([]));
        Assert.Equal(0, await HealthCheckCommand.TryRunAsync(["healthcheck", "--help"]));
        Assert.Equal(2, await HealthCheckCommand.TryRunAsync(["healthcheck", "not a url"]));
    }

    [Theory]
    [InlineData(null, null, "http://127.0.0.1:8090")]
    [InlineData(null, "8080", "http://127.0.0.1:8080")]
    [InlineData(null, "8080;8081", "http://127.0.0.1:8080")]
    [InlineData("http://+:9000", "8080", "http://127.0.0.1:9000")]
    [InlineData("http://*:9000;https://*:9443", null, "http://127.0.0.1:9000")]
    [InlineData("http://0.0.0.0:9000", null, "http://127.0.0.1:9000")]
    [InlineData("http://[::]:9000", null, "http://127.0.0.1:9000")]
    [InlineData("http://localhost:7000", null, "http://localhost:7000")]
    public void ItCallsWhereTheEnvironmentSaysNexusListens(string? urls, string? ports, string expected)
    {
        var environment = new Dictionary<string, string?> { ["ASPNETCORE_URLS"] = urls, ["ASPNETCORE_HTTP_PORTS"] = ports };
        Assert.Equal(expected, HealthCheckCommand.DefaultBase(name => environment.GetValueOrDefault(name)));
    }
}
