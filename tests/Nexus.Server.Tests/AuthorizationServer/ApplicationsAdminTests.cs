using System.Net;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

public sealed class ApplicationsAdminTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    [Fact]
    public async Task APathWithDotSegmentsActsOnTheApplicationItRoutesToNotOnTheSegmentItWrote()
    {
        // "/v1/admin/applications/A/../B" routes to B (the server removes dot segments before routing); the raw path
        // still holds A where B's id sits in the route, which the client id read from the raw target must not take.
        var (a, _) = await RegisterApplicationAsync(Server);
        var (b, _) = await RegisterApplicationAsync(Server);
        var uri = new Uri(Server.BaseUrl);
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port, TestContext.Current.CancellationToken);
        await using var stream = tcp.GetStream();
        var request = $"DELETE /v1/admin/applications/{a}/../{b} HTTP/1.1\r\nHost: {uri.Authority}\r\nX-API-Key: {Server.ApiKey}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(request), TestContext.Current.CancellationToken);
        using var reader = new StreamReader(stream);
        var statusLine = await reader.ReadLineAsync(TestContext.Current.CancellationToken);

        Assert.StartsWith("HTTP/1.1 204", statusLine, StringComparison.Ordinal);
        Assert.Equal("revoked", (await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{b}")).GetProperty("status").GetString());
        Assert.Equal("active", (await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{a}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task RegistersConfidentialApplicationWithTheGuidesFields()
    {
        var created = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/applications", new
        {
            name = "Project Tracker",
            redirect_uris = new[] { "https://yourapp.com/oauth/callback" },
            description = "Tracks projects",
            base_url = "https://yourapp.com",
            owner_email = "owner@yourapp.com",
            type = "confidential",
        }, HttpStatusCode.Created);
        var id = created.GetProperty("client_id").GetString()!;
        Assert.StartsWith("nxs_", created.GetProperty("client_secret").GetString());
        Assert.Equal("confidential", created.GetProperty("type").GetString());
        Assert.Equal("owner@yourapp.com", created.GetProperty("owner_email").GetString());

        var fetched = await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{id}");
        Assert.False(fetched.TryGetProperty("client_secret", out _));
        Assert.Equal("https://yourapp.com/oauth/callback", fetched.GetProperty("redirect_uris")[0].GetString());
        var list = await Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/applications");
        Assert.Contains(list.GetProperty("applications").EnumerateArray(), a => a.GetProperty("client_id").GetString() == id);

        var rotated = await Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/applications/{id}/secret");
        Assert.NotEqual(created.GetProperty("client_secret").GetString(), rotated.GetProperty("client_secret").GetString());

        var patched = await Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/applications/{id}", new { redirect_uris = new[] { "https://yourapp.com/v2/callback" } });
        Assert.Equal("https://yourapp.com/v2/callback", patched.GetProperty("redirect_uris")[0].GetString());
        Assert.Equal("Project Tracker", patched.GetProperty("name").GetString());

        await Server.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/applications/{id}", expected: HttpStatusCode.NoContent);
        Assert.Equal("revoked", (await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{id}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task PublicApplicationsGetNoSecret()
    {
        var created = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/applications",
            new { name = "CLI", redirect_uris = new[] { "http://127.0.0.1:7777/callback" }, type = "public" }, HttpStatusCode.Created);
        Assert.False(created.TryGetProperty("client_secret", out _));
        await Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/applications/{created.GetProperty("client_id").GetString()}/secret", expected: HttpStatusCode.Conflict);
    }

    [Theory]
    [InlineData("https://yourapp.com/callback#frag")]
    [InlineData("http://yourapp.com/callback")]
    [InlineData("https://*.yourapp.com/callback")]
    [InlineData("/relative/callback")]
    [InlineData("javascript:alert(1)")]
    public async Task RefusesUnsafeRedirectUris(string uri)
    {
        var problem = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/applications", new { name = "x", redirect_uris = new[] { uri } }, HttpStatusCode.BadRequest);
        Assert.True(problem.GetProperty("errors").TryGetProperty("redirect_uris", out _));
    }

    [Fact]
    public async Task RequiresNameAndRedirectUris()
    {
        var problem = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/applications", new { type = "sideways" }, HttpStatusCode.BadRequest);
        var errors = problem.GetProperty("errors");
        Assert.True(errors.TryGetProperty("name", out _));
        Assert.True(errors.TryGetProperty("redirect_uris", out _));
        Assert.True(errors.TryGetProperty("type", out _));
    }
}
