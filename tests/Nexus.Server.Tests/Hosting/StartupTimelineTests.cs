using System.Globalization;
using System.Text.RegularExpressions;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// Where startup time goes (issue #20, footprint): with its category at Debug, the server logs its startup phases once,
/// as milliseconds since the process started (and CPU milliseconds), when it listens; at the default levels it logs
/// nothing of the kind.
/// </summary>
public sealed partial class StartupTimelineTests
{
    [Fact]
    public async Task AtDebugTheServerLogsItsStartupPhasesInOrderOnceItListens()
    {
        await using var db = await TestDatabase.CreateAsync();
        var settings = NexusServerProcess.SharedSettings();
        settings["Logging__LogLevel__Default"] = "Information";
        settings["Logging__LogLevel__Nexus.Server.Hosting.StartupTimeline"] = "Debug";
        await using var server = await NexusServerProcess.StartAsync(db, settings);
        using var ready = await server.Http.GetAsync("/readyz");
        Assert.Equal(System.Net.HttpStatusCode.OK, ready.StatusCode);

        var line = Assert.Single(Timeline().Matches(server.Output));
        var phases = Phase().Matches(line.Groups["phases"].Value)
            .Select(m => (Name: m.Groups["name"].Value, Ms: double.Parse(m.Groups["ms"].Value, CultureInfo.InvariantCulture), Cpu: double.Parse(m.Groups["cpu"].Value, CultureInfo.InvariantCulture)))
            .ToList();
        Assert.Equal(["configuration read", "host built", "endpoints mapped", "database prepared", "listening"], phases.Select(p => p.Name));
        Assert.All(phases.Zip(phases.Skip(1)), pair => Assert.True(pair.First.Ms <= pair.Second.Ms, $"{pair.First} before {pair.Second}"));
        Assert.All(phases.Zip(phases.Skip(1)), pair => Assert.True(pair.First.Cpu <= pair.Second.Cpu, $"{pair.First} before {pair.Second}"));
        Assert.All(phases, p => Assert.InRange(p.Ms, 0, 600_000));
    }

    [Fact]
    public async Task AtTheDefaultLevelsNoTimelineIsLogged()
    {
        await using var db = await TestDatabase.CreateAsync();
        var settings = NexusServerProcess.SharedSettings();
        settings["Logging__LogLevel__Default"] = "Information"; // the default a deployment runs with
        await using var server = await NexusServerProcess.StartAsync(db, settings);
        using var health = await server.Http.GetAsync("/healthz");

        Assert.Contains("Now listening on", server.Output);
        Assert.DoesNotContain("Startup timeline", server.Output);
    }

    [GeneratedRegex(@"Startup timeline \(ms since the process started, CPU ms in brackets\): (?<phases>[^\r\n]*)")]
    private static partial Regex Timeline();

    [GeneratedRegex(@"(?<name>[a-z ]+?) (?<ms>\d+) \[(?<cpu>\d+)\](, |$)")]
    private static partial Regex Phase();
}
