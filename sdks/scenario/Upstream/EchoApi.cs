using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.Features;

namespace Nexus.Scenario.Upstream;

/// <summary>
/// /echo/{provider}/{path}: the provider APIs of the scenario. Each checks the credential its provider's strategy
/// puts on a request (Bearer token from the OAuth provider; API key in the header or query parameter, with its
/// prefix; Basic; AWS SigV4 with the session token) against the scenario's test values and answers what it saw as
/// JSON, or 401 when the credential is missing or wrong. Nothing secret is echoed back.
/// </summary>
internal sealed class EchoApi(ScenarioData scenario, OAuthProvider oauth, TimeProvider time)
{
    public async Task HandleAsync(HttpContext context, string provider)
    {
        if (!scenario.Providers.TryGetValue(provider, out var p))
        {
            context.Response.StatusCode = 404;
            await context.Response.WriteAsJsonAsync(new { ok = false, error = $"no scenario provider '{provider}'" });
            return;
        }

        var request = context.Request;
        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body, context.RequestAborted);
        var bodyHash = Convert.ToHexStringLower(SHA256.HashData(body.GetBuffer().AsSpan(0, (int)body.Length)));

        var prefix = "/echo/" + provider;
        var path = request.Path.Value is { } full && full.Length > prefix.Length ? full[prefix.Length..] : "/";
        var query = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string? queryKeyName = p.Strategy == "api_key" && ApiKeyConfig(p) is ("query", var n, _) ? n : null;
        foreach (var (name, value) in request.Query)
        {
            if (name != queryKeyName)
            {
                query[name] = value.ToString();
            }
        }

        var (principal, problem, sessionToken) = p.Strategy switch
        {
            "oauth2" => CheckBearer(request),
            "api_key" => CheckApiKey(request, p),
            "basic_auth" => CheckBasic(request, p),
            "aws_sigv4" => CheckSigV4(context, p, bodyHash),
            _ => (null, $"unknown strategy {p.Strategy}", false),
        };

        if (problem is not null)
        {
            context.Response.StatusCode = 401;
            context.Response.Headers.WWWAuthenticate = p.Strategy switch
            {
                "oauth2" => "Bearer error=\"invalid_token\"",
                "basic_auth" => "Basic realm=\"scenario\"",
                _ => "ScenarioKey",
            };
            await context.Response.WriteAsJsonAsync(new { ok = false, provider, strategy = p.Strategy, error = problem });
            return;
        }

        var answer = new Dictionary<string, object?>
        {
            ["ok"] = true,
            ["provider"] = provider,
            ["strategy"] = p.Strategy,
            ["principal"] = principal,
            ["method"] = request.Method,
            ["path"] = path,
            ["query"] = query,
            ["body_sha256"] = bodyHash,
            ["body_length"] = body.Length,
        };
        if (p.Strategy == "aws_sigv4")
        {
            answer["session_token"] = sessionToken;
        }

        await context.Response.WriteAsJsonAsync(answer);
    }

    private (string?, string?, bool) CheckBearer(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return (null, "no Bearer token", false);
        }

        return oauth.CheckAccessToken(header[7..].Trim()) is { } problem ? (null, problem, false) : (scenario.OAuth.Subject, null, false);
    }

    private static (string?, string?, bool) CheckApiKey(HttpRequest request, ScenarioData.Provider p)
    {
        var (where, name, keyPrefix) = ApiKeyConfig(p);
        var expected = keyPrefix + p.Credentials["api_key"];
        var values = where == "header" ? request.Headers[name] : request.Query[name];
        if (values.Count != 1)
        {
            return (null, $"expected exactly one API key in the {where} '{name}', got {values.Count}", false);
        }

        return SameSecret(values.ToString(), expected) ? (p.Principal, null, false) : (null, $"wrong API key in the {where} '{name}' (with prefix '{keyPrefix}')", false);
    }

    private static (string?, string?, bool) CheckBasic(HttpRequest request, ScenarioData.Provider p)
    {
        var header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return (null, "no Basic credentials", false);
        }

        string pair;
        try
        {
            pair = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
        }
        catch (FormatException)
        {
            return (null, "Basic credentials are not base64", false);
        }

        // RFC 7617 §2: user-id ":" password; the user-id has no colon, the password may.
        return SameSecret(pair, p.Credentials["username"] + ":" + p.Credentials["password"]) ? (p.Principal, null, false) : (null, "wrong username or password", false);
    }

    private (string?, string?, bool) CheckSigV4(HttpContext context, ScenarioData.Provider p, string bodyHash)
    {
        var request = context.Request;
        var aws = p.Registration.GetProperty("aws");
        var rawTarget = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
        var queryStart = rawTarget.IndexOf('?', StringComparison.Ordinal);
        var rawPath = queryStart < 0 ? rawTarget : rawTarget[..queryStart];
        var rawQuery = queryStart < 0 ? "" : rawTarget[(queryStart + 1)..];
        var headers = request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);

        var problem = SigV4Verifier.Verify(request.Method, rawPath, rawQuery, headers, bodyHash, new SigV4Verifier.Expected(
            p.Credentials["access_key_id"], p.Credentials["secret_access_key"], p.Credentials.GetValueOrDefault("session_token"),
            aws.GetProperty("region").GetString()!, aws.GetProperty("service").GetString()!), time.GetUtcNow());
        return problem is null ? (p.Credentials["access_key_id"], null, headers.ContainsKey("X-Amz-Security-Token")) : (null, problem, false);
    }

    private static (string In, string Name, string Prefix) ApiKeyConfig(ScenarioData.Provider p)
    {
        var config = p.Registration.GetProperty("api_key");
        return (config.GetProperty("in").GetString()!, config.GetProperty("name").GetString()!,
            config.TryGetProperty("prefix", out var prefix) && prefix.ValueKind == System.Text.Json.JsonValueKind.String ? prefix.GetString()! : "");
    }

    private static bool SameSecret(string presented, string expected) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(expected));
}
