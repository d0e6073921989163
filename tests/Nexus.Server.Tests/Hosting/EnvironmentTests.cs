using System.Net;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Hosting;

/// <summary>Issue 19 item 1: the environment a person sets wins, and Nexus says which environment and key it runs with.</summary>
public sealed class EnvironmentTests
{
    [Fact]
    public void TheLaunchProfileDoesNotOverrideTheEnvironmentAPersonSets()
    {
        using var profile = JsonDocument.Parse(File.ReadAllText(Repository.PathOf("src", "Nexus.Server", "Properties", "launchSettings.json")));
        foreach (var p in profile.RootElement.GetProperty("profiles").EnumerateObject())
        {
            var variables = p.Value.TryGetProperty("environmentVariables", out var v) ? v.EnumerateObject().Select(e => e.Name).ToList() : [];
            // `dotnet run` sets a launch profile's variables over the person's own: only the fallback may be there.
            Assert.DoesNotContain("ASPNETCORE_ENVIRONMENT", variables);
            Assert.DoesNotContain("DOTNET_ENVIRONMENT", variables);
            Assert.DoesNotContain("ASPNETCORE_URLS", variables);
            Assert.False(p.Value.TryGetProperty("applicationUrl", out _), "applicationUrl would override ASPNETCORE_URLS");
        }
    }

    [Fact]
    public async Task ProductionSetByThePersonWinsOverTheLaunchProfilesDevelopmentDefault()
    {
        await using var db = await TestDatabase.CreateAsync();
        // What `ASPNETCORE_ENVIRONMENT=Production dotnet run` gives the process: the profile's fallback and the person's choice.
        var production = await NexusProcess.RunAsync(db, new Dictionary<string, string?> { ["NEXUS_DEFAULT_ENVIRONMENT"] = "Development" }, "migrate");
        Assert.Equal(1, production.ExitCode);
        Assert.Contains("ENCRYPTION_KEY is required in Production", production.Output);
        Assert.False(File.Exists(Path.Combine(db.DataDirectory, "encryption.key")));

        // Plain `dotnet run`: nothing set, so the profile's Development applies, and the banner says so.
        var development = await NexusProcess.RunAsync(db, new Dictionary<string, string?>
        {
            ["NEXUS_DEFAULT_ENVIRONMENT"] = "Development",
            ["ASPNETCORE_ENVIRONMENT"] = "",
            ["Logging__LogLevel__Default"] = "Information",
        }, "migrate");
        Assert.True(development.ExitCode == 0, development.Output);
        Assert.Contains("Nexus is starting in Development; encryption key: development key file " + Path.Combine(db.DataDirectory, "encryption.key"), development.Output);
    }

    [Fact]
    public async Task TheBannerNamesProductionAndEncryptionKey()
    {
        await using var db = await TestDatabase.CreateAsync();
        var run = await NexusProcess.RunAsync(db, new Dictionary<string, string?>
        {
            ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey(),
            ["Logging__LogLevel__Default"] = "Information",
        }, "migrate");
        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Contains("Nexus is starting in Production; encryption key: ENCRYPTION_KEY; database: ", run.Output);
    }

    [Fact]
    public async Task TheStatusPageShowsWhenTheDevelopmentKeyIsInUse()
    {
        await using (var db = await TestDatabase.CreateAsync())
        await using (var server = await NexusTestServer.StartAsync(db, s => s["ENCRYPTION_KEY"] = null, environment: "Development"))
        {
            Assert.Contains("id=\"development-key\"", await StatusPageAsync(server));
        }

        await using (var db = await TestDatabase.CreateAsync())
        await using (var server = await NexusTestServer.StartAsync(db))
        {
            var page = await StatusPageAsync(server);
            Assert.Contains("Key source: ENCRYPTION_KEY", page);
            Assert.DoesNotContain("development-key", page);
        }
    }

    private static async Task<string> StatusPageAsync(NexusTestServer server)
    {
        using var browser = new Browser(server);
        var email = NewEmail();
        await browser.SignUpAsync(email, Password);
        await server.MakeAdminAsync(email);
        await browser.NavigateAsync("/admin/status");
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);
        return browser.LastPage;
    }
}
