using System.Net;
using System.Text.Json;
using Microsoft.Playwright;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Dashboard;

/// <summary>Site Management in a real browser (Debian Chromium through Playwright), on the engine the suite runs on.</summary>
public sealed class SiteManagementBrowserTests(ChromiumFixture chromium) : IAsyncLifetime
{
    private const string AdminEmail = "admin@nexus.example";
    private const string Password = "correct horse battery";
    private TestDatabase db = null!;
    private NexusTestServer server = null!;

    public async ValueTask InitializeAsync()
    {
        db = await TestDatabase.CreateAsync();
        // SUPERUSER_EMAIL only names the account that may use the setup token; it grants nothing by itself.
        server = await NexusTestServer.StartAsync(db, s => s["SUPERUSER_EMAIL"] = AdminEmail);
    }

    public async ValueTask DisposeAsync()
    {
        await server.DisposeAsync();
        await db.DisposeAsync();
    }

    private async Task<BrowserSession> SignedUpAsync(string email)
    {
        var session = await BrowserSession.StartAsync(chromium, db.Engine);
        var page = session.Page;
        await page.GotoAsync(server.BaseUrl + "/account/signup");
        await page.GetByLabel("Email").FillAsync(email);
        await page.GetByLabel("Password").FillAsync(Password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Create account" }).ClickAsync();
        // Waits on what the page shows, not on its load event (which a CI run once missed for 30 s).
        await page.WaitForPageAsync(server.BaseUrl + "/");
        await page.Locator("h1").First.WaitForAsync();
        if (email == AdminEmail)
        {
            await BecomeAdministratorAsync(session);
        }

        return session;
    }

    /// <summary>The first administrator enters the one-time setup token the operator has (SETUP_TOKEN here) at /setup.</summary>
    private async Task BecomeAdministratorAsync(BrowserSession session)
    {
        var page = session.Page;
        Assert.DoesNotContain("Site management", await page.ContentAsync());
        await page.GotoAsync(server.BaseUrl + "/setup");
        await session.ScreenshotAsync("setup");
        await page.GetByLabel("Setup token").FillAsync(server.SetupToken!);
        await page.GetByRole(AriaRole.Button, new() { Name = "Become administrator" }).ClickAsync();
        await page.WaitForPageAsync("**/admin/applications");
        await page.Locator("h1").First.WaitForAsync();
        await page.GotoAsync(server.BaseUrl + "/");
    }

    [Fact]
    public async Task AdminRegistersAnApplicationAndASampleClientSignsInThroughNexus()
    {
        await using var admin = await SignedUpAsync(AdminEmail);
        var page = admin.Page;
        await admin.ScreenshotAsync("home-admin");
        await page.GetByRole(AriaRole.Link, new() { Name = "Site management" }).ClickAsync();
        await page.WaitForPageAsync("**/admin/applications");

        string? clientId = null, clientSecret = null;
        await using var sample = await SampleClientApp.StartAsync(server.BaseUrl, () => (clientId!, clientSecret!));
        await page.GetByLabel("Application name").FillAsync("Project Tracker");
        await page.GetByLabel("Redirect URIs").FillAsync(sample.RedirectUri);
        await page.GetByLabel("Description").FillAsync("Tracks projects");
        await page.GetByLabel("Base URL").FillAsync(sample.BaseUrl);
        await page.GetByLabel("Owner email").FillAsync("owner@example.com");
        await page.GetByRole(AriaRole.Button, new() { Name = "Register application" }).ClickAsync();

        // The secret is shown once, with a working Copy button.
        await admin.Context.GrantPermissionsAsync(["clipboard-read", "clipboard-write"], new() { Origin = server.BaseUrl });
        clientId = await page.Locator("#new-client-id").InputValueAsync();
        await page.Locator("[data-copy=new-client-secret]").ClickAsync();
        clientSecret = await page.EvaluateAsync<string>("() => navigator.clipboard.readText()");
        Assert.StartsWith("nxs_", clientSecret);
        Assert.Equal(clientSecret, await page.Locator("#new-client-secret").InputValueAsync());
        await admin.ScreenshotAsync("admin-oauth-applications");
        await page.ReloadAsync(new() { WaitUntil = WaitUntilState.Load });
        Assert.DoesNotContain(clientSecret, await page.ContentAsync());
        Assert.Contains("Project Tracker", await page.ContentAsync());
        admin.AssertNoConsoleErrors();

        // A person uses the sample application: sign-in and consent at Nexus, back to the application.
        await using var person = await SignedUpAsync("person@example.com");
        var browser = person.Page;
        await browser.GotoAsync(sample.BaseUrl + "/");
        await browser.GetByRole(AriaRole.Link, new() { Name = "Sign in with Nexus" }).ClickAsync();
        await browser.WaitForPageAsync("**/api/oauth/authorize**");
        Assert.Contains("Project Tracker", await browser.ContentAsync());
        await person.ScreenshotAsync("consent");
        await browser.GetByRole(AriaRole.Button, new() { Name = "Allow" }).ClickAsync();
        await browser.WaitForPageAsync(sample.BaseUrl + "/callback**");
        var result = await browser.Locator("#result").TextContentAsync();
        Assert.StartsWith("Signed in as usr_", result);
        Assert.Contains("28800 s", result);

        await browser.GotoAsync(server.BaseUrl + "/account/applications");
        Assert.Contains("Project Tracker", await browser.ContentAsync());
        await person.ScreenshotAsync("authorized-applications");
        person.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task AdminCreatesAnAppClientWhoseSecretWorksAtTheTokenEndpoint()
    {
        await using var admin = await SignedUpAsync(AdminEmail);
        var page = admin.Page;
        await page.GotoAsync(server.BaseUrl + "/admin/clients");
        await page.GetByLabel("Name").FillAsync("Billing worker");
        await page.GetByLabel("Scopes").FillAsync("invoices:read invoices:write");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create and generate credentials" }).ClickAsync();
        var clientId = await page.Locator("#new-client-id").InputValueAsync();
        var secret = await page.Locator("#new-client-secret").InputValueAsync();
        await admin.ScreenshotAsync("admin-app-clients");

        using (var response = await server.RequestTokenAsync(clientId, secret, "invoices:read", "/nexus/oauth2/token"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("invoices:read", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("scope").GetString());
        }

        // Generating a new secret asks first (the old one stops working), then retires the old one at once.
        await page.GetByRole(AriaRole.Link, new() { Name = "Generate new secret" }).First.ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Generate new secret" }).ClickAsync();
        var rotated = await page.Locator("#new-client-secret").InputValueAsync();
        Assert.NotEqual(secret, rotated);
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.RequestTokenAsync(clientId, secret)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.RequestTokenAsync(clientId, rotated)).StatusCode);

        // Revoking asks first, then the client stops working.
        await page.GotoAsync(server.BaseUrl + "/admin/clients");
        await page.GetByRole(AriaRole.Link, new() { Name = "Revoke" }).First.ClickAsync();
        await admin.ScreenshotAsync("admin-confirm-revoke");
        await page.GetByRole(AriaRole.Button, new() { Name = "Revoke App Client" }).ClickAsync();
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.RequestTokenAsync(clientId, rotated)).StatusCode);

