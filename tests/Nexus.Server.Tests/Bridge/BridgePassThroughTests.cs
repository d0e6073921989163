using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Bridge;

/// <summary>
/// What the whole Nexus pipeline (not only the forwarding engine) does to a Bridge exchange: the provider's answer
/// reaches the caller as the provider sent it, and nothing of Nexus's own reaches the provider.
/// </summary>
public sealed class BridgePassThroughTests : IAsyncLifetime
{
    private TestDatabase db = null!;
    private NexusTestServer server = null!;
    private EchoUpstream echo = null!;
    private string connectionId = null!;

    public async ValueTask InitializeAsync()
    {
        echo = await EchoUpstream.StartAsync();
        db = await TestDatabase.CreateAsync();
        server = await NexusTestServer.StartAsync(db, s => s["ALLOWED_RETURN_URLS"] = "https://app.example.test/");
        await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "echo_api",
            auth_mode = "api_key",
            api_base_url = echo.BaseUrl,
            api_key = new { @in = "header", name = "X-Echo-Key" },
        }, HttpStatusCode.Created);
        var requested = await SendAsync(HttpMethod.Post, "/v1/request-connection", new { workspace_id = "ws_pass", provider_name = "echo_api", return_url = "https://app.example.test/back" });
        connectionId = requested.GetProperty("connection_id").GetString()!;
        await SendAsync(HttpMethod.Post, $"/v1/connections/{connectionId}/credentials", new { api_key = "sk-pass-through" });
    }

    public async ValueTask DisposeAsync()
    {
        await server.DisposeAsync();
        await db.DisposeAsync();
        await echo.DisposeAsync();
    }

    private async Task<JsonElement> SendAsync(HttpMethod method, string path, object body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = JsonContent.Create(body) };
        request.Headers.Add("X-API-Key", server.ApiKey);
        using var response = await server.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private Task<HttpResponseMessage> BridgeAsync(string path)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{connectionId}{path}");
        request.Headers.Add("X-API-Key", server.ApiKey);
        return server.Http.SendAsync(request);
    }

    [Theory]
    [InlineData(404)]
    [InlineData(500)]
    public async Task PassesAnEmptyProviderErrorThroughWithoutFillingInABody(int code)
    {
        using var response = await BridgeAsync($"/bare/{code}");
        Assert.Equal(code, (int)response.StatusCode);
        Assert.Equal("", await response.Content.ReadAsStringAsync());
        Assert.Null(response.Content.Headers.ContentType);
        Assert.Equal("sk-pass-through", echo.Last.Headers["X-Echo-Key"]);
    }

    [Fact]
    public async Task SendsNoTraceContextOfNexusToTheProvider()
    {
        using var response = await BridgeAsync("/items");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("/items", echo.Last.Path);
        Assert.False(echo.Last.Headers.ContainsKey("traceparent"), "traceparent: " + echo.Last.Headers.GetValueOrDefault("traceparent"));
        Assert.False(echo.Last.Headers.ContainsKey("Request-Id"));
        Assert.False(echo.Last.Headers.ContainsKey("baggage"));
    }

    [Fact]
    public async Task CopiesRepeatedAndUnusualProviderHeadersAsSent()
    {
        using var response = await BridgeAsync("/anything");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("yes", response.Headers.GetValues("X-Echo").Single());
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.False(response.Headers.Contains("Set-Cookie"));
        Assert.Equal(response.Content.Headers.ContentLength, (await response.Content.ReadAsByteArrayAsync()).Length);
    }
}
