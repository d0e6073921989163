// Answers /authorize with a redirect carrying a code and the state, /token with a JSON access token
// (RFC 6749 §4.1.2 and §5.1), and /api/* with a small JSON document (the Bridge benchmark's upstream). It checks nothing: it exists so that the benchmark can make a connection active
// through Nexus's real callback without reaching the internet.
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
var app = builder.Build();

app.MapGet("/authorize", (HttpRequest request) =>
{
    var redirectUri = request.Query["redirect_uri"].ToString();
    var state = Uri.EscapeDataString(request.Query["state"].ToString());
    return Results.Redirect($"{redirectUri}?code=bench-code&state={state}");
});
app.MapPost("/token", () => Results.Json(new Dictionary<string, object>
{
    ["access_token"] = "bench-access-" + Guid.NewGuid().ToString("N"),
    ["refresh_token"] = "bench-refresh-" + Guid.NewGuid().ToString("N"),
    ["token_type"] = "Bearer",
    ["expires_in"] = 3600,
}));
app.MapGet("/healthz", () => "ok");

// A provider API stand-in for the Bridge benchmark: a small JSON answer, like a typical REST read.
var document = System.Text.Encoding.UTF8.GetBytes("{\"id\":42,\"name\":\"nexus\",\"items\":[1,2,3]}");
app.MapGet("/api/{**rest}", () => Results.Bytes(document, "application/json"));

app.Run();
