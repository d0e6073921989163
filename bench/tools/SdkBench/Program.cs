using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Nexus.Sdk;

// 1. Applying a cached credential: GetCredentialsAsync (cache hit) + ApplyAsync on a request, per strategy, against an
//    in-process transport (nothing is sent). 2. A cold fetch: GetCredentialsAsync after InvalidateCredentials, against
//    the loopback Nexus that sdks/scenario/run.sh started (NEXUS_URL, NEXUS_ADMIN_API_KEY, NEXUS_SCENARIO_UPSTREAM).
var results = new StringBuilder();
var inv = CultureInfo.InvariantCulture;
string Row(string name, double wall, double cpu) =>
    string.Format(inv, "| {0} | {1:0.00} µs | {2:0.00} µs |", name, cpu / 1000, wall / 1000);

var tokens = new Dictionary<string, string>
{
    ["oauth2"] = """{"strategy":{"type":"oauth2"},"credentials":{"access_token":"at-0123456789abcdef0123456789abcdef"},"expires_at":4102444800}""",
    ["api_key (header, prefix)"] = """{"strategy":{"type":"api_key","in":"header","name":"X-Api-Key","prefix":"Token "},"credentials":{"api_key":"k-0123456789abcdef"},"expires_at":null}""",
    ["api_key (query, prefix)"] = """{"strategy":{"type":"api_key","in":"query","name":"api_key","prefix":"scn:"},"credentials":{"api_key":"k-0123456789abcdef"},"expires_at":null}""",
    ["basic_auth"] = """{"strategy":{"type":"basic_auth"},"credentials":{"username":"ada","password":"p@ss"},"expires_at":null}""",
    ["aws_sigv4 (GET, session token)"] = """{"strategy":{"type":"aws_sigv4","region":"eu-west-1","service":"execute-api"},"credentials":{"access_key_id":"AKIDEXAMPLE","secret_access_key":"wJalrXUtnFEMI","session_token":"tok"},"expires_at":null}""",
};
results.AppendLine("| Strategy (cache hit + apply) | CPU per request | wall per request |").AppendLine("|---|---:|---:|");
foreach (var (name, json) in tokens)
{
    using var client = new NexusClient(new NexusClientOptions { BaseUrl = new Uri("http://nexus.invalid"), ApiKey = "bench-key-0123456789" }, new Stub(json));
    using var request = new HttpRequestMessage(HttpMethod.Get, "https://api.example.com/v1/items?page=2");
    var iterations = name.StartsWith("aws", StringComparison.Ordinal) ? 100_000 : 1_000_000;
    for (var i = 0; i < iterations / 10; i++)
    {
        await Apply(client, request);
    }

    // The machine is shared: wall time includes other processes' time slices, so the process's CPU time over the
    // loop is reported too (median of 7 rounds each).
    var walls = new List<double>();
    var cpus = new List<double>();
    using var process = Process.GetCurrentProcess();
    for (var round = 0; round < 7; round++)
    {
        process.Refresh();
        var cpu = process.TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < iterations; i++)
        {
            await Apply(client, request);
        }

        walls.Add(sw.Elapsed.TotalNanoseconds / iterations);
        process.Refresh();
        cpus.Add((process.TotalProcessorTime - cpu).TotalNanoseconds / iterations);
    }

    walls.Sort();
    cpus.Sort();
    results.AppendLine(Row(name, walls[3], cpus[3]));
}

static async ValueTask Apply(NexusClient client, HttpRequestMessage request)
{
    var credential = await client.GetCredentialsAsync("conn_bench");
    await credential.ApplyAsync(request);
}

if (Environment.GetEnvironmentVariable("NEXUS_URL") is { Length: > 0 } nexusUrl)
{
    using var plain = new HttpClient();
    plain.DefaultRequestHeaders.Add("X-API-Key", Environment.GetEnvironmentVariable("NEXUS_ADMIN_API_KEY"));
    var upstream = Environment.GetEnvironmentVariable("NEXUS_SCENARIO_UPSTREAM");
    var key = (await (await plain.PostAsJsonAsync(new Uri(nexusUrl + "/v1/admin/api-keys"), new { name = "bench", workspaces = new[] { "bench" } }))
        .Content.ReadFromJsonAsync<JsonElement>()).GetProperty("api_key").GetString();
    (await plain.PostAsJsonAsync(new Uri(nexusUrl + "/v1/providers"), new Dictionary<string, object>
    {
        ["name"] = "bench-key", ["auth_mode"] = "api_key", ["api_base_url"] = upstream + "/echo/bench-key",
        ["api_key"] = new { @in = "header", name = "X-Key" },
    })).EnsureSuccessStatusCode();
    using var client = new NexusClient(new NexusClientOptions { BaseUrl = new Uri(nexusUrl), ApiKey = key });
    var requested = await client.RequestConnectionAsync(new ConnectionRequest("bench", "bench-key", new Uri(nexusUrl + "/return")));
    await client.SubmitCredentialsAsync(requested.ConnectionId, new Dictionary<string, string> { ["api_key"] = "bench-0123456789" });
    var samples = new List<double>();
    for (var i = 0; i < 1100; i++)
    {
        client.InvalidateCredentials(requested.ConnectionId);
        var sw = Stopwatch.StartNew();
        await client.GetCredentialsAsync(requested.ConnectionId);
        if (i >= 100)
        {
            samples.Add(sw.Elapsed.TotalMicroseconds);
        }
    }

    samples.Sort();
    results.AppendLine().AppendLine("| Cold fetch (`GET /v1/token`, loopback Nexus on SQLite, api_key connection, 1,000 sequential) | µs |").AppendLine("|---|---|");
    results.AppendLine(string.Format(inv, "| p50 | {0:0} |", samples[samples.Count / 2]));
    results.AppendLine(string.Format(inv, "| p99 | {0:0} |", samples[(int)(samples.Count * 0.99)]));
    results.AppendLine(string.Format(inv, "| mean | {0:0} |", samples.Average()));
}

Console.Write(results.ToString());

internal sealed class Stub(string json) : HttpMessageHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(json, Encoding.UTF8, "application/json") });
}
