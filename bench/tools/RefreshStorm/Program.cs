using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

// RefreshStorm --nexus URL --api-key KEY --fake URL --connections N [--concurrency 32] [--margin 10] [--interval 5] [--handshake-rate 150]
//
// 1. Registers bench/tools/FakeProvider as a provider with refresh_margin_seconds = margin.
// 2. Tells the fake that every token issued at consent expires at one instant, far enough ahead for all N
//    handshakes (request-connection, the provider's redirect, Nexus's /auth/callback) to finish, then runs them.
// 3. Waits for the storm: the background refresher must refresh all N before they expire. Nothing reads a credential
//    meanwhile, so every refresh is the background refresher's.
// Prints one JSON object with the figures on stdout; progress goes to stderr.
var options = ParseArguments(args);
var nexus = options["nexus"].TrimEnd('/');
var fake = options["fake"].TrimEnd('/');
var apiKey = options["api-key"];
var count = int.Parse(options["connections"], CultureInfo.InvariantCulture);
var concurrency = int.Parse(options.GetValueOrDefault("concurrency", "32"), CultureInfo.InvariantCulture);
var margin = int.Parse(options.GetValueOrDefault("margin", "10"), CultureInfo.InvariantCulture);
var interval = int.Parse(options.GetValueOrDefault("interval", "5"), CultureInfo.InvariantCulture);
// How many handshakes a second the expiry budget assumes: a machine busy with other work needs a lower figure, or
// the first tokens fall due before the last handshake and they no longer expire together.
var handshakeRate = int.Parse(options.GetValueOrDefault("handshake-rate", "150"), CultureInfo.InvariantCulture);

using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, MaxConnectionsPerServer = concurrency * 2 }) { Timeout = TimeSpan.FromSeconds(60) };
http.DefaultRequestHeaders.Add("X-API-Key", apiKey);

var provider = "storm-" + Guid.NewGuid().ToString("N")[..6];
string[] scopes = ["read"];
Check(await http.PostAsJsonAsync(nexus + "/v1/providers", new Dictionary<string, object>
{
    ["name"] = provider,
    ["authorization_url"] = fake + "/authorize",
    ["token_url"] = fake + "/token",
    ["client_id"] = "bench-client",
    ["client_secret"] = "bench-secret",
    ["scopes"] = scopes,
    ["token_endpoint_auth"] = "client_secret_post",
    ["refresh_margin_seconds"] = margin,
}), "register the provider");

// Tokens must outlive twice the margin for the margin to apply in full (it is capped at half the lifetime), so the
// expiry instant leaves that much room after the last handshake, assuming at least handshake-rate handshakes/s.
var expiresAt = Now() + ((count / handshakeRate + (2 * margin) + 15) * 1000L);
Check(await http.PostAsync($"{fake}/control?code_expires_at={expiresAt}", null), "set the expiry");
Check(await http.PostAsync(fake + "/stats/reset", null), "reset the counters");

Console.Error.WriteLine($"connecting {count} connections, all expiring at {DateTimeOffset.FromUnixTimeMilliseconds(expiresAt):HH:mm:ss}");
var clock = Stopwatch.StartNew();
var ids = new string[count];
var done = 0;
await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (i, ct) =>
{
    using var requested = await http.PostAsJsonAsync(nexus + "/v1/request-connection",
        new { workspace_id = "ws_storm_" + (i % 100), provider_name = provider, return_url = nexus + "/connected" }, ct);
    Check(requested, "request-connection");
    var body = await requested.Content.ReadFromJsonAsync<JsonElement>(ct);
    using var consent = await http.GetAsync(body.GetProperty("auth_url").GetString(), ct);
    using var callback = await http.GetAsync(consent.Headers.Location, ct);
    if (callback.StatusCode != HttpStatusCode.Redirect || callback.Headers.Location?.ToString().Contains("status=active", StringComparison.Ordinal) != true)
    {
        throw new InvalidOperationException($"connection {i} did not become active: {(int)callback.StatusCode} {callback.Headers.Location}");
    }

    ids[i] = body.GetProperty("connection_id").GetString()!;
    if (Interlocked.Increment(ref done) % 1000 == 0)
    {
        Console.Error.WriteLine($"  {done} connected ({done / clock.Elapsed.TotalSeconds:F0}/s)");
    }
});
var connectSeconds = clock.Elapsed.TotalSeconds;
var connectedAt = Now();
var dueAt = expiresAt - (margin * 1000L);
// The background refresher looks ahead by one interval, at most half the margin (RefreshSchedule.BackgroundDueAt).
var backgroundFrom = dueAt - (Math.Min(interval * 1000L, margin * 1000L / 2));
var together = connectedAt < expiresAt - (2 * margin * 1000L);
Console.Error.WriteLine($"connected in {connectSeconds:F1} s; due for refresh at {DateTimeOffset.FromUnixTimeMilliseconds(dueAt):HH:mm:ss.fff}" +
    (together ? "" : " (WARNING: the handshakes took too long for the tokens to expire together; raise the budget)"));

