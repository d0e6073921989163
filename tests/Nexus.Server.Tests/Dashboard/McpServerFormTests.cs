using System.Net;
using System.Security.Cryptography;
using Microsoft.Playwright;
using Nexus.Server.Tests.Infrastructure;
using Nexus.Server.Tests.RemoteMcp;

namespace Nexus.Server.Tests.Dashboard;

/// <summary>
/// Site management › Providers › "Add an MCP server by its URL" (issue 15): the form registers through the same code as
/// POST /v1/providers with auth_mode "mcp_oauth2"; what discovery or validation refuses comes back onto the form with
/// what was typed, never a 500. The MCP servers are loopback stand-ins (those of the RemoteMcp tests).
/// </summary>
public sealed class McpServerFormTests(ChromiumFixture chromium, McpServerFormTests.Fixture fixture) : IClassFixture<McpServerFormTests.Fixture>
{
    private const string Password = "correct horse battery";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public sealed class Fixture : IAsyncLifetime
    {
        public TestDatabase Database { get; private set; } = null!;

        public NexusTestServer Server { get; private set; } = null!;

        public FakeMcpServer Remote { get; private set; } = null!;

        public async ValueTask InitializeAsync()
        {
            Database = await TestDatabase.CreateAsync();
            Server = await NexusTestServer.StartAsync(Database);
            Remote = await FakeMcpServer.StartAsync();
        }

        /// <summary>An administrator signed in over HTTP, on the Providers page.</summary>
        public async Task<Browser> AdminAsync()
        {
            var email = $"mcp-form-{Guid.NewGuid():N}@example.com";
            var browser = new Browser(Server);
            await browser.SignUpAsync(email, Password);
            await Server.MakeAdminAsync(email);
            await browser.NavigateAsync("/admin/providers");
            Assert.Equal(HttpStatusCode.OK, browser.LastStatus);
            return browser;
        }

        public async ValueTask DisposeAsync()
        {
            await Remote.DisposeAsync();
            await Server.DisposeAsync();
            await Database.DisposeAsync();
        }
    }

    [Fact]
    public async Task ASiteAdministratorAddsAnMcpServerByItsUrlInTheBrowserAndItIsListed()
    {
        var url = fixture.Remote.ServeProtected("/" + Guid.NewGuid().ToString("N")[..8]);
        var email = $"mcp-admin-{Guid.NewGuid():N}@example.com";
        await using var admin = await BrowserSession.StartAsync(chromium, fixture.Database.Engine);
        var page = admin.Page;
        await page.GotoAsync(fixture.Server.BaseUrl + "/account/signup");
        await page.GetByLabel("Email").FillAsync(email);
        await page.GetByLabel("Password").FillAsync(Password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Create account" }).ClickAsync();
        await page.WaitForPageAsync(fixture.Server.BaseUrl + "/");
        await fixture.Server.MakeAdminAsync(email);

        await page.GotoAsync(fixture.Server.BaseUrl + "/admin/providers");
        await page.GetByLabel("MCP server URL").FillAsync(url);
        await page.Locator("#mcp_name").FillAsync("team-mcp");
        await page.Locator("#mcp_display_name").FillAsync("Team MCP server");
        await page.Locator("#mcp_scopes").FillAsync("tools");
        Assert.True(await page.Locator("#mcp_send_resource").IsCheckedAsync());
        // Discovery runs while the form posts; the page that comes back is the list (a redirect) or the form with errors.
        var answer = await page.RunAndWaitForResponseAsync(
            () => page.GetByRole(AriaRole.Button, new() { Name = "Add MCP server" }).ClickAsync(),
            r => r.Url.EndsWith("/admin/providers/mcp/new", StringComparison.Ordinal), new() { Timeout = 90_000 });
        Assert.True(answer.Status == 302, $"{answer.Status}: {await page.ContentAsync()}");
        await page.WaitForPageAsync(fixture.Server.BaseUrl + "/admin/providers");
        var list = await page.Locator("tbody").InnerTextAsync();
        Assert.Contains("Team MCP server", list);
        Assert.Contains("mcp_oauth2", list);
        await admin.ScreenshotAsync("admin-providers-mcp");
        admin.AssertNoConsoleErrors();

        var provider = await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/team-mcp");
        Assert.Equal(url, provider.GetProperty("mcp").GetProperty("url").GetString());
        Assert.True(provider.GetProperty("mcp").GetProperty("send_resource").GetBoolean());
        Assert.Equal(["tools"], provider.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));
    }

