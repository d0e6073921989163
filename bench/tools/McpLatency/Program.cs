using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;

// McpLatency BASE_URL MCP_TOKEN BRIDGE_KEY CONNECTION_ID [ROUNDS] [BARE_MCP_URL] [WARM_UP_SECONDS]
// ROUNDS rounds of one request to each path, one after the other on kept-alive connections (one per path), so that
// every path meets the same background load on a shared machine; p50 per path, and p50 of the per-round differences
// (call_api minus the direct Bridge call, tools/list minus /healthz), which drift with that load far less.
// (Nexus's CPU time per request, from /proc, was tried and dropped: thread-pool spinning and background work make it
// meaningless at this scale.) Prints "label|p50 ms|p90 ms" per path and then the paired differences.
// BARE_MCP_URL: bench/tools/BareMcp, the official SDK's stateless endpoint with a tool that does nothing; its GET
// /healthz and tools/call echo join every round, so the SDK's own floor is measured under the same load.
// WARM_UP_SECONDS (default 20): rounds before the measured ones, for at least that long. A count was not enough: the
// JIT's tiered compilation kept recompiling the MCP path (7% of the server's CPU in a profile) for about 25 s of load,
// well after 300 rounds, and the measured call_api rounds paid for it.
var inv = CultureInfo.InvariantCulture;
var (baseUrl, token, bridgeKey, connectionId) = (args[0].TrimEnd('/'), args[1], args[2], args[3]);
var rounds = args.Length > 4 ? int.Parse(args[4], inv) : 3000;
var bareUrl = args.Length > 5 && args[5].Length > 0 ? args[5].TrimEnd('/') : null;
var warmUp = TimeSpan.FromSeconds(args.Length > 6 ? double.Parse(args[6], inv) : 20);

const string listBody = """{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}""";
const string callBody = """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"call_api","arguments":{"service":"api","method":"GET","path":"/items"}}}""";

HttpClient Client() => new(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 1, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) });
const string echoBody = """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}""";
HttpRequestMessage Mcp(string body, string? at = null)
{
    var request = new HttpRequestMessage(HttpMethod.Post, (at ?? baseUrl) + "/mcp") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
    if (at is null)
    {
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    request.Headers.Accept.ParseAdd("application/json");
    request.Headers.Accept.ParseAdd("text/event-stream");
    request.Headers.Add("MCP-Protocol-Version", "2025-11-25");
    return request;
}

var paths = new (string Label, HttpClient Client, Func<HttpRequestMessage> Request, string? Expect)[]
{
    ("GET /healthz", Client(), () => new HttpRequestMessage(HttpMethod.Get, baseUrl + "/healthz"), null),
    ("direct Bridge call (GET /v1/bridge/{id}/items)", Client(), () =>
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"{baseUrl}/v1/bridge/{connectionId}/items");
        request.Headers.Add("X-API-Key", bridgeKey);
        return request;
    }, null),
    ("MCP tools/list", Client(), () => Mcp(listBody), "\"call_api\""),
    ("MCP tools/call call_api (GET /items through the Bridge)", Client(), () => Mcp(callBody), "\"status\":200"),
};
if (bareUrl is not null)
{
    paths =
    [
        .. paths,
        ("SDK alone: GET /healthz", Client(), () => new HttpRequestMessage(HttpMethod.Get, bareUrl + "/healthz"), null),
        ("SDK alone: tools/call echo", Client(), () => Mcp(echoBody, bareUrl), "hello"),
    ];
}

async Task<double> SendAsync(int index)
{
    var (label, client, request, expect) = paths[index];
    using var message = request();
    var started = Stopwatch.GetTimestamp();
    using var response = await client.SendAsync(message);
    var body = await response.Content.ReadAsStringAsync();
    var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    if (!response.IsSuccessStatusCode || (expect is not null && !body.Contains(expect)))
    {
        throw new InvalidOperationException($"{label} answered {(int)response.StatusCode}: {body[..Math.Min(400, body.Length)]}");
    }

    return elapsed;
}

// Warm-up (JIT tiering, caches, connections): at least 300 rounds, and at least WARM_UP_SECONDS.
var warming = Stopwatch.StartNew();
for (var i = 0; i < 300 || warming.Elapsed < warmUp; i++)
{
    for (var p = 0; p < paths.Length; p++)
    {
        await SendAsync(p);
    }
}

var latencies = paths.Select(_ => new List<double>(rounds)).ToArray();
for (var r = 0; r < rounds; r++)
{
    for (var p = 0; p < paths.Length; p++)
    {
        latencies[p].Add(await SendAsync(p));
    }
}

static double Percentile(IEnumerable<double> values, double q)
{
    var sorted = values.Order().ToArray();
    return sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
}

for (var p = 0; p < paths.Length; p++)
{
    Console.WriteLine(string.Format(inv, "{0}|{1:0.000}|{2:0.000}", paths[p].Label, Percentile(latencies[p], 0.5), Percentile(latencies[p], 0.9)));
}

Console.WriteLine(string.Format(inv, "call_api - Bridge (paired per round)|{0:0.000}|", Percentile(latencies[3].Zip(latencies[1], (a, b) => a - b), 0.5)));
Console.WriteLine(string.Format(inv, "tools/list - healthz (paired per round)|{0:0.000}|", Percentile(latencies[2].Zip(latencies[0], (a, b) => a - b), 0.5)));
if (bareUrl is not null)
{
    Console.WriteLine(string.Format(inv, "SDK alone: tools/call echo - healthz (paired per round)|{0:0.000}|", Percentile(latencies[5].Zip(latencies[4], (a, b) => a - b), 0.5)));
}
