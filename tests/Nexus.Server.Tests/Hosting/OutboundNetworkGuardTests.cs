using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// Issue 12, item 11: admin-set URLs (provider issuer and endpoints, api_base_url, webhooks) may not reach the
/// deployment's own network. The guard sits in every outbound handler's ConnectCallback, so it sees the resolved
/// addresses. These tests count the TCP connections a loopback listener accepts: a refused upstream never gets one.
/// </summary>
public sealed class OutboundNetworkGuardTests
{
    private static OutboundNetworkGuard Guard(bool allowLoopback, string? allowed = null) =>
        new(new NexusOptions { AllowInsecureUpstreams = allowLoopback, AllowedUpstreamNetworks = allowed },
            new HostingEnvironment { EnvironmentName = "Production" }, NullLogger<OutboundNetworkGuard>.Instance);

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.1.2.3")]
    [InlineData("::1")]
    [InlineData("10.0.0.1")]
    [InlineData("172.16.5.4")]
    [InlineData("172.31.255.255")]
    [InlineData("192.168.1.1")]
    [InlineData("169.254.169.254")]
    [InlineData("100.64.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    [InlineData("fe80::1")]
    [InlineData("fc00::1")]
    [InlineData("fd12:3456::1")]
    [InlineData("::ffff:127.0.0.1")]
    [InlineData("::ffff:169.254.169.254")]
    [InlineData("::ffff:10.1.2.3")]
    [InlineData("64:ff9b::a9fe:a9fe")]
    [InlineData("2002:a9fe:a9fe::1")]
    [InlineData("224.0.0.1")]
    [InlineData("255.255.255.255")]
    public void RefusesLoopbackPrivateLinkLocalAndTheirMappedForms(string address)
    {
        Assert.False(Guard(allowLoopback: false).IsAllowed(IPAddress.Parse(address)));
    }

    [Theory]
    [InlineData("93.184.216.34")]
    [InlineData("8.8.8.8")]
    [InlineData("172.32.0.1")]
    [InlineData("2606:4700::1111")]
    [InlineData("::ffff:8.8.8.8")]
    public void AllowsPublicAddresses(string address)
    {
        Assert.True(Guard(allowLoopback: false).IsAllowed(IPAddress.Parse(address)));
    }

    [Fact]
    public void LoopbackIsAllowedOnlyWithAllowInsecureUpstreamsAndPrivateRangesOnlyWhenListed()
    {
        Assert.True(Guard(allowLoopback: true).IsAllowed(IPAddress.Loopback));
        Assert.False(Guard(allowLoopback: true).IsAllowed(IPAddress.Parse("10.0.0.1")));
        var listed = Guard(allowLoopback: false, "10.20.0.0/16, 169.254.169.254");
        Assert.True(listed.IsAllowed(IPAddress.Parse("10.20.3.4")));
        Assert.True(listed.IsAllowed(IPAddress.Parse("::ffff:10.20.3.4")));
        Assert.True(listed.IsAllowed(IPAddress.Parse("169.254.169.254")));
        Assert.False(listed.IsAllowed(IPAddress.Parse("10.21.0.1")));
        Assert.False(listed.IsAllowed(IPAddress.Loopback));
    }

    [Theory]
    [InlineData("https://10.0.0.5:8443/meta")]
    [InlineData("https://[fd00::5]/meta")]
    [InlineData("http://10.0.0.5/meta")]
    public async Task ThroughAnAllowedEgressProxyARequestForAnInternalHostNeverReachesTheProxy(string url)
    {
        // For https the client tunnels: its first message is a CONNECT to the proxy's own URI, the host it wants in
        // the Host header. That host is checked as a direct request's would be, before the proxy gets a connection.
        await using var proxy = CountingListener.Start();
        using var handler = Guard(allowLoopback: true).Guard(new SocketsHttpHandler { Proxy = new WebProxy($"http://127.0.0.1:{proxy.Port}"), UseProxy = true });
        using var client = new HttpClient(handler);
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(url, TestContext.Current.CancellationToken));
        Assert.Equal(0, proxy.Accepted);
        Assert.DoesNotContain("10.0.0.5", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ThroughAnAllowedEgressProxyARequestForAnAllowedHostGoesToTheProxy()
    {
        await using var proxy = CountingListener.Start();
        using var handler = Guard(allowLoopback: true).Guard(new SocketsHttpHandler { Proxy = new WebProxy($"http://127.0.0.1:{proxy.Port}"), UseProxy = true });
        using var client = new HttpClient(handler);
        // The counting proxy closes every connection it accepts, so the request fails; what matters is that it got there.
        await Assert.ThrowsAnyAsync<Exception>(() => client.GetAsync("https://localhost:9/meta", TestContext.Current.CancellationToken));
        Assert.True(await proxy.WaitForAcceptAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task DiscoveryOfAnIssuerThatResolvesToLoopbackNeverConnects()
    {
        await using var listener = CountingListener.Start();
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:AllowInsecureUpstreams"] = "false");

        // https passes the URL check; "localhost" is a name, so only the resolved address shows where it leads.
        var problem = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "internal",
            issuer = $"https://localhost:{listener.Port}",
            client_id = "c",
            client_secret = "s",
        }, HttpStatusCode.BadGateway);
        Assert.Equal("discovery_failed", problem.GetProperty("code").GetString());
        Assert.Equal(0, listener.Accepted);
    }

    [Fact]
    public async Task TheBridgeNeverConnectsToAnApiBaseUrlOnLoopback()
    {
        await using var listener = CountingListener.Start();
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s =>
        {
            s["Nexus:AllowInsecureUpstreams"] = "false";
            s["ALLOWED_RETURN_URLS"] = "https://app.example.test/";
        });
        await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "internal_api",
            auth_mode = "api_key",
            api_base_url = $"https://localhost:{listener.Port}/api",
            api_key = new { @in = "header", name = "X-Key" },
        }, HttpStatusCode.Created);
        var requested = await Gateway(server, HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_ssrf", provider_name = "internal_api", return_url = "https://app.example.test/back" });
        var id = JsonDocument.Parse(await requested.Content.ReadAsStringAsync()).RootElement.GetProperty("connection_id").GetString()!;
        (await Gateway(server, HttpMethod.Post, $"/v1/connections/{id}/credentials", new { api_key = "sk-internal" })).EnsureSuccessStatusCode();

        using var bridged = await Gateway(server, HttpMethod.Get, $"/v1/bridge/{id}/meta-data");
        Assert.Equal(HttpStatusCode.BadGateway, bridged.StatusCode);
        var body = JsonDocument.Parse(await bridged.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("upstream_unreachable", body.GetProperty("code").GetString());
        Assert.Equal(0, listener.Accepted);
    }

    [Fact]
    public async Task AnAllowListedNetworkIsReachedAndRefusedOrAnsweringPortsGetTheSameMessage()
    {
        await using var listener = CountingListener.Start();
        var closedPort = LoopbackHost.FreePort();
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s =>
        {
            s["Nexus:AllowInsecureUpstreams"] = "false";
            s["Nexus:AllowedUpstreamNetworks"] = "127.0.0.0/8, ::1";
        });

        async Task<string> DiscoverAsync(int port)
        {
            var problem = await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
            {
                name = "p" + port,
                issuer = $"https://127.0.0.1:{port}",
                client_id = "c",
            }, HttpStatusCode.BadGateway);
            return problem.GetProperty("detail").GetString()!.Replace(port.ToString(System.Globalization.CultureInfo.InvariantCulture), "PORT", StringComparison.Ordinal);
        }

        var answered = await DiscoverAsync(listener.Port); // TCP accepts, then the TLS handshake fails
        Assert.Equal(1, listener.Accepted);
        var refused = await DiscoverAsync(closedPort); // nothing listens: connection refused
        Assert.Equal(refused, answered);
    }