    [Fact]
    public async Task ARefusedUrlIsShownOnTheFormWithWhatWasTypedAndNothingIsStored()
    {
        using var browser = await fixture.AdminAsync();
        var mismatch = fixture.Remote.ServeProtected("/" + Guid.NewGuid().ToString("N")[..8], resource: "https://elsewhere.example/mcp");
        foreach (var (url, expected) in new[] { (mismatch, "https://elsewhere.example/mcp"), ("https://10.20.30.40/mcp", "could not be") })
        {
            var name = "refused-" + Guid.NewGuid().ToString("N")[..6];
            await browser.NavigateAsync("/admin/providers");
            await browser.SubmitAsync(Nexus.Server.Dashboard.SiteManagementBrokerPages.McpFormPath, new Dictionary<string, string>
            {
                ["mcp_url"] = url, ["name"] = name, ["display_name"] = "Refused <server>", ["scopes"] = "tools", ["client_id"] = "typed-client",
            });
            Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
            Assert.Contains("role=\"alert\"", browser.LastPage, StringComparison.Ordinal);
            Assert.Contains("The MCP server could not be added", browser.LastPage, StringComparison.Ordinal);
            Assert.Contains(expected, browser.LastPage, StringComparison.Ordinal);
            // What was typed is kept (escaped), so the administrator corrects rather than retypes.
            Assert.Contains($"value=\"{WebUtility.HtmlEncode(url)}\"", browser.LastPage, StringComparison.Ordinal);
            Assert.Contains($"value=\"{name}\"", browser.LastPage, StringComparison.Ordinal);
            Assert.Contains("value=\"Refused &lt;server&gt;\"", browser.LastPage, StringComparison.Ordinal);
            Assert.Contains("value=\"typed-client\"", browser.LastPage, StringComparison.Ordinal);
            await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/" + name, expected: HttpStatusCode.NotFound);
        }
    }

