using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A small OAuth 2.0 provider on Kestrel loopback, playing three real providers' quirks under /{flavor}/:
/// github (form-encoded token response unless Accept: application/json; errors with HTTP 200), slack (user token
/// only at authed_user.access_token; errors as ok:false) and google (JSON, expires_in, a refresh_token only on the
/// first consent of a client). It checks client authentication, the code, redirect_uri and the PKCE verifier, and
/// records token and revocation calls. /oidc/.well-known/openid-configuration describes the google flavor.
/// </summary>
public sealed class FakeOAuthProvider : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly ConcurrentDictionary<string, IssuedCode> codes = new();
    private readonly ConcurrentDictionary<string, bool> consentedBefore = new();

    public sealed record IssuedCode(string Flavor, string ClientId, string RedirectUri, string? Challenge, string? Scope);

    public sealed record TokenCall(string Flavor, string AuthMethod, bool HadVerifier, string ContentType, string? Accept, string? Error);

    public sealed record RevocationCall(string Flavor, string? Token, string? Hint, string AuthMethod);

    private FakeOAuthProvider(WebApplication app, string baseUrl)
    {
        this.app = app;
        BaseUrl = baseUrl;
    }

    public string BaseUrl { get; }

    public string ClientId { get; } = "fake-client-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4));

    public string ClientSecret { get; } = "fake-secret-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16));

    public string OidcIssuer => BaseUrl + "/oidc";

    /// <summary>Set to make /authorize answer with this error (e.g. access_denied) instead of a code.</summary>
    public string? AuthorizeError { get; set; }

    /// <summary>Set to make refresh_token grants answer 503 temporarily_unavailable ("Down for maintenance"): a provider outage.</summary>
    public bool FailRefresh { get; set; }

    /// <summary>RFC 9207: the discovery document says authorization_response_iss_parameter_supported.</summary>
    public bool AdvertisesIss { get; set; }

    /// <summary>The iss the authorize endpoint sends back (null: none). Set it to another issuer to stage a mix-up.</summary>
    public string? SendIss { get; set; }

    public ConcurrentQueue<TokenCall> TokenCalls { get; } = new();

    public ConcurrentQueue<RevocationCall> Revocations { get; } = new();

    /// <summary>Every access and refresh token handed out, for at-rest scans.</summary>
    public ConcurrentBag<string> IssuedTokens { get; } = [];

    public string Url(string flavor, string endpoint) => $"{BaseUrl}/{flavor}/{endpoint}";

    public static async Task<FakeOAuthProvider> StartAsync()
    {
        var (builder, baseUrl) = LoopbackHost.CreateBuilder();
        var app = builder.Build();
        var fake = new FakeOAuthProvider(app, baseUrl);
        app.MapGet("/{flavor}/authorize", fake.Authorize);
        app.MapPost("/{flavor}/token", fake.TokenAsync);
        app.MapPost("/{flavor}/revoke", fake.RevokeAsync);
        app.MapGet("/{flavor}/userinfo", (HttpRequest request) => request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.Ordinal)
            ? Results.Json(new { login = "octocat", email = "octocat@example.com" })
            : Results.Unauthorized());
        app.MapGet("/oidc/.well-known/openid-configuration", () => Results.Json(new Dictionary<string, object>
        {
            ["authorization_response_iss_parameter_supported"] = fake.AdvertisesIss,
            ["issuer"] = fake.OidcIssuer,
            ["authorization_endpoint"] = fake.Url("google", "authorize"),
            ["token_endpoint"] = fake.Url("google", "token"),
            ["revocation_endpoint"] = fake.Url("google", "revoke"),
            ["userinfo_endpoint"] = fake.Url("google", "userinfo"),
            ["code_challenge_methods_supported"] = new[] { "S256" },
            ["token_endpoint_auth_methods_supported"] = new[] { "client_secret_post", "client_secret_basic" },
        }));
        await app.StartAsync();
        return fake;
    }

    private IResult Authorize(string flavor, HttpRequest request)
    {
        var q = request.Query;
        var redirectUri = q["redirect_uri"].ToString();
        if (q["client_id"] != ClientId || q["response_type"] != "code" || string.IsNullOrEmpty(redirectUri))
        {
            return Results.BadRequest("unknown client or bad request");
        }

        if (!string.IsNullOrEmpty(q["code_challenge"]) && q["code_challenge_method"] != "S256")
        {
            return Results.BadRequest("only S256");
        }

        var parameters = new Dictionary<string, string?> { ["state"] = q["state"].ToString() };
        if (SendIss is { } iss)
        {
            parameters["iss"] = iss;
        }

        if (AuthorizeError is { } error)
        {
            parameters["error"] = error;
            parameters["error_description"] = "The user denied access";
        }
        else
        {
            var code = "code-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
            codes[code] = new IssuedCode(flavor, ClientId, redirectUri, q["code_challenge"].ToString() is { Length: > 0 } c ? c : null, q["scope"]);
            parameters["code"] = code;
        }

        return Results.Redirect(QueryHelpers.AddQueryString(redirectUri, parameters));
    }

    private async Task<IResult> TokenAsync(string flavor, HttpRequest request)
    {
        var form = await ReadParametersAsync(request);
        var (authMethod, clientId, clientSecret) = ClientAuth(request, form);
        var accept = request.Headers.Accept.ToString();
        string Fail(string e)
        {
            TokenCalls.Enqueue(new TokenCall(flavor, authMethod, form.ContainsKey("code_verifier"), request.ContentType ?? "", accept, e));
            return e;
        }

        if (clientId != ClientId || clientSecret != ClientSecret)
        {
            return Error(flavor, Fail("invalid_client"), accept);
        }

        if (FailRefresh && form.GetValueOrDefault("grant_type") == "refresh_token")
        {
            Fail("temporarily_unavailable");
            return Results.Json(new { error = "temporarily_unavailable", error_description = "Down for maintenance" }, statusCode: 503);
        }

        if (form.GetValueOrDefault("grant_type") != "authorization_code" || form.GetValueOrDefault("code") is not { } code || !codes.TryRemove(code, out var issued)
            || issued.Flavor != flavor || issued.RedirectUri != form.GetValueOrDefault("redirect_uri"))
        {
            return Error(flavor, Fail("invalid_grant"), accept);
        }

        if (issued.Challenge is not null)
        {
            var verifier = form.GetValueOrDefault("code_verifier");
            var computed = verifier is null ? null : Base64UrlEncode(SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));
            if (computed != issued.Challenge)
            {
                return Error(flavor, Fail("invalid_grant"), accept);
            }
        }

        TokenCalls.Enqueue(new TokenCall(flavor, authMethod, form.ContainsKey("code_verifier"), request.ContentType ?? "", accept, null));
        var access = flavor switch { "github" => "gho_", "slack" => "xoxp-", _ => "ya29." } + Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        IssuedTokens.Add(access);
        switch (flavor)
        {
            case "github":
                // Like GitHub: form-encoded unless the client asks for JSON; no expiry, no refresh token.
                var values = new Dictionary<string, string> { ["access_token"] = access, ["token_type"] = "bearer", ["scope"] = issued.Scope ?? "" };
                return accept.Contains("application/json", StringComparison.Ordinal)
                    ? Results.Json(values)
                    : Results.Text(string.Join('&', values.Select(kv => $"{kv.Key}={Uri.EscapeDataString(kv.Value)}")), "application/x-www-form-urlencoded");
            case "slack":
                // A user-scope-only install: the token is at authed_user.access_token, not at the top level.
                return Results.Json(new { ok = true, app_id = "A1", authed_user = new { id = "U1", scope = issued.Scope, access_token = access, token_type = "user" }, team = new { id = "T1" } });
            default:
                // Like Google: a refresh token only the first time this client is consented to.
                var body = new Dictionary<string, object> { ["access_token"] = access, ["expires_in"] = 3599, ["token_type"] = "Bearer", ["scope"] = issued.Scope ?? "" };
                if (consentedBefore.TryAdd(clientId!, true))
                {
                    var refresh = "1//" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
                    IssuedTokens.Add(refresh);
                    body["refresh_token"] = refresh;
                }

                return Results.Json(body);
        }
    }

    private async Task<IResult> RevokeAsync(string flavor, HttpRequest request)
    {
        var bearer = request.Headers.Authorization.ToString() is { } h && h.StartsWith("Bearer ", StringComparison.Ordinal) ? h[7..] : null;
        var form = request.ContentLength is > 0 || request.ContentType is not null ? await ReadParametersAsync(request) : [];
        var (authMethod, _, _) = ClientAuth(request, form);
        Revocations.Enqueue(new RevocationCall(flavor, bearer ?? form.GetValueOrDefault("token"), form.GetValueOrDefault("token_type_hint"), bearer is null ? authMethod : "bearer"));
        return Results.Ok();
    }

    private static IResult Error(string flavor, string error, string accept) => flavor switch
    {
        "github" => accept.Contains("application/json", StringComparison.Ordinal)
            ? Results.Json(new { error, error_description = "GitHub-style error with HTTP 200" })
            : Results.Text($"error={error}&error_description=GitHub-style+error", "application/x-www-form-urlencoded"),
        "slack" => Results.Json(new { ok = false, error }),
        _ => Results.Json(new { error, error_description = "Google-style error" }, statusCode: 400),
    };

    private static async Task<Dictionary<string, string>> ReadParametersAsync(HttpRequest request)
    {
        if (request.HasJsonContentType())
        {
            return await request.ReadFromJsonAsync<Dictionary<string, string>>() ?? [];
        }

        var form = await request.ReadFormAsync();
        return form.ToDictionary(kv => kv.Key, kv => kv.Value.ToString());
    }

    private static (string Method, string? Id, string? Secret) ClientAuth(HttpRequest request, Dictionary<string, string> form)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Basic ", StringComparison.Ordinal))
        {
            var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..]));
            var colon = decoded.IndexOf(':', StringComparison.Ordinal);
            return ("client_secret_basic", Uri.UnescapeDataString(decoded[..colon]), Uri.UnescapeDataString(decoded[(colon + 1)..]));
        }

        return ("client_secret_post", form.GetValueOrDefault("client_id"), form.GetValueOrDefault("client_secret"));
    }

    private static string Base64UrlEncode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