        foreach (var tab in new[] { "users", "status" })
        {
            await page.GotoAsync($"{server.BaseUrl}/admin/{tab}");
            await admin.ScreenshotAsync("admin-" + tab);
        }

        admin.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task NonAdminCannotReachSiteManagement()
    {
        await using var person = await SignedUpAsync("someone@example.com");
        var page = person.Page;
        Assert.Equal(0, await page.GetByRole(AriaRole.Link, new() { Name = "Site management" }).CountAsync());
        foreach (var path in new[] { "/admin", "/admin/applications", "/admin/clients", "/admin/users", "/admin/status" })
        {
            var response = await page.GotoAsync(server.BaseUrl + path);
            Assert.Equal(403, response!.Status);
        }

        // Posting to an admin form is refused too, and so is the admin API with the session cookie.
        var api = await page.APIRequest.GetAsync(server.BaseUrl + "/v1/admin/applications");
        Assert.Equal(401, api.Status);
        var post = await page.APIRequest.PostAsync(server.BaseUrl + "/admin/clients", new() { Form = page.APIRequest.CreateFormData().Set("name", "x") });
        Assert.Equal(403, post.Status);
        await person.ScreenshotAsync("forbidden");
    }

    [Fact]
    public async Task PagesAreUsableWithTheKeyboardAndCarryAStrictContentSecurityPolicy()
    {
        await using var session = await BrowserSession.StartAsync(chromium, db.Engine);
        var page = session.Page;
        var response = await page.GotoAsync(server.BaseUrl + "/account/signin");
        Assert.Contains("default-src 'none'", response!.Headers["content-security-policy"]);
        Assert.DoesNotContain("unsafe-inline", response.Headers["content-security-policy"]);
        await session.ScreenshotAsync("sign-in");

        // The email field has focus, Tab moves to the password and Enter submits.
        await page.Keyboard.TypeAsync("nobody@example.com");
        await page.Keyboard.PressAsync("Tab");
        await page.Keyboard.TypeAsync("wrong password!");
        await page.Keyboard.PressAsync("Enter");
        await page.Locator("p.error").WaitForAsync();
        Assert.Contains("Wrong email or password", await page.Locator("p.error").TextContentAsync());

        await page.GotoAsync(server.BaseUrl + "/account/signup");
        await session.ScreenshotAsync("sign-up");
        session.AssertNoConsoleErrors();
    }
}
