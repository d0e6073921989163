using System.Net;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// Issue 12, item 6: Nexus behind a TLS-terminating proxy. Kestrel sees http; BASE_URL says https. Cookies must be
/// Secure and HSTS sent anyway, and X-Forwarded-* believed only from proxies the operator named.
/// </summary>
public sealed class TransportSecurityTests
{
    private static async Task<HttpResponseMessage> SignInPageAsync(NexusTestServer server, Action<HttpRequestMessage>? configure = null)
    {
        using var client = new HttpClient(new SocketsHttpHandler { UseCookies = false, AllowAutoRedirect = false }) { BaseAddress = new Uri(server.BaseUrl) };
        var request = new HttpRequestMessage(HttpMethod.Get, "/account/signin");
        configure?.Invoke(request);
        var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response;
    }

    private static string[] Cookies(HttpResponseMessage response) =>
        response.Headers.TryGetValues("Set-Cookie", out var values) ? [.. values] : [];

    [Fact]
    public async Task WithAnHttpsBaseUrlEveryCookieIsSecureAndHstsIsSentThoughTheProxySpokePlainHttp()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["BASE_URL"] = "https://nexus.example.test");

        using var response = await SignInPageAsync(server);
        var cookies = Cookies(response);
        Assert.NotEmpty(cookies);
        Assert.All(cookies, c => Assert.Contains("secure", c, StringComparison.OrdinalIgnoreCase));
        Assert.Equal("max-age=31536000", response.Headers.GetValues("Strict-Transport-Security").Single());

        // The form still works: the antiforgery check does not demand https of the hop from the proxy.
        Assert.Contains("__csrf", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithAnHttpBaseUrlNothingChanges()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);

        using var response = await SignInPageAsync(server);
        Assert.All(Cookies(response), c => Assert.DoesNotContain("secure", c, StringComparison.OrdinalIgnoreCase));
        Assert.False(response.Headers.Contains("Strict-Transport-Security"));
    }

    [Fact]
    public async Task ForwardedProtoIsBelievedFromATrustedProxyOnly()
    {
        static void Forwarded(HttpRequestMessage request)
        {
            request.Headers.Add("X-Forwarded-Proto", "https");
            request.Headers.Add("X-Forwarded-For", "203.0.113.9");
        }

        await using var db = await TestDatabase.CreateAsync();
        await using (var untrusting = await NexusTestServer.StartAsync(db))
        {
            using var ignored = await SignInPageAsync(untrusting, Forwarded);
            Assert.All(Cookies(ignored), c => Assert.DoesNotContain("secure", c, StringComparison.OrdinalIgnoreCase));
        }

        await using var db2 = await TestDatabase.CreateAsync();
        await using var trusting = await NexusTestServer.StartAsync(db2, s => s["Nexus:TrustedProxies"] = "127.0.0.1, ::1");
        using var believed = await SignInPageAsync(trusting, Forwarded);
        var cookies = Cookies(believed);
        Assert.NotEmpty(cookies);
        Assert.All(cookies, c => Assert.Contains("secure", c, StringComparison.OrdinalIgnoreCase));
    }

    // An invalid Nexus:TrustedProxies stops startup with one line: StartupValidationTests, which runs the real process.
}
