namespace Nexus.Sdk.Tests.Scenario;

/// <summary>
/// The shared SDK scenario (sdks/scenario.json), one test per step, run with this SDK against a real Nexus and the
/// scenario upstream. Skipped unless NEXUS_SCENARIO is set, that is unless started through sdks/scenario/run.sh:
/// <c>sdks/scenario/run.sh dotnet tests/Nexus.Sdk.Tests/bin/Release/net10.0/Nexus.Sdk.Tests.dll -class Nexus.Sdk.Tests.Scenario.ScenarioTests</c>
/// (scripts/test.sh does this).
/// </summary>
public sealed class ScenarioTests
{
    private static readonly Lazy<Task<ScenarioRunner>> Run = new(async () =>
    {
        var runner = new ScenarioRunner(Environment.GetEnvironmentVariable("NEXUS_SCENARIO")!, Environment.GetEnvironmentVariable("NEXUS_URL")!,
            Environment.GetEnvironmentVariable("NEXUS_ADMIN_API_KEY")!, Environment.GetEnvironmentVariable("NEXUS_SCENARIO_UPSTREAM")!);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await runner.RunAsync(timeout.Token);
        return runner;
    });

    public static TheoryData<string> Steps()
    {
        var data = new TheoryData<string>();
        foreach (var id in ScenarioRunner.StepIds(ScenarioFile()))
        {
            data.Add(id);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Steps))]
    public async Task Scenario_step_passes_with_the_dotnet_SDK(string step)
    {
        Assert.SkipUnless(!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NEXUS_SCENARIO")),
            "Runs only under sdks/scenario/run.sh (NEXUS_SCENARIO unset).");
        var runner = await Run.Value;
        if (!runner.Results.TryGetValue(step, out var failure))
        {
            var failed = runner.Results.FirstOrDefault(r => r.Value is not null).Key;
            Assert.Skip($"Not run: step '{failed}' failed before it.");
        }

        Assert.True(failure is null, failure);
    }

    /// <summary>NEXUS_SCENARIO, or sdks/scenario.json found above the test assembly.</summary>
    private static string ScenarioFile()
    {
        if (Environment.GetEnvironmentVariable("NEXUS_SCENARIO") is { Length: > 0 } path)
        {
            return path;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "sdks", "scenario.json");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("sdks/scenario.json not found above " + AppContext.BaseDirectory);
    }
}