JsonElement stats;
var waitUntil = expiresAt + 600_000;
while (true)
{
    stats = await http.GetFromJsonAsync<JsonElement>(fake + "/stats");
    if (stats.GetProperty("refreshes").GetInt64() >= count || Now() > waitUntil)
    {
        break;
    }

    await Task.Delay(50);
}

// Exactly once: a connection refreshed a second time (by another instance, say) would show as a reused refresh token
// or as more refreshes than connections. Two more background intervals leave room for such a late second refresh.
await Task.Delay(TimeSpan.FromSeconds(2 * interval));
stats = await http.GetFromJsonAsync<JsonElement>(fake + "/stats");
var refreshes = stats.GetProperty("refreshes").GetInt64();
var first = stats.GetProperty("first_ms").GetInt64();
var last = stats.GetProperty("last_ms").GetInt64();

// Every connection now serves a token that expires an hour later, without any read having refreshed it.
var sample = 0;
var fresh = 0;
foreach (var id in ids.Where((_, i) => i % Math.Max(1, count / 200) == 0))
{
    sample++;
    var token = await http.GetFromJsonAsync<JsonElement>($"{nexus}/v1/token/{id}");
    if (token.GetProperty("expires_at").GetInt64() * 1000 > expiresAt + 3_000_000)
    {
        fresh++;
    }
}

var result = new Dictionary<string, object>
{
    ["connections"] = count,
    ["connect_seconds"] = Math.Round(connectSeconds, 1),
    ["expired_together"] = together,
    ["refreshes"] = refreshes,
    ["reused_refresh_tokens"] = stats.GetProperty("reused").GetInt64(),
    ["unknown_refresh_tokens"] = stats.GetProperty("unknown").GetInt64(),
    ["storm_seconds"] = Math.Round((last - first) / 1000.0, 2),
    ["refreshes_per_second"] = last > first ? Math.Round(Math.Min(refreshes, count) / ((last - first) / 1000.0)) : 0,
    ["exactly_once"] = refreshes == count && stats.GetProperty("reused").GetInt64() == 0,
    ["first_refresh_after_background_window_seconds"] = Math.Round((first - backgroundFrom) / 1000.0, 2),
    ["all_fresh_after_due_seconds"] = Math.Round((last - dueAt) / 1000.0, 2),
    ["all_fresh_before_expiry_seconds"] = Math.Round((expiresAt - last) / 1000.0, 2),
    ["sampled_reads_fresh"] = $"{fresh}/{sample}",
};
Console.WriteLine(JsonSerializer.Serialize(result));
return refreshes == count && stats.GetProperty("reused").GetInt64() == 0 ? 0 : 1;

static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

static void Check(HttpResponseMessage response, string what)
{
    if (!response.IsSuccessStatusCode)
    {
        throw new InvalidOperationException($"{what}: HTTP {(int)response.StatusCode} {response.Content.ReadAsStringAsync().Result}");
    }
}

static Dictionary<string, string> ParseArguments(string[] args)
{
    var parsed = new Dictionary<string, string>(StringComparer.Ordinal);
    for (var i = 0; i + 1 < args.Length; i += 2)
    {
        parsed[args[i].TrimStart('-')] = args[i + 1];
    }

    foreach (var required in new[] { "nexus", "fake", "api-key", "connections" })
    {
        if (!parsed.ContainsKey(required))
        {
            throw new ArgumentException($"--{required} is required");
        }
    }

    return parsed;
}
