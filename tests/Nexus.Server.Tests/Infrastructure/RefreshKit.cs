using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// The gateway and admin calls the refresh tests make, against any Nexus: an in-process test server or a separate
/// process (the tests of several instances). Connections are made through the real handshake against a
/// <see cref="RotatingProvider"/>.
/// </summary>
public sealed class RefreshKit(HttpClient http, string apiKey) : IDisposable
{
    private readonly HttpClient browser = new(new SocketsHttpHandler { AllowAutoRedirect = false });

    public HttpClient Http => http;

    public static RefreshKit For(NexusTestServer server) => new(server.Http, server.ApiKey);

    public async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> SendAsync(HttpMethod method, string path, object? json = null, HttpClient? via = null)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-API-Key", apiKey);
        if (json is not null)
        {
            request.Content = JsonContent.Create(json);
        }

        var response = await (via ?? http).SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone(), response);
    }

    public async Task<JsonElement> ExpectAsync(HttpMethod method, string path, object? json, HttpStatusCode expected)
    {
        var (status, body, response) = await SendAsync(method, path, json);
        response.Dispose();
        Assert.True(status == expected, $"Expected {(int)expected} from {method} {path}, got {(int)status}: {body}");
        return body;
    }

    /// <summary>Registers a custom provider pointing at <paramref name="upstream"/>; returns its name.</summary>
    public async Task<string> RegisterAsync(RotatingProvider upstream, object? overrides = null)
    {
        var name = "rotating-" + Guid.NewGuid().ToString("N")[..8];
        var body = new Dictionary<string, object?>
        {
            ["name"] = name,
            ["authorization_url"] = upstream.Url("authorize"),
            ["token_url"] = upstream.Url("token"),
            ["revocation_url"] = upstream.Url("revoke"),
            ["client_id"] = upstream.ClientId,
            ["client_secret"] = upstream.ClientSecret,
            ["scopes"] = new[] { "read" },
        };
        foreach (var property in overrides is null ? [] : JsonSerializer.SerializeToElement(overrides).EnumerateObject())
        {
            body[property.Name] = property.Value;
        }

        await ExpectAsync(HttpMethod.Post, "/v1/providers", body, HttpStatusCode.Created);
        return name;
    }

    /// <summary>A whole handshake: request-connection, the provider's consent, Nexus's callback. Returns the connection id.</summary>
    public async Task<string> ConnectAsync(string provider, string workspace = "ws_refresh")
    {
        var (id, callbackUrl) = await ConsentAsync(provider, workspace);
        using var callback = await CallbackAsync(callbackUrl);
        Assert.True(callback.StatusCode == HttpStatusCode.Redirect, $"callback answered {(int)callback.StatusCode}: {await callback.Content.ReadAsStringAsync()}");
        Assert.Contains("status=active", callback.Headers.Location!.ToString(), StringComparison.Ordinal);
        return id;
    }

    /// <summary>request-connection and the provider's consent: the connection id, and the callback URL the provider sent the browser to (not followed yet).</summary>
    public async Task<(string ConnectionId, Uri CallbackUrl)> ConsentAsync(string provider, string workspace = "ws_refresh")
    {
        var requested = await ExpectAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = workspace, provider_name = provider, return_url = BrokerFixture.ReturnUrl }, HttpStatusCode.Created);
        return (requested.GetProperty("connection_id").GetString()!, await ConsentAtAsync(requested.GetProperty("auth_url").GetString()!));
    }

    /// <summary>The browser at the provider's consent page (of a connect or a reconnect): the callback URL the provider sends it to.</summary>
    public async Task<Uri> ConsentAtAsync(string authUrl)
    {
        using var consent = await browser.GetAsync(authUrl);
        Assert.Equal(HttpStatusCode.Redirect, consent.StatusCode);
        return consent.Headers.Location!;
    }

    /// <summary>The browser at Nexus's callback: the response (a redirect to return_url, or a problem).</summary>
    public Task<HttpResponseMessage> CallbackAsync(Uri callbackUrl) => browser.GetAsync(callbackUrl);

    /// <summary>GET /v1/token/{id}: the status, and the access token when there is one.</summary>
    public async Task<(HttpStatusCode Status, string? AccessToken, JsonElement Body)> ReadAsync(string connectionId, HttpClient? via = null)
    {
        var (status, body, response) = await SendAsync(HttpMethod.Get, $"/v1/token/{connectionId}", via: via);
        response.Dispose();
        return (status, status == HttpStatusCode.OK ? body.GetProperty("credentials").GetProperty("access_token").GetString() : null, body);
    }

    public async Task<string> TokenAsync(string connectionId)
    {
        var (status, token, body) = await ReadAsync(connectionId);
        Assert.True(status == HttpStatusCode.OK, $"GET /v1/token answered {(int)status}: {body}");
        return token!;
    }

    public Task<JsonElement> ConnectionAsync(string connectionId) => ExpectAsync(HttpMethod.Get, $"/v1/connections/{connectionId}", null, HttpStatusCode.OK);

    /// <summary>Creates a webhook (all events unless given) and returns (id, secret).</summary>
    public async Task<(string Id, string Secret)> WebhookAsync(string url, string[]? events = null, string? workspace = null)
    {
        var created = await ExpectAsync(HttpMethod.Post, "/v1/admin/webhooks", new { url, events, workspace_id = workspace }, HttpStatusCode.Created);
        return (created.GetProperty("id").GetString()!, created.GetProperty("secret").GetString()!);
    }

    /// <summary>
    /// Polls until <paramref name="condition"/> holds, or fails the test with <paramref name="what"/>: for state that
    /// signals no change (a database column, another process). What a fake server sees is waited on with its
    /// <see cref="ChangeSignal"/> instead (RotatingProvider.WaitUntilAsync, WebhookReceiver.WaitUntilAsync).
    /// </summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new Xunit.Sdk.XunitException("Timed out waiting: " + what);
            }

            await Task.Delay(100);
        }
    }

    public void Dispose() => browser.Dispose();
}