    [Fact]
    public async Task TheApisValidationJudgesTheFormAndItsMessagesAreShown()
    {
        using var browser = await fixture.AdminAsync();
        var url = fixture.Remote.ServeProtected("/" + Guid.NewGuid().ToString("N")[..8]);
        foreach (var (fields, expected) in new (Dictionary<string, string>, string)[]
        {
            (new() { ["mcp_url"] = url, ["name"] = "Bad Name" }, "Give the provider a name"),
            (new() { ["mcp_url"] = "", ["name"] = "no-url" }, "mcp_url is required"),
            (new() { ["mcp_url"] = url, ["name"] = "m2m-alone", ["grant_type"] = "client_credentials" }, "A client_credentials server needs the client_id"),
            (new() { ["mcp_url"] = url, ["name"] = "pem-no-m2m", ["private_key_pem"] = "-----BEGIN PRIVATE KEY-----" }, "private_key_pem is for grant_type"),
        })
        {
            await browser.NavigateAsync("/admin/providers");
            await browser.SubmitAsync(Nexus.Server.Dashboard.SiteManagementBrokerPages.McpFormPath, fields);
            Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
            Assert.Contains(expected, browser.LastPage, StringComparison.Ordinal);
        }

        // The checkboxes stay as they were submitted: machine-to-machine ticked, the resource indicator unticked.
        var refused = await MachineAfterRefusalAsync(browser);
        Assert.Contains("id=\"mcp_machine\" name=\"grant_type\" value=\"client_credentials\" checked", refused, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"mcp_send_resource\" name=\"send_resource\" value=\"true\" checked", refused, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AMachineToMachineServerIsAddedWithASecretOrAPrivateKeyStoredEncrypted()
    {
        using var browser = await fixture.AdminAsync();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var pem = key.ExportPkcs8PrivateKeyPem();
        foreach (var (name, credential, method) in new[] { ("m2m-secret", ("client_secret", "s3cret-for-m2m"), "client_secret_basic"), ("m2m-key", ("private_key_pem", pem), "private_key_jwt") })
        {
            var url = fixture.Remote.ServeProtected("/" + Guid.NewGuid().ToString("N")[..8]);
            await browser.NavigateAsync("/admin/providers");
            await browser.SubmitAsync(Nexus.Server.Dashboard.SiteManagementBrokerPages.McpFormPath, new Dictionary<string, string>
            {
                ["mcp_url"] = url, ["name"] = name, ["client_id"] = "machine", ["grant_type"] = "client_credentials", [credential.Item1] = credential.Item2,
            });
            Assert.True(browser.LastStatus == HttpStatusCode.OK && browser.CurrentUri.AbsolutePath == "/admin/providers", browser.LastPage);
            var provider = await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/" + name);
            Assert.Equal("client_credentials", provider.GetProperty("mcp").GetProperty("grant_type").GetString());
            Assert.Equal(method, provider.GetProperty("token_endpoint_auth").GetString());
            Assert.True(provider.GetProperty("has_client_secret").GetBoolean());
            Assert.DoesNotContain(credential.Item2.Split('\n')[1 % credential.Item2.Split('\n').Length], browser.LastPage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task TheEditPageChangesAnMcpServerAsPatchDoesAndRotatesAMachineToMachineKey()
    {
        var url = fixture.Remote.ServeProtected("/" + Guid.NewGuid().ToString("N")[..8]);
        var name = "m2m-edit-" + Guid.NewGuid().ToString("N")[..6];
        await fixture.Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name, auth_mode = "mcp_oauth2", mcp_url = url, grant_type = "client_credentials", client_id = "machine", client_secret = "first-secret",
        }, HttpStatusCode.Created);
        using var browser = await fixture.AdminAsync();

        // The page shows what may change, and never the secret.
        await browser.NavigateAsync("/admin/providers/" + name);
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);
        Assert.Contains(url, browser.LastPage, StringComparison.Ordinal);
        Assert.Contains("id=\"private_key_pem\"", browser.LastPage, StringComparison.Ordinal);
        Assert.DoesNotContain("first-secret", browser.LastPage, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"api_base_url\"", browser.LastPage, StringComparison.Ordinal);

        // A key that is not one is refused on the page, and nothing changes.
        await browser.SubmitAsync("/admin/providers/" + name, new Dictionary<string, string>
        {
            ["display_name"] = "Reports", ["scopes"] = "tools", ["client_id"] = "machine", ["send_resource"] = "true", ["private_key_pem"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        });
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains("role=\"alert\"", browser.LastPage, StringComparison.Ordinal);
        Assert.Equal("client_secret_basic", (await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/" + name)).GetProperty("token_endpoint_auth").GetString());

        // A real key: private_key_jwt from now on; the resource indicator turned off; the display name changed.
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await browser.NavigateAsync("/admin/providers/" + name);
        await browser.SubmitAsync("/admin/providers/" + name, new Dictionary<string, string>
        {
            ["display_name"] = "Reports", ["scopes"] = "tools", ["client_id"] = "machine", ["private_key_pem"] = key.ExportPkcs8PrivateKeyPem(),
        });
        Assert.True(browser.LastStatus == HttpStatusCode.OK && browser.CurrentUri.AbsolutePath == "/admin/providers", browser.LastPage);
        var provider = await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/" + name);
        Assert.Equal("Reports", provider.GetProperty("display_name").GetString());
        Assert.Equal("private_key_jwt", provider.GetProperty("token_endpoint_auth").GetString());
        Assert.False(provider.GetProperty("mcp").GetProperty("send_resource").GetBoolean());
        Assert.Equal(["tools"], provider.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));
    }

    /// <summary>Submits a machine-to-machine registration without its credentials and returns the refused page.</summary>
    private static async Task<string> MachineAfterRefusalAsync(Browser browser)
    {
        await browser.NavigateAsync("/admin/providers");
        await browser.SubmitAsync(Nexus.Server.Dashboard.SiteManagementBrokerPages.McpFormPath,
            new Dictionary<string, string> { ["mcp_url"] = "https://mcp.example.com/mcp", ["name"] = "m2m-again", ["grant_type"] = "client_credentials" });
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        return browser.LastPage;
    }
}
