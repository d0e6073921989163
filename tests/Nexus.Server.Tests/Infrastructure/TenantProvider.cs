using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A provider with a host per tenant, on one loopback port: every name under .localhost reaches it (RFC 6761 §6.3,
/// which Nexus honours), and it records which host each call named. It plays Shopify (the shop in every URL),
/// Salesforce (instance_url in the token response), Mailchimp (the data centre from a metadata call) and a public
/// client (no secret; PKCE required). /api/… answers with the host and Authorization header it received.
/// </summary>
public sealed class TenantProvider : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly ConcurrentDictionary<string, (string? Challenge, string RedirectUri)> codes = new();
    private readonly ConcurrentDictionary<string, bool> refreshTokens = new();

    public sealed record Seen(string Host, string Path, string? Grant, bool HadSecret, bool HadVerifier, string? Token);

    private TenantProvider(WebApplication app, int port)
    {
        this.app = app;
        Port = port;
    }

    public int Port { get; }

    public string ClientId { get; } = "tenant-client";

    public string ClientSecret { get; } = "tenant-secret-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8));

    /// <summary>The instance_url the token endpoint answers (Salesforce-like); null sends none.</summary>
    public string? InstanceUrl { get; set; }

    /// <summary>The dc the metadata endpoint answers (Mailchimp-like).</summary>
    public string Dc { get; set; } = "us7";

    /// <summary>When set, the consent page answers with this error (access_denied) instead of a code.</summary>
    public string? AuthorizeError { get; set; }

    /// <summary>While set, refresh requests answer 503 (a provider outage).</summary>
    public bool FailRefresh { get; set; }

    /// <summary>When set, a code exchange's answer (its tokens issued, its instance_url read) waits here.</summary>
    public Gate? CodeExchangeGate { get; set; }

    /// <summary>When set, a public client's token requests are refused unless they carry no secret and a PKCE verifier.</summary>
    public bool PublicClient { get; set; }

    public ConcurrentQueue<Seen> Calls { get; } = new();

    public ConcurrentDictionary<string, bool> ValidTokens { get; } = new();

    public string Url(string host, string path) => $"http://{host}:{Port}{path}";

    /// <summary>A browser at the provider's consent pages: tenant.localhost names reach loopback here too; redirects are not followed.</summary>
    public HttpClient Browser { get; } = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        ConnectCallback = async (context, ct) =>
        {
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, context.DnsEndPoint.Port), ct);
            return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
        },
    });

    /// <summary>The person at the consent page: returns the URL of Nexus's callback the provider redirects to.</summary>
    public async Task<string> ConsentAsync(string authorizeUrl)
    {
        using var response = await Browser.GetAsync(authorizeUrl);
        Assert.Equal(System.Net.HttpStatusCode.Redirect, response.StatusCode);
        return response.Headers.Location!.ToString();
    }

    public static async Task<TenantProvider> StartAsync()
    {
        var port = LoopbackHost.FreePort();
        var (builder, _) = LoopbackHost.CreateBuilder(port);
        var app = builder.Build();
        var fake = new TenantProvider(app, port);
        app.MapGet("/authorize", fake.Authorize);
        app.MapPost("/token", fake.TokenAsync);
        app.MapPost("/revoke", fake.RevokeAsync);
        app.MapGet("/metadata", (HttpRequest request) =>
        {
            var auth = request.Headers.Authorization.ToString();
            fake.Calls.Enqueue(new Seen(request.Host.Host, "/metadata", null, false, false, auth));
            return auth.StartsWith("OAuth ", StringComparison.Ordinal) && fake.ValidTokens.ContainsKey(auth[6..])
                ? Results.Json(new { dc = fake.Dc, api_endpoint = $"https://{fake.Dc}.api.example", login = new { email = "m@example.com" } })
                : Results.Unauthorized();
        });
        app.Map("/api/{**rest}", (HttpRequest request) =>
        {
            var auth = request.Headers.Authorization.ToString();
            fake.Calls.Enqueue(new Seen(request.Host.Host, request.Path, null, false, false, auth));
            return auth.StartsWith("Bearer ", StringComparison.Ordinal) && fake.ValidTokens.ContainsKey(auth[7..])
                ? Results.Json(new { host = request.Host.Host, path = request.Path.Value })
                : Results.Unauthorized();
        });
        await app.StartAsync();
        return fake;
    }

    private IResult Authorize(HttpRequest request)
    {
        var q = request.Query;
        if (q["client_id"] != ClientId || q["response_type"] != "code")
        {
            return Results.BadRequest("unknown client");
        }

        if (PublicClient && q["code_challenge_method"] != "S256")
        {
            return Results.BadRequest("a public client must use PKCE S256");
        }

        if (AuthorizeError is { } error)
        {
            return Results.Redirect(QueryHelpers.AddQueryString(q["redirect_uri"].ToString(), new Dictionary<string, string?> { ["error"] = error, ["state"] = q["state"] }));
        }

        var code = "code-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8));
        codes[code] = (q["code_challenge"].ToString() is { Length: > 0 } c ? c : null, q["redirect_uri"].ToString());
        Calls.Enqueue(new Seen(request.Host.Host, "/authorize", null, false, false, null));
        return Results.Redirect(QueryHelpers.AddQueryString(q["redirect_uri"].ToString(), new Dictionary<string, string?> { ["code"] = code, ["state"] = q["state"] }));
    }

    private async Task<IResult> TokenAsync(HttpRequest request)
    {
        var form = (await request.ReadFormAsync()).ToDictionary(f => f.Key, f => f.Value.ToString());
        var hadSecret = form.ContainsKey("client_secret") || request.Headers.Authorization.ToString().StartsWith("Basic ", StringComparison.Ordinal);
        var grant = form.GetValueOrDefault("grant_type");
        Calls.Enqueue(new Seen(request.Host.Host, "/token", grant, hadSecret, form.ContainsKey("code_verifier"), null));
        if (form.GetValueOrDefault("client_id") != ClientId || (PublicClient ? hadSecret : form.GetValueOrDefault("client_secret") != ClientSecret))
        {
            return Results.Json(new { error = "invalid_client" }, statusCode: 401);
        }

        if (grant == "authorization_code")
        {
            if (form.GetValueOrDefault("code") is not { } code || !codes.TryRemove(code, out var issued) || issued.RedirectUri != form.GetValueOrDefault("redirect_uri"))
            {
                return Results.Json(new { error = "invalid_grant" }, statusCode: 400);
            }

            var verifier = form.GetValueOrDefault("code_verifier");
            if ((issued.Challenge is not null || PublicClient)
                && (verifier is null || Convert.ToBase64String(SHA256.HashData(Encoding.ASCII.GetBytes(verifier))).TrimEnd('=').Replace('+', '-').Replace('/', '_') != issued.Challenge))
            {
                return Results.Json(new { error = "invalid_grant", error_description = "PKCE verification failed" }, statusCode: 400);
            }
        }
        else if (grant == "refresh_token")
        {
            if (FailRefresh)
            {
                return Results.Json(new { error = "temporarily_unavailable", error_description = "Down for maintenance" }, statusCode: 503);
            }

            if (form.GetValueOrDefault("refresh_token") is not { } refresh || !refreshTokens.ContainsKey(refresh))
            {
                return Results.Json(new { error = "invalid_grant" }, statusCode: 400);
            }
        }
        else
        {
            return Results.Json(new { error = "unsupported_grant_type" }, statusCode: 400);
        }

        var access = "tenant-at-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8));
        var newRefresh = "tenant-rt-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8));
        ValidTokens[access] = true;
        refreshTokens[newRefresh] = true;
        var body = new Dictionary<string, object> { ["access_token"] = access, ["refresh_token"] = newRefresh, ["token_type"] = "Bearer", ["expires_in"] = 3600, ["scope"] = "read write" };
        if (InstanceUrl is { } instance)
        {
            body["instance_url"] = instance;
        }

        if (grant == "authorization_code" && CodeExchangeGate is { } gate)
        {
            await gate.PassAsync(request.HttpContext.RequestAborted);
        }

        return Results.Json(body);
    }

    private async Task<IResult> RevokeAsync(HttpRequest request)
    {
        var form = (await request.ReadFormAsync()).ToDictionary(f => f.Key, f => f.Value.ToString());
        var token = form.GetValueOrDefault("token");
        Calls.Enqueue(new Seen(request.Host.Host, "/revoke", null, false, false, token));
        if (token is not null)
        {
            ValidTokens.TryRemove(token, out _);
            refreshTokens.TryRemove(token, out _);
        }

        return Results.Ok();
    }

    public async ValueTask DisposeAsync()
    {
        Browser.Dispose();
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