    [Fact]
    public async Task WebhooksObeyAllowInsecureUpstreamsAndNeverReachLoopbackWithoutIt()
    {
        await using var listener = CountingListener.Start();
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:AllowInsecureUpstreams"] = "false");

        var refused = await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/webhooks", new { url = $"http://127.0.0.1:{listener.Port}/hook" }, HttpStatusCode.BadRequest);
        Assert.True(refused.GetProperty("errors").TryGetProperty("url", out _), refused.ToString());

        var created = await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/webhooks", new { url = $"https://localhost:{listener.Port}/hook" }, HttpStatusCode.Created);
        var id = created.GetProperty("id").GetString()!;
        await server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/test", expected: HttpStatusCode.Accepted);
        JsonElement delivery = default;
        for (var i = 0; i < 200; i++)
        {
            var deliveries = (await server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/webhooks/{id}/deliveries")).GetProperty("deliveries");
            delivery = deliveries.EnumerateArray().FirstOrDefault(d => d.GetProperty("attempts").GetInt32() >= 1);
            if (delivery.ValueKind != JsonValueKind.Undefined)
            {
                break;
            }

            await listener.WaitForAcceptAsync(TimeSpan.FromMilliseconds(50));
        }

        Assert.NotEqual(JsonValueKind.Undefined, delivery.ValueKind);
        Assert.Equal("unreachable", delivery.GetProperty("last_error").GetString());
        Assert.Equal(0, listener.Accepted);
    }

    private static Task<HttpResponseMessage> Gateway(NexusTestServer server, HttpMethod method, string path, object? json = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-API-Key", server.ApiKey);
        if (json is not null)
        {
            request.Content = JsonContent.Create(json);
        }

        return server.Http.SendAsync(request);
    }

    /// <summary>A TCP listener on loopback (IPv4 and IPv6) that accepts, counts and closes every connection.</summary>
    private sealed class CountingListener : IAsyncDisposable
    {
        private readonly TcpListener listener;
        private readonly CancellationTokenSource stop = new();
        private readonly SemaphoreSlim accepted = new(0);
        private int count;

        private CountingListener()
        {
            listener = new TcpListener(IPAddress.IPv6Any, 0);
            listener.Server.DualMode = true;
            listener.Start();
            _ = AcceptLoopAsync();
        }

        public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;

        public int Accepted => Volatile.Read(ref count);

        public static CountingListener Start() => new();

        /// <summary>Waits for the next accepted connection, or for the timeout (an event-driven poll interval).</summary>
        public Task<bool> WaitForAcceptAsync(TimeSpan timeout) => accepted.WaitAsync(timeout);

        private async Task AcceptLoopAsync()
        {
            try
            {
                while (true)
                {
                    using var client = await listener.AcceptTcpClientAsync(stop.Token);
                    Interlocked.Increment(ref count);
                    accepted.Release();
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        }

        public ValueTask DisposeAsync()
        {
            stop.Cancel();
            listener.Stop();
            stop.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
