using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A real web application that uses Nexus as its identity provider exactly as the Nexus OAuth 2.0 Integration
/// Guide's Flask example does: /login redirects to /api/oauth/authorize, /callback checks state and exchanges the
/// code at /api/v1/oauth/exchange with the secret in the query string, then calls a protected Nexus API.
/// </summary>
public sealed class SampleClientApp : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly Dictionary<string, string> pendingStates = [];

    private SampleClientApp(WebApplication app, string baseUrl)
    {
        this.app = app;
        BaseUrl = baseUrl;
    }

    public string BaseUrl { get; }

    public string RedirectUri => BaseUrl + "/callback";

    public static async Task<SampleClientApp> StartAsync(string nexusUrl, Func<(string ClientId, string ClientSecret)> credentials)
    {
        var (builder, baseUrl) = LoopbackHost.CreateBuilder();
        var app = builder.Build();
        var sample = new SampleClientApp(app, baseUrl);
        using var http = new HttpClient();

        app.MapGet("/", () => Results.Content("<!doctype html><title>Sample</title><link rel=\"icon\" href=\"data:,\"><a id=\"login\" href=\"/login\">Sign in with Nexus</a>", "text/html"));
        app.MapGet("/login", () =>
        {
            var state = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
            lock (sample.pendingStates)
            {
                sample.pendingStates[state] = state;
            }

            var (clientId, _) = credentials();
            return Results.Redirect($"{nexusUrl}/api/oauth/authorize?client_id={clientId}&redirect_uri={Uri.EscapeDataString(sample.RedirectUri)}&state={state}");
        });
        app.MapGet("/callback", async (string? code, string? state, string? error) =>
        {
            bool known;
            lock (sample.pendingStates)
            {
                known = state is not null && sample.pendingStates.Remove(state);
            }

            if (!known || code is null)
            {
                return Results.Content($"<!doctype html><title>Sample</title><link rel=\"icon\" href=\"data:,\"><p id=\"result\">Failed: {WebUtility.HtmlEncode(error ?? "invalid state")}</p>", "text/html", statusCode: 400);
            }

            var (clientId, secret) = credentials();
            using var exchange = await new HttpClient().PostAsync(
                $"{nexusUrl}/api/v1/oauth/exchange?code={Uri.EscapeDataString(code)}&client_id={clientId}&client_secret={Uri.EscapeDataString(secret)}&redirect_uri={Uri.EscapeDataString(sample.RedirectUri)}&state={state}&expiration=480",
                null);
            var tokens = JsonDocument.Parse(await exchange.Content.ReadAsStringAsync()).RootElement;
            if (!exchange.IsSuccessStatusCode)
            {
                return Results.Content($"<!doctype html><title>Sample</title><link rel=\"icon\" href=\"data:,\"><p id=\"result\">Exchange failed: {WebUtility.HtmlEncode(tokens.ToString())}</p>", "text/html", statusCode: 400);
            }

            using var me = new HttpRequestMessage(HttpMethod.Get, $"{nexusUrl}/api/v1/me");
            me.Headers.Authorization = new("Bearer", tokens.GetProperty("access_token").GetString());
            using var meResponse = await new HttpClient().SendAsync(me);
            var subject = JsonDocument.Parse(await meResponse.Content.ReadAsStringAsync()).RootElement.GetProperty("sub").GetString();
            return Results.Content($"<!doctype html><title>Sample</title><link rel=\"icon\" href=\"data:,\"><p id=\"result\">Signed in as {WebUtility.HtmlEncode(subject)}; token valid for {tokens.GetProperty("expires_in").GetInt32()} s</p>", "text/html");
        });
        await app.StartAsync();
        return sample;
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
