// Usage: dotnet BareKestrel.dll --urls http://127.0.0.1:PORT
// GET  /healthz                           {"status":"ok"} through TypedResults.Ok, as Nexus's /healthz did
// GET  /.well-known/openid-configuration  a constant JSON document (bytes prepared once)
// POST /oauth2/token                      an ES256 JWT signed with a key made at start (no client check)
// POST /rs256/oauth2/token                the same token signed RS256 (2048-bit key made at start)
// POST /oauth2/introspect                 form read, ES256 signature and exp checked, RFC 7662 answer; no client
//                                         authentication, no revocation, no database
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

var builder = WebApplication.CreateBuilder(args);
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
var app = builder.Build();

using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
using var rsa = RSA.Create(2048);
var header = B64("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"bare\"}"u8.ToArray());
var rsaHeader = B64("{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"bare-rsa\"}"u8.ToArray());
var discovery = Encoding.UTF8.GetBytes("{\"issuer\":\"http://127.0.0.1\",\"token_endpoint\":\"http://127.0.0.1/oauth2/token\",\"jwks_uri\":\"http://127.0.0.1/oauth2/jwks\","
    + "\"introspection_endpoint\":\"http://127.0.0.1/oauth2/introspect\",\"response_types_supported\":[\"code\"],\"grant_types_supported\":[\"client_credentials\"]}");

string[] claimNames = ["scope", "client_id", "sub", "iss", "aud", "jti"];

app.MapGet("/healthz", () => TypedResults.Ok(new { status = "ok" }));
app.MapGet("/.well-known/openid-configuration", async context =>
{
    context.Response.ContentType = "application/json";
    context.Response.ContentLength = discovery.Length;
    await context.Response.Body.WriteAsync(discovery);
});
app.MapPost("/oauth2/token", context => IssueAsync(context, header, input => key.SignData(input, HashAlgorithmName.SHA256)));
app.MapPost("/rs256/oauth2/token", context => IssueAsync(context, rsaHeader, input => rsa.SignData(input, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)));
app.MapPost("/oauth2/introspect", async context =>
{
    var form = await context.Request.ReadFormAsync(context.RequestAborted);
    var token = form["token"].ToString();
    var active = false;
    var parts = token.Split('.');
    JsonElement claims = default;
    if (parts.Length == 3 && key.VerifyData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), FromB64(parts[2]), HashAlgorithmName.SHA256))
    {
        claims = JsonDocument.Parse(FromB64(parts[1])).RootElement;
        active = claims.GetProperty("exp").GetInt64() > DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    }

    context.Response.ContentType = "application/json";
    await using var json = new Utf8JsonWriter(context.Response.BodyWriter);
    json.WriteStartObject();
    json.WriteBoolean("active", active);
    if (active)
    {
        foreach (var name in claimNames)
        {
            json.WriteString(name, claims.GetProperty(name).GetString());
        }

        json.WriteString("token_type", "Bearer");
        json.WriteNumber("exp", claims.GetProperty("exp").GetInt64());
        json.WriteNumber("iat", claims.GetProperty("iat").GetInt64());
    }

    json.WriteEndObject();
    await json.FlushAsync();
});
app.Run();

static async Task IssueAsync(HttpContext context, string header, Func<byte[], byte[]> sign)
{
    var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    var payload = B64(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
    {
        ["iss"] = "http://127.0.0.1", ["sub"] = "bench", ["client_id"] = "bench", ["aud"] = "http://127.0.0.1", ["scope"] = "read",
        ["iat"] = now, ["exp"] = now + 3600, ["jti"] = Guid.NewGuid().ToString("N"),
    }));
    var signingInput = header + "." + payload;
    var signature = B64(sign(Encoding.ASCII.GetBytes(signingInput)));
    await context.Response.WriteAsJsonAsync(new Dictionary<string, object> { ["access_token"] = signingInput + "." + signature, ["token_type"] = "Bearer", ["expires_in"] = 3600 });
}

static string B64(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

static byte[] FromB64(string s)
{
    s = s.Replace('-', '+').Replace('_', '/');
    return Convert.FromBase64String(s.PadRight(s.Length + ((4 - (s.Length % 4)) % 4), '='));
}
