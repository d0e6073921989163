using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A provider on Kestrel loopback that records every request exactly as it arrived (method, path, query, the headers
/// that matter, the raw body), for tests of the catalog's per-provider quirks: revocation APIs that are not RFC 7009,
/// a renamed client_id parameter, a separate refresh URL, the Bridge's auth scheme and extra headers. Under
/// /{flavor}/: GET authorize (accepts client_id or client_key) redirects with a code, POST token issues tokens for
/// any grant, and anything else answers 200 with "{}".
/// </summary>
public sealed class QuirkyProvider : IAsyncDisposable
{
    private readonly WebApplication app;

    public sealed record Seen(string Method, string Path, IReadOnlyDictionary<string, string> Query, string? Authorization, string? ContentType,
        IReadOnlyDictionary<string, string> Headers, string Body)
    {
        /// <summary>The body as form fields (empty when it is not a form).</summary>
        public Dictionary<string, string> Form => ContentType?.StartsWith("application/x-www-form-urlencoded", StringComparison.Ordinal) == true
            ? QueryHelpers.ParseQuery(Body).ToDictionary(kv => kv.Key, kv => kv.Value.ToString())
            : [];
    }

    private QuirkyProvider(WebApplication app, string baseUrl)
    {
        this.app = app;
        BaseUrl = baseUrl;
    }

    public string BaseUrl { get; }

    public string ClientId { get; } = "quirky-client-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4));

    public string ClientSecret { get; } = "quirky-secret-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12));

    public ConcurrentQueue<Seen> Requests { get; } = new();

    public string Url(string flavor, string path) => $"{BaseUrl}/{flavor}{path}";

    /// <summary>What reached /{flavor}/…, oldest first.</summary>
    public List<Seen> For(string flavor) => Requests.Where(r => r.Path.StartsWith("/" + flavor + "/", StringComparison.Ordinal)).ToList();

    public static async Task<QuirkyProvider> StartAsync()
    {
        var (builder, baseUrl) = LoopbackHost.CreateBuilder();
        var app = builder.Build();
        var fake = new QuirkyProvider(app, baseUrl);
        app.Map("/{**rest}", fake.HandleAsync);
        await app.StartAsync();
        return fake;
    }

    private async Task<IResult> HandleAsync(HttpRequest request)
    {
        using var reader = new StreamReader(request.Body);
        var body = await reader.ReadToEndAsync();
        string? Header(string name) => request.Headers.TryGetValue(name, out var v) ? v.ToString() : null;
        var seen = new Seen(request.Method, request.Path.Value ?? "", request.Query.ToDictionary(q => q.Key, q => q.Value.ToString()),
            Header("Authorization"), request.ContentType,
            request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString()), body);
        Requests.Enqueue(seen);

        var path = seen.Path;
        if (request.Method == "GET" && path.EndsWith("/authorize", StringComparison.Ordinal))
        {
            var clientId = seen.Query.GetValueOrDefault("client_id") ?? seen.Query.GetValueOrDefault("client_key");
            if (clientId != ClientId || seen.Query.GetValueOrDefault("redirect_uri") is not { } redirectUri)
            {
                return Results.BadRequest("unknown client");
            }

            return Results.Redirect(QueryHelpers.AddQueryString(redirectUri, new Dictionary<string, string?>
            {
                ["code"] = "code-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8)),
                ["state"] = seen.Query.GetValueOrDefault("state"),
            }));
        }

        if (request.Method == "POST" && path.EndsWith("/token", StringComparison.Ordinal))
        {
            return Results.Json(new Dictionary<string, object>
            {
                ["access_token"] = "qat-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(10)),
                ["refresh_token"] = "qrt-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(10)),
                ["token_type"] = "Bearer",
                ["expires_in"] = 3600,
            });
        }

        if (path.EndsWith("/echo-headers", StringComparison.Ordinal))
        {
            // A careless API that reflects what it was sent, and the app's secret, in its response headers.
            request.HttpContext.Response.Headers["X-Echo-Key"] = seen.Headers.GetValueOrDefault("x-api-key");
            request.HttpContext.Response.Headers["X-Echo-Secret"] = ClientSecret;
        }

        return Results.Json(new { });
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
