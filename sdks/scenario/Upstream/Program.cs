using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Nexus.Scenario.Upstream;

// The scenario upstream (sdks/scenario/README.md). Started by sdks/scenario/run.sh as
//   dotnet Nexus.Scenario.Upstream.dll --scenario sdks/scenario.json [--urls http://127.0.0.1:0]
// It listens on a free loopback port and writes its base URL alone on one line of stdout once it accepts requests.
var scenarioPath = ArgValue(args, "--scenario") ?? Environment.GetEnvironmentVariable("NEXUS_SCENARIO")
    ?? throw new InvalidOperationException("Give the scenario file: --scenario PATH (or NEXUS_SCENARIO).");
var scenario = ScenarioData.Load(scenarioPath);

var builder = WebApplication.CreateSlimBuilder();
builder.WebHost.UseUrls(ArgValue(args, "--urls") ?? "http://127.0.0.1:0");
builder.Logging.ClearProviders();
builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
var app = builder.Build();

var oauth = new OAuthProvider(scenario.OAuth, TimeProvider.System);
var echo = new EchoApi(scenario, oauth, TimeProvider.System);

app.MapGet("/oauth/authorize", oauth.Authorize);
app.MapPost("/oauth/token", oauth.TokenAsync);
app.MapPost("/oauth/revoke", oauth.RevokeAsync);
app.MapPost("/control/revoke-all-grants", () => Results.Json(new { revoked = oauth.RevokeAllGrants() }));
app.MapPost("/control/expire-access-tokens", () => Results.Json(new { expired = oauth.ExpireAccessTokens() }));
app.MapGet("/control/stats", () => Results.Json(oauth.Stats()));
app.MapGet("/healthz", () => Results.Json(new { status = "ok" }));
app.Map("/echo/{provider}/{**rest}", echo.HandleAsync);

await app.StartAsync();
var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
Console.Out.WriteLine(address.Replace("[::1]", "127.0.0.1", StringComparison.Ordinal));
Console.Out.Flush();
await app.WaitForShutdownAsync();

static string? ArgValue(string[] args, string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

/// <summary>What the upstream needs from scenario.json: the OAuth client and each provider's strategy and test credential.</summary>
internal sealed record ScenarioData(ScenarioData.OAuthClient OAuth, IReadOnlyDictionary<string, ScenarioData.Provider> Providers)
{
    internal sealed record OAuthClient(string ClientId, string ClientSecret, string Subject, int AccessTokenLifetimeSeconds);

    internal sealed record Provider(string Name, string Strategy, string Principal, JsonElement Registration, IReadOnlyDictionary<string, string> Credentials);

    public static ScenarioData Load(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var root = document.RootElement;
        var o = root.GetProperty("oauth");
        var client = new OAuthClient(o.GetProperty("client_id").GetString()!, o.GetProperty("client_secret").GetString()!,
            o.GetProperty("subject").GetString()!, o.GetProperty("access_token_lifetime_seconds").GetInt32());
        var providers = new Dictionary<string, Provider>(StringComparer.Ordinal);
        foreach (var p in root.GetProperty("providers").EnumerateArray())
        {
            var credentials = p.TryGetProperty("credentials", out var c)
                ? c.EnumerateObject().ToDictionary(f => f.Name, f => f.Value.GetString()!, StringComparer.Ordinal)
                : new Dictionary<string, string>();
            providers[p.GetProperty("name").GetString()!] = new Provider(p.GetProperty("name").GetString()!, p.GetProperty("strategy").GetString()!,
                p.GetProperty("principal").GetString()!, p.GetProperty("registration").Clone(), credentials);
        }

        return new ScenarioData(client, providers);
    }
}
