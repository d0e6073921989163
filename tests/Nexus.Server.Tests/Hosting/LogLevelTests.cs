using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// The log levels Nexus runs with are set in code, so they hold wherever the process is started from: appsettings.json
/// sits beside the binary, and is not read when the content root (the working directory) is elsewhere.
/// </summary>
public sealed class LogLevelTests
{
    [Fact]
    public async Task StartedFromAnotherDirectoryNexusStillLogsNoRequestLinesAndNoCodeOrState()
    {
        await using var db = await TestDatabase.CreateAsync();
        var elsewhere = Directory.CreateTempSubdirectory("nexus-cwd-").FullName;
        var settings = NexusServerProcess.SharedSettings();
        settings["Logging__LogLevel__Default"] = "Information"; // the default a deployment runs with
        await using var server = await NexusServerProcess.StartAsync(db, settings, workingDirectory: elsewhere);

        const string code = "code-that-must-not-be-logged-7f3a";
        const string state = "state-that-must-not-be-logged-9c1e";
        using var response = await server.Http.GetAsync($"/auth/callback?code={code}&state={state}");
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
        // The answer went out; a line about this request, if any were written, is written before the response ends.
        using var health = await server.Http.GetAsync("/healthz");

        Assert.Contains("Now listening on", server.Output); // Information lines are written…
        Assert.DoesNotContain("Request starting", server.Output); // …but not the per-request ones, which carry URLs
        Assert.DoesNotContain(code, server.Output);
        Assert.DoesNotContain(state, server.Output);
        Directory.Delete(elsewhere, recursive: true);
    }
}
