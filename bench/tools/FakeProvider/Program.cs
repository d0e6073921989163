using System.Collections.Concurrent;

// Answers /authorize with a redirect carrying a code and the state, /token with a JSON access token
// (RFC 6749 §4.1.2 and §5.1), and /api/* with a small JSON document (the Bridge benchmark's upstream). It checks no client and no code: it exists so that the benchmarks can make connections
// active through Nexus's real callback without reaching the internet.
//
// For bench/refresh-storm.sh it also refreshes (RFC 6749 §6) the strict way: every refresh token is single-use and
// a new one comes with every refresh; a reused or unknown one is refused and counted, so a benchmark can show that
// it never happened. POST /control?code_expires_at=<unix ms> makes every token issued at consent expire at that
// instant (so that thousands of connections expire together); GET /stats reports the refreshes.
//
// /echo/* answers any method with what it received: method, path, query and the Authorization header's scheme and
// length (never its value), so the README's Bridge walkthrough can show that Nexus applied the credential.
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
var app = builder.Build();

var refreshTokens = new ConcurrentDictionary<string, int>(StringComparer.Ordinal); // 0 = unused, 1 = used
var stats = new Stats();
long codeExpiresAt = 0;

app.MapGet("/authorize", (HttpRequest request) =>
{
    var redirectUri = request.Query["redirect_uri"].ToString();
    var state = Uri.EscapeDataString(request.Query["state"].ToString());
    return Results.Redirect($"{redirectUri}?code=bench-code&state={state}");
});

app.MapPost("/token", async (HttpRequest request) =>
{
    var form = request.HasFormContentType ? await request.ReadFormAsync() : null;
    var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    if (form is not null && form["grant_type"].ToString() == "refresh_token")
    {
        var presented = form["refresh_token"].ToString();
        if (!refreshTokens.TryGetValue(presented, out _))
        {
            Interlocked.Increment(ref stats.Unknown);
            return Results.Json(new { error = "invalid_grant" }, statusCode: 400);
        }

        if (!refreshTokens.TryUpdate(presented, 1, 0))
        {
            Interlocked.Increment(ref stats.Reused);
            return Results.Json(new { error = "invalid_grant", error_description = "refresh token reused" }, statusCode: 400);
        }

        stats.Refreshed(now);
        return Issue(3600);
    }

    var expiresAt = Interlocked.Read(ref codeExpiresAt);
    return Issue(expiresAt > 0 ? Math.Max(1, (expiresAt - now) / 1000) : 3600);
});

app.MapPost("/control", (long? code_expires_at) =>
{
    Interlocked.Exchange(ref codeExpiresAt, code_expires_at ?? 0);
    return Results.Ok();
});

app.MapGet("/stats", () => Results.Json(new
{
    refreshes = Interlocked.Read(ref stats.Count),
    reused = Interlocked.Read(ref stats.Reused),
    unknown = Interlocked.Read(ref stats.Unknown),
    first_ms = Interlocked.Read(ref stats.First),
    last_ms = Interlocked.Read(ref stats.Last),
}));

app.MapPost("/stats/reset", () =>
{
    stats.Reset();
    return Results.Ok();
});

app.MapGet("/healthz", () => "ok");

// A provider API stand-in for the Bridge benchmark: a small JSON answer, like a typical REST read.
var document = System.Text.Encoding.UTF8.GetBytes("{\"id\":42,\"name\":\"nexus\",\"items\":[1,2,3]}");
app.MapGet("/api/{**rest}", () => Results.Bytes(document, "application/json"));

app.Map("/echo/{**rest}", (HttpRequest request) =>
{
    string? authorization = request.Headers.Authorization;
    var scheme = authorization?.Split(' ', 2) is [var s, var value] ? $"{s} ({value.Length} characters)" : null;
    return Results.Json(new Dictionary<string, object?>
    {
        ["method"] = request.Method,
        ["path"] = request.Path.Value,
        ["query"] = request.QueryString.Value,
        ["authorization"] = scheme,
    });
});

app.Run();

IResult Issue(long expiresIn)
{
    var refresh = "bench-refresh-" + Guid.NewGuid().ToString("N");
    refreshTokens[refresh] = 0;
    return Results.Json(new Dictionary<string, object>
    {
        ["access_token"] = "bench-access-" + Guid.NewGuid().ToString("N"),
        ["refresh_token"] = refresh,
        ["token_type"] = "Bearer",
        ["expires_in"] = expiresIn,
    });
}

internal sealed class Stats
{
    public long Count;
    public long Reused;
    public long Unknown;
    public long First;
    public long Last;

    public void Refreshed(long now)
    {
        Interlocked.Increment(ref Count);
        Interlocked.CompareExchange(ref First, now, 0);
        long last;
        while ((last = Interlocked.Read(ref Last)) < now && Interlocked.CompareExchange(ref Last, now, last) != last)
        {
        }
    }

    public void Reset()
    {
        Interlocked.Exchange(ref Count, 0);
        Interlocked.Exchange(ref Reused, 0);
        Interlocked.Exchange(ref Unknown, 0);
        Interlocked.Exchange(ref First, 0);
        Interlocked.Exchange(ref Last, 0);
    }
}
