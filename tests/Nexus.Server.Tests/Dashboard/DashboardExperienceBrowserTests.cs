using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nexus.Server.Audit;
using Nexus.Server.AuthorizationServer.Grants;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Dashboard;

/// <summary>
/// The everyday dashboard of issue #19 item 6 in a real browser (Debian Chromium through Playwright): forms that keep
/// what was typed, the landing page after sign-in, providers and users managed from Site management, confirmation
/// before every destructive action, pages that fit a phone, provider logos. One server for the whole class; each test
/// uses its own accounts and names.
/// </summary>
public sealed class DashboardExperienceBrowserTests(ChromiumFixture chromium, DashboardExperienceBrowserTests.Fixture fixture)
    : IClassFixture<DashboardExperienceBrowserTests.Fixture>
{
    public const string AdminEmail = "admin@dashboard.example";
    public const string Password = "correct horse battery";

    public sealed class Fixture : IAsyncLifetime
    {
        public TestDatabase Db { get; private set; } = null!;

        public NexusTestServer Server { get; private set; } = null!;

        public FakeOAuthProvider Fake { get; private set; } = null!;

        public BrokerKit Kit { get; private set; } = null!;

        public async ValueTask InitializeAsync()
        {
            Fake = await FakeOAuthProvider.StartAsync();
            Db = await TestDatabase.CreateAsync();
            Server = await NexusTestServer.StartAsync(Db, s => s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/");
            Kit = new BrokerKit(Server, Fake);
            await CreateUserAsync(AdminEmail);
            await Server.MakeAdminAsync(AdminEmail);
        }

        public async Task<string> CreateUserAsync(string email, string password = Password)
        {
            var created = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password }, HttpStatusCode.Created);
            return created.GetProperty("id").GetString()!;
        }

        public async ValueTask DisposeAsync()
        {
            Kit.Dispose();
            await Server.DisposeAsync();
            await Db.DisposeAsync();
            await Fake.DisposeAsync();
        }
    }

    private NexusTestServer Server => fixture.Server;

    private async Task<BrowserSession> SignedInAsync(string email, string password = Password, int width = 1200)
    {
        var session = await BrowserSession.StartAsync(chromium, fixture.Db.Engine);
        await session.Page.SetViewportSizeAsync(width, 900);
        await session.Page.GotoAsync(Server.BaseUrl + "/account/signin");
        await session.Page.Locator("#email").FillAsync(email);
        await session.Page.Locator("#password").FillAsync(password);
        await session.Page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await session.Page.WaitForPageAsync(Server.BaseUrl + "/dashboard");
        return session;
    }

    private static Task ClickButtonAsync(IPage page, string name) => page.GetByRole(AriaRole.Button, new() { Name = name, Exact = true }).ClickAsync();

    /// <summary>Submits and waits until the page shows the form's error list.</summary>
    private static async Task SubmitExpectingErrorAsync(IPage page, string button)
    {
        await ClickButtonAsync(page, button);
        await page.Locator(".error[role=alert]").First.WaitForAsync();
    }

    [Fact]
    public async Task SigningInWithoutAReturnUrlLandsOnMyConnections()
    {
        await fixture.CreateUserAsync("lands@dashboard.example");
        await using var session = await SignedInAsync("lands@dashboard.example");
        Assert.Equal("My connections", await session.Page.Locator("h1").First.TextContentAsync());

        // The home page of a signed-in person leads somewhere too.
        await session.Page.GotoAsync(Server.BaseUrl + "/");
        await session.Page.Locator("main").GetByRole(AriaRole.Link, new() { Name = "My connections" }).ClickAsync();
        // Waits on what the page shows, not on load events (a loaded machine once missed the load state for 30 s).
        await session.Page.WaitForPageAsync(Server.BaseUrl + "/dashboard");
        await session.Page.Locator("h1", new() { HasTextString = "My connections" }).WaitForAsync();
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task EveryFormKeepsWhatWasTypedWhenValidationFailsButNeverASecret()
    {
        await using var admin = await SignedInAsync(AdminEmail);
        var page = admin.Page;

        // OAuth Applications: an http redirect URI to a remote host is refused.
        await page.GotoAsync(Server.BaseUrl + "/admin/applications");
        await page.Locator("#name").FillAsync("Kept Tracker");
        await page.Locator("#redirect_uris").FillAsync("http://tracker.example/cb");
        await page.Locator("#description").FillAsync("kept description");
        await page.Locator("#type").SelectOptionAsync("public");
        await SubmitExpectingErrorAsync(page, "Register application");
        Assert.Equal("Kept Tracker", await page.Locator("#name").InputValueAsync());
        Assert.Equal("http://tracker.example/cb", await page.Locator("#redirect_uris").InputValueAsync());
        Assert.Equal("kept description", await page.Locator("#description").InputValueAsync());
        Assert.Equal("public", await page.Locator("#type").InputValueAsync());

        // App Clients: a lifetime below the minimum.
        await page.GotoAsync(Server.BaseUrl + "/admin/clients");
        await page.Locator("#name").FillAsync("Kept worker");
        await page.Locator("#scopes").FillAsync("kept:read");
        await page.Locator("#lifetime").FillAsync("30");
        await SubmitExpectingErrorAsync(page, "Create and generate credentials");
        Assert.Equal("Kept worker", await page.Locator("#name").InputValueAsync());
        Assert.Equal("kept:read", await page.Locator("#scopes").InputValueAsync());
        Assert.Equal("30", await page.Locator("#lifetime").InputValueAsync());

        // Providers from the catalog: an OAuth entry without a client id; the secret typed is not sent back.
        await page.GotoAsync(Server.BaseUrl + "/admin/providers");
        await page.Locator("#catalog").SelectOptionAsync("github");
        await page.Locator("#name").FillAsync("kept-github");
        await page.Locator("#client_secret").FillAsync("typed-secret-never-echoed");
        await page.Locator("#scopes").FillAsync("repo");
        await SubmitExpectingErrorAsync(page, "Add provider");
        Assert.Equal("github", await page.Locator("#catalog").InputValueAsync());
        Assert.Equal("kept-github", await page.Locator("#name").InputValueAsync());
        Assert.Equal("repo", await page.Locator("#scopes").InputValueAsync());
        Assert.Equal("", await page.Locator("#client_secret").InputValueAsync());
        Assert.DoesNotContain("typed-secret-never-echoed", await page.ContentAsync());

        // API keys: a workspace id with characters workspace ids never have.
        await page.GotoAsync(Server.BaseUrl + "/admin/api-keys");
        await page.Locator("#name").FillAsync("Kept key");
        await page.Locator("#workspaces").FillAsync("bad/workspace");
        await page.Locator("#bridge_only").CheckAsync();
        await SubmitExpectingErrorAsync(page, "Create key");
        Assert.Equal("Kept key", await page.Locator("#name").InputValueAsync());
        Assert.Equal("bad/workspace", await page.Locator("#workspaces").InputValueAsync());
        Assert.True(await page.Locator("#bridge_only").IsCheckedAsync());

        // Webhooks: plain http to a remote host; the events left unchecked stay unchecked.
        await page.GotoAsync(Server.BaseUrl + "/admin/webhooks");
        await page.Locator("#url").FillAsync("http://hooks.example/nexus");
        await page.Locator("#workspace_id").FillAsync("ws_kept");
        await page.Locator("#event-0").UncheckAsync();
        await SubmitExpectingErrorAsync(page, "Add webhook");
        Assert.Equal("http://hooks.example/nexus", await page.Locator("#url").InputValueAsync());
        Assert.Equal("ws_kept", await page.Locator("#workspace_id").InputValueAsync());
        Assert.False(await page.Locator("#event-0").IsCheckedAsync());
        Assert.True(await page.Locator("#event-1").IsCheckedAsync());

        // Users: an address that already has an account; the password is typed again.
        await page.GotoAsync(Server.BaseUrl + "/admin/users");
        await page.Locator("#email").FillAsync(AdminEmail);
        await page.Locator("#password").FillAsync("another long password");
        await SubmitExpectingErrorAsync(page, "Create user");
        Assert.Equal(AdminEmail, await page.Locator("#email").InputValueAsync());
        Assert.Equal("", await page.Locator("#password").InputValueAsync());
        Assert.DoesNotContain("another long password", await page.ContentAsync());
        admin.AssertNoConsoleErrors();

        // Sign-in: the email stays, the password does not.
        await using var visitor = await BrowserSession.StartAsync(chromium, fixture.Db.Engine);
        await visitor.Page.GotoAsync(Server.BaseUrl + "/account/signin");
        await visitor.Page.Locator("#email").FillAsync("someone@dashboard.example");
        await visitor.Page.Locator("#password").FillAsync("not the password");
        await SubmitExpectingErrorAsync(visitor.Page, "Sign in");
        Assert.Equal("someone@dashboard.example", await visitor.Page.Locator("#email").InputValueAsync());
        Assert.Equal("", await visitor.Page.Locator("#password").InputValueAsync());
    }

    [Fact]
    public async Task TheProvidersTabAddsApiKeyBasicAndAwsProvidersEditsAndDeletesThem()
    {
        await using var admin = await SignedInAsync(AdminEmail);
        var page = admin.Page;
        await page.GotoAsync(Server.BaseUrl + "/admin/providers");

        // The form shows the fields of the chosen mode only.
        Assert.True(await page.Locator("fieldset[data-mode=oauth2]").IsVisibleAsync());
        await page.Locator("#auth_mode").SelectOptionAsync("api_key");
        Assert.False(await page.Locator("fieldset[data-mode=oauth2]").IsVisibleAsync());
        Assert.True(await page.Locator("fieldset[data-mode=api_key]").IsVisibleAsync());
        await admin.ScreenshotAsync("admin-providers-api-key-form");

        // The API's validation answers: an api_key provider needs the header name.
        await page.Locator("#custom_name").FillAsync("weather");
        await page.Locator("#display_name").FillAsync("Weather API");
        await page.Locator("#api_base_url").FillAsync("https://api.weather.example/v1");
        await SubmitExpectingErrorAsync(page, "Add custom provider");
        Assert.Contains("api_key is required", await page.Locator(".error[role=alert]").TextContentAsync());
        Assert.Equal("api_key", await page.Locator("#auth_mode").InputValueAsync());
        Assert.Equal("weather", await page.Locator("#custom_name").InputValueAsync());
        Assert.True(await page.Locator("fieldset[data-mode=api_key]").IsVisibleAsync());
        await page.Locator("#api_key_name").FillAsync("X-Api-Key");
        await ClickButtonAsync(page, "Add custom provider");
        await page.GetByRole(AriaRole.Cell).Filter(new() { HasText = "Weather API" }).WaitForAsync();

        var weather = await Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/weather");
        Assert.Equal("api_key", weather.GetProperty("auth_mode").GetString());
        Assert.Equal("X-Api-Key", weather.GetProperty("api_key").GetProperty("name").GetString());

        // Basic auth needs only where the API is.
        await page.Locator("#auth_mode").SelectOptionAsync("basic_auth");
        await page.Locator("#custom_name").FillAsync("ledger");
        await page.Locator("#display_name").FillAsync("Ledger");
        await page.Locator("#api_base_url").FillAsync("https://ledger.example/api");
        await ClickButtonAsync(page, "Add custom provider");
        await page.GetByRole(AriaRole.Cell).Filter(new() { HasText = "Ledger" }).WaitForAsync();

        // AWS: a region is required; with one, the provider is added with the role ARN.
        await page.Locator("#auth_mode").SelectOptionAsync("aws_sigv4");
        await page.Locator("#custom_name").FillAsync("s3-archive");
        await page.Locator("#display_name").FillAsync("S3 archive");
        await page.Locator("#api_base_url").FillAsync("https://s3.eu-west-1.amazonaws.com");
        await page.Locator("#aws_service").FillAsync("s3");
        await SubmitExpectingErrorAsync(page, "Add custom provider");
        Assert.Contains("aws is required", await page.Locator(".error[role=alert]").TextContentAsync());
        Assert.Equal("s3", await page.Locator("#aws_service").InputValueAsync());
        await page.Locator("#aws_region").FillAsync("eu-west-1");
        await ClickButtonAsync(page, "Add custom provider");
        await page.GetByRole(AriaRole.Cell).Filter(new() { HasText = "S3 archive" }).WaitForAsync();
        var aws = await Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/s3-archive");
        Assert.Equal("eu-west-1", aws.GetProperty("aws").GetProperty("region").GetString());

        // Edit: the same PATCH validation; a bad URL is refused and what was typed stays, a good change is saved.
        await page.GetByRole(AriaRole.Link, new() { Name = "Edit Weather API" }).ClickAsync();
        await page.Locator("#api_key_name").FillAsync("X-Weather-Key");
        await page.Locator("#api_base_url").FillAsync("http://weather.example/v2");
        await SubmitExpectingErrorAsync(page, "Save changes");
        Assert.Equal("X-Weather-Key", await page.Locator("#api_key_name").InputValueAsync());
        await page.Locator("#api_base_url").FillAsync("https://api.weather.example/v2");
        await page.Locator("#display_name").FillAsync("Weather");
        await ClickButtonAsync(page, "Save changes");
        await page.WaitForPageAsync(Server.BaseUrl + "/admin/providers");
        weather = await Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/weather");
        Assert.Equal("Weather", weather.GetProperty("display_name").GetString());
        Assert.Equal("X-Weather-Key", weather.GetProperty("api_key").GetProperty("name").GetString());
        Assert.Equal("https://api.weather.example/v2", weather.GetProperty("api_base_url").GetString());

        // Delete asks first; Cancel keeps it, confirming removes the row.
        await page.GetByRole(AriaRole.Link, new() { Name = "Delete Ledger" }).ClickAsync();
        await page.GetByRole(AriaRole.Heading, new() { Name = "Delete the provider ledger?" }).WaitForAsync();
        await admin.ScreenshotAsync("admin-confirm-delete-provider");
        await page.GetByRole(AriaRole.Link, new() { Name = "Cancel" }).ClickAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "Delete Ledger" }).ClickAsync();
        await ClickButtonAsync(page, "Delete provider");
        await page.WaitForPageAsync(Server.BaseUrl + "/admin/providers");
        Assert.Equal(0, await page.GetByRole(AriaRole.Link, new() { Name = "Delete Ledger" }).CountAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await Server.Http.SendAsync(Server.Admin(HttpMethod.Get, "/v1/providers/ledger"))).StatusCode);
        admin.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task TheUsersTabUnlocksDisablesEnablesAndResetsAPassword()
    {
        const string Email = "locked@dashboard.example";
        await fixture.CreateUserAsync(Email);

        // Five wrong passwords lock the account (Identity lockout); the right one is then refused too.
        using (var http = new Browser(Server))
        {
            for (var i = 0; i < 5; i++)
            {
                await http.SignInAsync(Email, "wrong password " + i);
            }

            await http.SignInAsync(Email, Password);
            Assert.Equal(HttpStatusCode.Unauthorized, http.LastStatus);
        }

        await using var admin = await SignedInAsync(AdminEmail);
        var page = admin.Page;
        await page.GotoAsync(Server.BaseUrl + "/admin/users");
        var row = page.GetByRole(AriaRole.Row).Filter(new() { HasText = Email });
        Assert.Contains("locked until", await row.InnerTextAsync());
        await admin.ScreenshotAsync("admin-users-locked");
        await page.GetByRole(AriaRole.Button, new() { Name = "Unlock " + Email }).ClickAsync();
        await row.GetByText("active").WaitForAsync();
        await (await SignedInAsync(Email)).DisposeAsync();

        // Disable asks first, then the person cannot sign in; Enable lets them in again.
        await page.GetByRole(AriaRole.Link, new() { Name = "Disable " + Email }).ClickAsync();
        await page.GetByRole(AriaRole.Heading, new() { Name = "Disable this user?" }).WaitForAsync();
        await ClickButtonAsync(page, "Disable user");
        await row.GetByText("disabled").WaitForAsync();
        using (var http = new Browser(Server))
        {
            await http.SignInAsync(Email, Password);
            Assert.Equal(HttpStatusCode.Unauthorized, http.LastStatus);
        }

        await page.GetByRole(AriaRole.Button, new() { Name = "Enable " + Email }).ClickAsync();
        await row.GetByText("active").WaitForAsync();

        // Reset asks first, shows a temporary password once; it works and the old one does not.
        await page.GetByRole(AriaRole.Link, new() { Name = "Reset the password of " + Email }).ClickAsync();
        await page.GetByRole(AriaRole.Heading, new() { Name = "Reset this user's password?" }).WaitForAsync();
        await ClickButtonAsync(page, "Reset password");
        var temporary = await page.Locator("#temporary-password").InputValueAsync();
        Assert.True(temporary.Length >= 20);
        await page.GotoAsync(Server.BaseUrl + "/admin/users");
        Assert.DoesNotContain(temporary, await page.ContentAsync());
        using (var http = new Browser(Server))
        {
            await http.SignInAsync(Email, Password);
            Assert.Equal(HttpStatusCode.Unauthorized, http.LastStatus);
        }

        // The temporary password opens the page that replaces it, and nothing else until it is replaced.
        await using (var owner = await BrowserSession.StartAsync(chromium, fixture.Db.Engine))
        {
            var own = owner.Page;
            await own.GotoAsync(Server.BaseUrl + "/account/signin");
            await own.Locator("#email").FillAsync(Email);
            await own.Locator("#password").FillAsync(temporary);
            await own.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
            await own.GetByRole(AriaRole.Heading, new() { Name = "Choose your password" }).WaitForAsync();
            await own.GetByLabel("Temporary password").FillAsync(temporary);
            await own.GetByLabel("New password", new() { Exact = true }).FillAsync("chosen by its owner");
            await own.GetByLabel("New password again").FillAsync("chosen by its owner");
            await own.GetByRole(AriaRole.Button, new() { Name = "Change password" }).ClickAsync();
            await own.WaitForPageAsync(Server.BaseUrl + "/dashboard");
            owner.AssertNoConsoleErrors();
        }

        await (await SignedInAsync(Email, "chosen by its owner")).DisposeAsync();

        // Administrators cannot disable themselves.
        Assert.Equal(0, await page.GetByRole(AriaRole.Link, new() { Name = "Disable " + AdminEmail }).CountAsync());
        admin.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task EveryDestructiveActionAsksFirstRevokingAnAuthorizedApplicationToo()
    {
        const string Email = "consent@dashboard.example";
        var userId = await fixture.CreateUserAsync(Email);
        var (clientId, _) = await Server.CreateAppClientAsync(name: "Consent Reader");
        await Server.Services.GetRequiredService<GrantStore>().SaveConsentAsync(userId, clientId, ["openid"], "https://app.example.test/cb", anyLoopbackPort: false, CancellationToken.None);

        await using var person = await SignedInAsync(Email);
        var page = person.Page;
        await page.GotoAsync(Server.BaseUrl + "/account/applications");
        await page.GetByRole(AriaRole.Link, new() { Name = "Revoke access for Consent Reader" }).ClickAsync();
        await page.GetByRole(AriaRole.Heading, new() { Name = "Revoke access for Consent Reader?" }).WaitForAsync();
        await person.ScreenshotAsync("confirm-revoke-authorized-application");
        Assert.Single(await Server.Services.GetRequiredService<GrantStore>().ListConsentsAsync(userId, CancellationToken.None));
        await ClickButtonAsync(page, "Revoke access");
        await page.GetByText("You have not authorized any application.").WaitForAsync();
        person.AssertNoConsoleErrors();

        // In Site management every destructive link opens a confirmation page with a danger button and Cancel.
        await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/webhooks", new { url = "https://hooks.dashboard.example/nexus", events = new[] { "connection.active" } }, HttpStatusCode.Created);
        await fixture.Kit.CreateApiKeyAsync(["ws_confirm"]);
        await using var admin = await SignedInAsync(AdminEmail);
        var adminPage = admin.Page;
        foreach (var (tab, link) in new[]
        {
            ("clients", "Revoke"), ("clients", "Generate new secret"), ("api-keys", "Revoke"), ("webhooks", "Delete"),
        })
        {
            await adminPage.GotoAsync($"{Server.BaseUrl}/admin/{tab}");
            await adminPage.GetByRole(AriaRole.Link, new() { Name = link, Exact = true }).First.ClickAsync();
            await adminPage.Locator("button.danger").WaitForAsync();
            Assert.Equal(1, await adminPage.GetByRole(AriaRole.Link, new() { Name = "Cancel" }).CountAsync());
            Assert.EndsWith("/admin/" + tab, await adminPage.GetByRole(AriaRole.Link, new() { Name = "Cancel" }).GetAttributeAsync("href"));
        }

        // Webhook: confirming deletes it (the row vanishes); API key: confirming revokes it (folded under Revoked).
        await ClickButtonAsync(adminPage, "Delete webhook");
        await adminPage.GetByText("No webhooks yet.").WaitForAsync();
        await adminPage.GotoAsync(Server.BaseUrl + "/admin/api-keys");
        await adminPage.GetByRole(AriaRole.Link, new() { Name = "Revoke", Exact = true }).First.ClickAsync();
        await ClickButtonAsync(adminPage, "Revoke key");
        await adminPage.Locator("details.revoked-list summary").WaitForAsync();
        Assert.Contains("Revoked (1)", await adminPage.Locator("details.revoked-list summary").TextContentAsync());
        admin.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task MyConnectionsFitsAPhoneShowsLogosAndSaysWhenRefreshDoesNotApply()
    {
        const string Email = "phone@dashboard.example";
        var userId = await fixture.CreateUserAsync(Email);
        await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name = "github-logo", catalog = "github", client_id = "client-for-logo", client_secret = "secret-for-logo" }, HttpStatusCode.Created);
        var plain = await fixture.Kit.RegisterAsync("github", new { display_name = "Plain Tokens Service With A Rather Long Name", refresh_supported = false, scopes = new[] { "read:user", "offline_access" } });
        // The connection is in the person's own workspace: its consent completes only in their signed-in browser.
        using (var person = new Browser(Server))
        {
            await person.SignInAsync(Email, Password);
            using var personsBrowser = new HttpClient(new HttpClientHandler { CookieContainer = person.Cookies, AllowAutoRedirect = false });
            await fixture.Kit.ConnectAsync(plain, userId, personsBrowser: personsBrowser);
        }

        await using var session = await SignedInAsync(Email, width: 390);
        var page = session.Page;
        await page.Locator("tbody tr").First.WaitForAsync();
        await session.ScreenshotAsync("my-connections-390px");
        Assert.True(await page.EvaluateAsync<bool>("() => document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"),
            "My connections scrolls sideways at 390 px: " + await page.EvaluateAsync<string>("() => document.scrollingElement.scrollWidth + ' > ' + document.scrollingElement.clientWidth"));

        // Refresh does not apply to this provider, so there is no "Last refreshed" to show.
        Assert.DoesNotContain("Last refreshed", await page.Locator("main").InnerTextAsync());

        // A catalog provider with a CC0 icon shows it inline (no request elsewhere); a custom one keeps its letter.
        var logo = page.Locator(".connect-list [data-logo=github] svg path");
        Assert.Equal(1, await logo.CountAsync());
        Assert.False(string.IsNullOrEmpty(await logo.GetAttributeAsync("d")));
        Assert.Equal("P", await page.Locator(".connect-list a", new() { HasText = "Plain Tokens" }).Locator(".avatar").TextContentAsync());

        // Leaving "Keep access while you are not using it" out explains what that means, right there.
        await page.Locator(".connect-list a", new() { HasText = "Plain Tokens" }).ClickAsync();
        var hint = page.Locator(".when-unchecked");
        Assert.False(await hint.IsVisibleAsync());
        await page.Locator("input[value=offline_access]").UncheckAsync();
        await hint.WaitForAsync();
        Assert.Contains("no refresh token", await hint.TextContentAsync());
        Assert.True(await page.EvaluateAsync<bool>("() => document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"));
        await session.ScreenshotAsync("connect-without-offline-access");
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task TheConsentPageWrapsALongEmailAddressInsteadOfScrollingSideways()
    {
        // 64 characters is the longest local part an address may have (RFC 5321 section 4.5.3.1.1), with no place to break.
        var email = new string('l', 64) + "@consent-with-a-rather-long-domain-name.dashboard.example";
        await fixture.CreateUserAsync(email);
        var (clientId, _) = await AuthorizationServer.OAuthAppHelpers.RegisterApplicationAsync(Server);
        var (_, challenge) = AuthorizationServer.OAuthAppHelpers.Pkce();

        await using var session = await SignedInAsync(email, width: 390);
        var page = session.Page;
        await page.GotoAsync(Server.BaseUrl + AuthorizationServer.OAuthAppHelpers.AuthorizeUrl(clientId, challenge));
        var card = page.Locator(".card", new() { HasText = email });
        await card.WaitForAsync();
        await session.ScreenshotAsync("consent-long-email-390px");
        Assert.True(await card.EvaluateAsync<bool>("c => c.scrollWidth <= c.clientWidth"), "the address runs outside the consent card");
        Assert.True(await page.EvaluateAsync<bool>("() => document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"));
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task TheAuditLogWrapsLongDetailsInsteadOfScrollingSideways()
    {
        var audit = Server.Services.GetRequiredService<AuditLog>();
        await audit.RecordAsync("token_read", "api_key:wide-detail", "ws_wide", "conn_wide", new
        {
            note = string.Join(",", Enumerable.Range(0, 60).Select(i => "value_" + i)),
            unbroken = new string('x', 300),
        });

        await using var admin = await SignedInAsync(AdminEmail);
        var page = admin.Page;
        await page.GotoAsync(Server.BaseUrl + "/admin/audit?workspace_id=ws_wide");
        var table = page.Locator("table.audit");
        await table.WaitForAsync();
        await admin.ScreenshotAsync("admin-audit-wrapped");
        Assert.True(await table.EvaluateAsync<bool>("t => t.scrollWidth <= t.clientWidth"), "the audit table scrolls sideways");
        Assert.True(await page.EvaluateAsync<bool>("() => document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"));
        admin.AssertNoConsoleErrors();
    }

    [Theory]
    [InlineData("credential_schema", "[")]
    [InlineData("credential_schema", "[]")]
    [InlineData("credential_schema", "{\"type\":\"object\",\"properties\":{\"api_key\":{\"type\":\"string\",\"pattern\":\"(a\\\\1)\"}},\"required\":[\"api_key\"]}")]
    [InlineData("api_key_in", "<script>")]
    [InlineData("auth_mode", "kerberos")]
    [InlineData("api_base_url", "javascript:alert(1)")]
    public async Task TheCustomProviderFormAnswersOddInputWithAFieldErrorNeverA500(string field, string value)
    {
        using var browser = new Browser(Server);
        await browser.SignInAsync(AdminEmail, Password);
        await browser.NavigateAsync("/admin/providers");
        var fields = new Dictionary<string, string>
        {
            ["auth_mode"] = "api_key", ["name"] = "odd-" + Guid.NewGuid().ToString("N")[..8], ["api_base_url"] = "https://odd.example/api",
            ["api_key_in"] = "header", ["api_key_name"] = "X-Key", [field] = value,
        };
        await browser.SubmitAsync("/admin/providers/custom/new", fields);
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains("class=\"error\" role=\"alert\"", browser.LastPage);
        Assert.DoesNotContain("<script>\"", browser.LastPage);
    }

    [Fact]
    public async Task AProviderNamedCustomIsChangedByItsOwnEditForm()
    {
        // "custom" is a valid provider name; the form that adds a custom provider once had /admin/providers/custom as its address.
        await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "custom", auth_mode = "api_key", api_base_url = "https://custom.example/api", api_key = new { @in = "header", name = "X-Key" },
        }, HttpStatusCode.Created);
        using var browser = new Browser(Server);
        await browser.SignInAsync(AdminEmail, Password);
        await browser.NavigateAsync("/admin/providers/custom");
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);

        await browser.SubmitAsync("/admin/providers/custom", new Dictionary<string, string>
        {
            ["display_name"] = "Renamed custom", ["api_base_url"] = "https://custom.example/api", ["api_key_in"] = "header", ["api_key_name"] = "X-Key",
        });

        Assert.True(browser.LastStatus == HttpStatusCode.OK && browser.CurrentUri.AbsolutePath == "/admin/providers", browser.LastPage);
        Assert.Equal("Renamed custom", (await Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/custom")).GetProperty("display_name").GetString());
    }

    [Fact]
    public async Task UserAndProviderActionsOnUnknownOrOddIdsAnswerNotFound()
    {
        using var browser = new Browser(Server);
        await browser.SignInAsync(AdminEmail, Password);
        await browser.NavigateAsync("/admin/users");
        var csrf = Browser.Forms(browser.LastPage).First(f => f.Action == "/admin/users").Hidden;
        foreach (var path in new[]
        {
            "/admin/users/usr_nobody/disable", "/admin/users/" + new string('x', 300) + "/reset", "/admin/users/%3Cscript%3E/unlock", "/admin/providers/nobody/delete",
            "/admin/providers/nobody", "/admin/api-keys/ak_nobody/revoke", "/admin/webhooks/wh_nobody/delete",
        })
        {
            using var http = new HttpClient(new HttpClientHandler { CookieContainer = browser.Cookies, AllowAutoRedirect = false }) { BaseAddress = new Uri(Server.BaseUrl) };
            using var response = await http.PostAsync(path, new FormUrlEncodedContent(csrf));
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
    }
}
