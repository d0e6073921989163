using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
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
        connectionId = await ConnectEchoAsync(server);
    }

    /// <summary>Registers the echo upstream as an api_key provider on <paramref name="nexus"/> and connects it; returns the connection id.</summary>
    private async Task<string> ConnectEchoAsync(NexusTestServer nexus)
    {
        await nexus.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "echo_api",
            auth_mode = "api_key",
            api_base_url = echo.BaseUrl,
            api_key = new { @in = "header", name = "X-Echo-Key" },
        }, HttpStatusCode.Created);
        var requested = await SendAsync(nexus, HttpMethod.Post, "/v1/request-connection", new { workspace_id = "ws_pass", provider_name = "echo_api", return_url = "https://app.example.test/back" });
        var id = requested.GetProperty("connection_id").GetString()!;
        await SendAsync(nexus, HttpMethod.Post, $"/v1/connections/{id}/credentials", new { api_key = "sk-pass-through" });
        return id;
    }

    public async ValueTask DisposeAsync()
    {
        await server.DisposeAsync();
        await db.DisposeAsync();
        await echo.DisposeAsync();
    }

    private static async Task<JsonElement> SendAsync(NexusTestServer nexus, HttpMethod method, string path, object body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = JsonContent.Create(body) };
        request.Headers.Add("X-API-Key", nexus.ApiKey);
        using var response = await nexus.Http.SendAsync(request);
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
    [InlineData("/v1/bridge/{id}")]
    [InlineData("/v1/proxy")]
    public async Task AClientThatFollowsAProvidersRedirectInsideItsApiComesBackThroughTheBridgeAndNeverSendsTheProviderItsNexusKey(string prefix)
    {
        // HttpClient keeps custom headers (the Nexus key, the connection header) on every hop of a redirect it follows.
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = true }) { BaseAddress = new Uri(server.BaseUrl) };
        var bridge = prefix.Replace("{id}", connectionId, StringComparison.Ordinal);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{bridge}/redirect?to=" + Uri.EscapeDataString(echo.BaseUrl + "/status/200"));
        request.Headers.Add("X-API-Key", server.ApiKey);
        request.Headers.Add("Nexus-Connection-Id", connectionId);
        var before = echo.Requests.Count;
        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new Uri(server.BaseUrl + bridge + "/status/200"), response.RequestMessage!.RequestUri);
        var hops = echo.Requests.Skip(before).ToList();
        Assert.Equal(["/redirect", "/status/200"], hops.Select(r => r.Path));
        Assert.All(hops, r => Assert.Equal("sk-pass-through", r.Headers["X-Echo-Key"]));
        Assert.All(hops, r => Assert.False(r.Headers.ContainsKey("X-API-Key")));
    }

    [Theory]
    [InlineData("/v1/bridge/{id}")]
    [InlineData("/v1/proxy")]
    public async Task BehindAProxyThatPublishesNexusUnderAPathAFollowedRedirectComesBackByTheProxyAndTheBridge(string prefix)
    {
        // A reverse proxy publishes Nexus at {proxy}/nexus and strips /nexus before forwarding (nginx's
        // location /nexus/ { proxy_pass http://nexus/; }); BASE_URL is the public URL, path included.
        var (builder, proxyUrl) = LoopbackHost.CreateBuilder();
        await using var nexusDb = await TestDatabase.CreateAsync();
        await using var published = await NexusTestServer.StartAsync(nexusDb, s =>
        {
            s["BASE_URL"] = proxyUrl + "/nexus";
            s["ALLOWED_RETURN_URLS"] = "https://app.example.test/";
        });
        var id = await ConnectEchoAsync(published);
        using var forward = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false });
        await using var proxy = builder.Build();
        proxy.Map("/nexus/{**rest}", async (HttpContext context) =>
        {
            var raw = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
            using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), published.BaseUrl + raw["/nexus".Length..]);
            foreach (var (name, values) in context.Request.Headers)
            {
                if (name is not "Host")
                {
                    request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
                }
            }

            using var answer = await forward.SendAsync(request, context.RequestAborted);
            context.Response.StatusCode = (int)answer.StatusCode;
            if (answer.Headers.Location is { } location)
            {
                context.Response.Headers.Location = location.OriginalString;
            }

            await answer.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
        });
        await proxy.StartAsync(TestContext.Current.CancellationToken);

        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = true }) { BaseAddress = new Uri(proxyUrl) };
        var bridge = "/nexus" + prefix.Replace("{id}", id, StringComparison.Ordinal);
        using var call = new HttpRequestMessage(HttpMethod.Get, $"{bridge}/redirect?to=" + Uri.EscapeDataString(echo.BaseUrl + "/status/200"));
        call.Headers.Add("X-API-Key", published.ApiKey);
        call.Headers.Add("Nexus-Connection-Id", id);
        var before = echo.Requests.Count;
        using var response = await client.SendAsync(call, TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new Uri(proxyUrl + bridge + "/status/200"), response.RequestMessage!.RequestUri);
        var hops = echo.Requests.Skip(before).ToList();
        Assert.Equal(["/redirect", "/status/200"], hops.Select(r => r.Path));
        Assert.All(hops, r => Assert.Equal("sk-pass-through", r.Headers["X-Echo-Key"]));
        await proxy.StopAsync(TestContext.Current.CancellationToken);
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

    [Theory]
    [InlineData("/V1/BRIDGE/{id}/items")]
    [InlineData("/v1/Bridge/{id}/items")]
    [InlineData("/v1/bridge/{encoded}/items")]
    [InlineData("/v1/bridge/other/../{id}/items")]
    public async Task RefusesABridgePathItCannotSplitExactlyInsteadOfForwardingToTheApiBase(string template)
    {
        var count = echo.Requests.Count;
        var path = template.Replace("{id}", connectionId, StringComparison.Ordinal).Replace("{encoded}", connectionId.Replace("_", "%5F", StringComparison.Ordinal), StringComparison.Ordinal);
        using var request = new HttpRequestMessage(HttpMethod.Delete, new Uri(server.BaseUrl + path, new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true }));
        request.Headers.Add("X-API-Key", server.ApiKey);
        using var response = await server.Http.SendAsync(request);
        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"{path} → {(int)response.StatusCode}");
        Assert.Equal(count, echo.Requests.Count);
    }

    [Fact]
    public async Task SendsNoTraceContextOfNexusToTheProvider()
    {
        // The caller sends none either (in this process an ActivityListener of a test server would make HttpClient add
        // one, which the Bridge passes through as the caller's own header).
        using var quiet = new HttpClient(new SocketsHttpHandler { ActivityHeadersPropagator = null }) { BaseAddress = new Uri(server.BaseUrl) };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{connectionId}/items");
        request.Headers.Add("X-API-Key", server.ApiKey);
        using var response = await quiet.SendAsync(request);
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

/// <summary>
/// The Bridge's routes skip the middleware after routing (ShortCircuit), the exception handler included, so the
/// Bridge answers its own unexpected errors: as the problem every other endpoint gives, never an empty 500.
/// </summary>
public sealed class BridgeUnexpectedErrorTests(BridgeUnexpectedErrorTests.BrokenRefresherFixture fixture) : IClassFixture<BridgeUnexpectedErrorTests.BrokenRefresherFixture>
{
    public sealed class BrokenRefresherFixture : BrokerFixture
    {
        protected override void ConfigureServices(IServiceCollection services) =>
            services.AddSingleton<Nexus.Server.Bridge.IBridgeTokenRefresher, BrokenRefresher>();
    }

    private sealed class BrokenRefresher : Nexus.Server.Bridge.IBridgeTokenRefresher
    {
        public Task<string?> RefreshAsync(string connectionId, string rejected, CancellationToken ct) => throw new InvalidOperationException("refresher-broke-on-purpose");
    }

    [Fact]
    public async Task AnUnexpectedErrorInTheBridgeIsAProblemWithATraceIdNotAnEmpty500()
    {
        await using var echo = await EchoUpstream.StartAsync();
        var provider = await fixture.Kit.RegisterAsync("github", new { api_base_url = echo.BaseUrl });
        var (id, _) = await fixture.Kit.ConnectAsync(provider, "ws_broken_bridge");

        // The echo upstream's /protected answers 401 to a token it does not know, so the Bridge asks the
        // (broken) refresher for a new one.
        using var response = await fixture.Server.Http.SendAsync(fixture.Kit.Gateway(HttpMethod.Get, $"/v1/bridge/{id}/protected"));
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("internal_error", problem.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("trace_id").GetString()));
        Assert.DoesNotContain("refresher-broke-on-purpose", problem.ToString(), StringComparison.Ordinal);
        Assert.Equal("/protected", echo.Last.Path);
    }
}
