using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Accounts;
using Nexus.Server.Mcp;
using Nexus.Server.Tests.RemoteMcp;

namespace Nexus.Server.Tests.Mcp;

/// <summary>
/// add_mcp_server on Nexus's own /mcp (issue 15): an assistant registers an OAuth-protected MCP server by its URL for
/// a person who administers the deployment, and gets connect_service's answer (the consent link); anyone else is told
/// that an administrator must add it; a URL that discovery refuses is a tool error with the reason, not a protocol error.
/// </summary>
public sealed class AddMcpServerTests(AddMcpServerTests.Fixture fixture) : IClassFixture<AddMcpServerTests.Fixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public sealed class Fixture : McpFixture
    {
        public FakeMcpServer Remote { get; private set; } = null!;

        public override async ValueTask InitializeAsync()
        {
            await base.InitializeAsync();
            Remote = await FakeMcpServer.StartAsync();
        }

        public override async ValueTask DisposeAsync()
        {
            await Remote.DisposeAsync();
            await base.DisposeAsync();
        }

        /// <summary>A person signed up; an administrator when <paramref name="admin"/> (the role the dashboard's Site management checks).</summary>
        public async Task<string> PersonAsync(bool admin)
        {
            var (browser, userId) = await PersonAsync();
            browser.Dispose();
            if (admin)
            {
                Assert.True(await Server.Services.GetRequiredService<Administrators>().SetAsync(userId, true, "a test", Ct));
            }

            return userId;
        }
    }

    [Fact]
    public async Task AnAdministratorAddsAnMcpServerByItsUrlAndGetsTheConsentLinkAsConnectServiceGivesIt()
    {
        var url = fixture.Remote.ServeProtected("/" + Guid.NewGuid().ToString("N")[..8]);
        var admin = await fixture.PersonAsync(admin: true);
        await using var client = await fixture.ClientAsync(fixture.McpToken(admin));

        var result = await client.CallToolAsync(NexusTools.AddMcpServer, new Dictionary<string, object?> { ["url"] = url }, cancellationToken: Ct);
        var answer = McpFixture.Structured(result);
        Assert.True(result.IsError != true, answer.ToString());
        Assert.Equal("link_created", answer.GetProperty("status").GetString());
        Assert.StartsWith(fixture.Server.Issuer + McpConnectLinks.PagePath + "?ticket=", answer.GetProperty("connect_url").GetString(), StringComparison.Ordinal);
        var name = answer.GetProperty("service").GetString()!;
        Assert.Equal(name, answer.GetProperty("registered").GetProperty("service").GetString());

        // A provider like one registered with POST /v1/providers: mcp_oauth2, discovered, Nexus's metadata document as client.
        var provider = await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/" + name);
        Assert.Equal("mcp_oauth2", provider.GetProperty("auth_mode").GetString());
        Assert.Equal(url, provider.GetProperty("mcp").GetProperty("url").GetString());
        Assert.Equal("metadata_document", provider.GetProperty("mcp").GetProperty("registration").GetString());

        // The same URL again: nothing new is registered; the person only gets the link.
        var again = McpFixture.Structured(await client.CallToolAsync(NexusTools.AddMcpServer, new Dictionary<string, object?> { ["url"] = url }, cancellationToken: Ct));
        Assert.Equal("link_created", again.GetProperty("status").GetString());
        Assert.Equal(name, again.GetProperty("service").GetString());
        Assert.True(again.GetProperty("registered").GetProperty("already_added").GetBoolean());
        Assert.Single(await ProvidersForAsync(url));

        // Scopes that are not scope tokens are refused on that way too, before any link is made.
        foreach (var bad in new[] { "a b", "tools\nmore" })
        {
            var refused = await client.CallToolAsync(NexusTools.AddMcpServer, new Dictionary<string, object?> { ["url"] = url, ["scopes"] = new[] { bad } }, cancellationToken: Ct);
            Assert.True(refused.IsError);
            Assert.Equal("invalid_arguments", McpFixture.Structured(refused).GetProperty("error").GetString());
            Assert.Contains("scopes", McpFixture.Structured(refused).GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        // A chosen name and scopes are used as given.
        var other = fixture.Remote.ServeProtected("/" + Guid.NewGuid().ToString("N")[..8]);
        var named = McpFixture.Structured(await client.CallToolAsync(NexusTools.AddMcpServer,
            new Dictionary<string, object?> { ["url"] = other, ["name"] = "team-tools", ["scopes"] = new[] { "tools" } }, cancellationToken: Ct));
        Assert.Equal("team-tools", named.GetProperty("service").GetString());
        var scopes = (await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/team-tools")).GetProperty("scopes");
        Assert.Equal(["tools"], scopes.EnumerateArray().Select(s => s.GetString()));
    }

    [Theory]
    [InlineData("https://mcp.example.com/Tenant/mcp", "https://MCP.Example.com/Tenant/mcp/", true)]
    [InlineData("HTTPS://mcp.example.com/mcp", "https://mcp.example.com/mcp", true)]
    [InlineData("https://mcp.example.com/Tenant/mcp", "https://mcp.example.com/tenant/mcp", false)]
    [InlineData("https://mcp.example.com/mcp", "https://mcp.example.com:8443/mcp", false)]
    [InlineData("https://mcp.example.com/mcp", "http://mcp.example.com/mcp", false)]
    public void TwoMcpUrlsAreTheSameServerOnlyWhenTheyDifferAtMostInTheCaseOfSchemeAndHost(string stored, string given, bool same) =>
        Assert.Equal(same, NexusTools.SameUrl(stored, given));

    [Fact]
    public async Task APersonWhoIsNotAnAdministratorIsToldThatAnAdministratorMustAddTheServer()
    {
        var url = fixture.Remote.ServeProtected("/" + Guid.NewGuid().ToString("N")[..8]);
        var person = await fixture.PersonAsync(admin: false);
        await using var client = await fixture.ClientAsync(fixture.McpToken(person));

        var result = await client.CallToolAsync(NexusTools.AddMcpServer, new Dictionary<string, object?> { ["url"] = url }, cancellationToken: Ct);
        Assert.True(result.IsError);
        var answer = McpFixture.Structured(result);
        Assert.Equal("administrator_required", answer.GetProperty("error").GetString());
        Assert.Contains("administrator", answer.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Empty(await ProvidersForAsync(url));
        Assert.False(fixture.Remote.Hits.ContainsKey(new Uri(url).AbsolutePath), "Nothing is fetched for a person who may not add servers.");
    }

    [Fact]
    public async Task ARefusedUrlIsAToolErrorWithTheReasonAndNothingIsStored()
    {
        var admin = await fixture.PersonAsync(admin: true);
        await using var client = await fixture.ClientAsync(fixture.McpToken(admin));
        var mismatch = fixture.Remote.ServeProtected("/" + Guid.NewGuid().ToString("N")[..8], resource: "https://elsewhere.example/mcp");
        foreach (var (url, error, expected) in new[]
        {
            (mismatch, "mcp_discovery_failed", "https://elsewhere.example/mcp"),
            ("https://10.20.30.40/mcp", "mcp_discovery_failed", "could not be"),
            ("not a url", "invalid_url", "url"),
            ("ftp://files.example/mcp", "mcp_discovery_failed", ""),
        })
        {
            var result = await client.CallToolAsync(NexusTools.AddMcpServer, new Dictionary<string, object?> { ["url"] = url }, cancellationToken: Ct);
            var answer = McpFixture.Structured(result);
            Assert.True(result.IsError == true, answer.ToString());
            Assert.Equal(error, answer.GetProperty("error").GetString());
            Assert.Contains(expected, answer.GetProperty("message").GetString(), StringComparison.Ordinal);
            Assert.Empty(await ProvidersForAsync(url));
        }

        // A name that is not a provider name is a validation error, in words.
        var invalid = await client.CallToolAsync(NexusTools.AddMcpServer, new Dictionary<string, object?> { ["url"] = mismatch, ["name"] = "Not A Name" }, cancellationToken: Ct);
        Assert.True(invalid.IsError);
        Assert.Equal("invalid_arguments", McpFixture.Structured(invalid).GetProperty("error").GetString());
        Assert.Contains("name", McpFixture.Structured(invalid).GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddingAServerNeedsTheConnectScope()
    {
        var admin = await fixture.PersonAsync(admin: true);
        using var response = await fixture.PostAsync(fixture.McpToken(admin, [McpResource.ReadScope]), "tools/call",
            new { name = NexusTools.AddMcpServer, arguments = new { url = "https://mcp.example.com/mcp" } });
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("insufficient_scope", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
    }

    private async Task<List<JsonElement>> ProvidersForAsync(string url) =>
        (await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers")).GetProperty("providers").EnumerateArray()
            .Where(p => p.TryGetProperty("mcp", out var mcp) && mcp.ValueKind == JsonValueKind.Object && mcp.GetProperty("url").GetString() == url).ToList();
}
