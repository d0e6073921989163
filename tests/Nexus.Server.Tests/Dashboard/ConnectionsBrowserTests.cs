using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nexus.Server.Data;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Dashboard;

/// <summary>"My connections" in a real browser: connect through a full OAuth redirect dance, revoke, reconnect.</summary>
public sealed class ConnectionsBrowserTests(ChromiumFixture chromium) : IAsyncLifetime
{
    private const string AdminEmail = "admin@nexus.example";
    private const string Password = "correct horse battery";
    private TestDatabase db = null!;
    private NexusTestServer server = null!;
    private FakeOAuthProvider fake = null!;
    private BrokerKit kit = null!;

    public async ValueTask InitializeAsync()
    {
        fake = await FakeOAuthProvider.StartAsync();
        db = await TestDatabase.CreateAsync();
        server = await NexusTestServer.StartAsync(db);
        kit = new BrokerKit(server, fake);
    }

    public async ValueTask DisposeAsync()
    {
        kit.Dispose();
        await server.DisposeAsync();
        await db.DisposeAsync();
        await fake.DisposeAsync();
    }

    private async Task<BrowserSession> SignedUpAsync(string email)
    {
        var session = await BrowserSession.StartAsync(chromium, db.Engine);
        await session.Page.GotoAsync(server.BaseUrl + "/account/signup");
        await session.Page.GetByLabel("Email").FillAsync(email);
        await session.Page.GetByLabel("Password").FillAsync(Password);
        await session.Page.GetByRole(AriaRole.Button, new() { Name = "Create account" }).ClickAsync();
        await session.Page.WaitForPageAsync(server.BaseUrl + "/");
        if (email == AdminEmail)
        {
            // The operator makes this account the administrator with the bootstrap API_KEY.
            await server.MakeAdminAsync(email);
        }

        return session;
    }

    private async Task ConnectAsync(IPage page, string displayName, params string[] uncheck)
    {
        await page.GotoAsync(server.BaseUrl + "/dashboard");
        await page.GetByRole(AriaRole.Link, new() { Name = displayName }).ClickAsync();
        foreach (var scope in uncheck)
        {
            await page.Locator($"input[value='{scope}']").UncheckAsync();
        }

        await page.GetByRole(AriaRole.Button, new() { Name = $"Continue to {displayName}" }).ClickAsync();
        await page.WaitForPageAsync(server.BaseUrl + "/dashboard");
    }

    [Fact]
    public async Task NewUserConnectsRevokesAndReconnectsWithOtherPermissions()
    {
        await kit.RegisterAsync("github", new { display_name = "GitHub", scopes = new[] { "read:user", "repo" }, userinfo_url = fake.Url("github", "userinfo") }, "github");
        await using var session = await SignedUpAsync("new.user@example.com");
        var page = session.Page;

        await page.GotoAsync(server.BaseUrl + "/dashboard");
        Assert.Contains("You have not connected any service yet", await page.ContentAsync());
        await session.ScreenshotAsync("my-connections-empty");

        // Connect with only one of the two permissions: consent at the provider, callback, back to the dashboard.
        await ConnectAsync(page, "GitHub", "repo");
        var row = page.Locator("tbody tr").First;
        Assert.Contains("active", await row.InnerTextAsync());
        Assert.Contains("read:user", await row.InnerTextAsync());
        Assert.DoesNotContain("“repo”", await row.InnerTextAsync());
        // The account at the provider, from its userinfo endpoint.
        Assert.Contains("octocat@example.com", await row.InnerTextAsync());
        await session.ScreenshotAsync("my-connections");

        // Revoke asks first, then the connection is gone (and was revoked at the provider).
        await page.GetByRole(AriaRole.Link, new() { Name = "Revoke GitHub" }).ClickAsync();
        await session.ScreenshotAsync("revoke-confirm");
        await page.GetByRole(AriaRole.Button, new() { Name = "Revoke access" }).ClickAsync();
        await page.WaitForPageAsync(server.BaseUrl + "/dashboard");
        Assert.Contains("You have not connected any service yet", await page.ContentAsync());
        Assert.NotEmpty(fake.Revocations);

        // Connect again, this time granting both permissions.
        await ConnectAsync(page, "GitHub");
        var text = await page.Locator("tbody").InnerTextAsync();
        Assert.Contains("read:user", text);
        Assert.Contains("repo", text);
        Assert.Equal(1, await page.Locator("tbody tr").CountAsync());
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task AttentionRequiredShowsTheBannerAndReconnectRestoresIt()
    {
        await kit.RegisterAsync("google", new { display_name = "Google Drive", scopes = new[] { "drive.readonly" } }, "drive");
        await using var session = await SignedUpAsync("attention@example.com");
        var page = session.Page;
        await ConnectAsync(page, "Google Drive");

        // The provider refused a refresh: the refresh engine marks the connection like this.
        await using (var connection = await server.Services.GetRequiredService<NexusDatabase>().OpenAsync())
        {
            await connection.ExecuteAsync("UPDATE connections SET status = 'attention_required', error = 'invalid_grant'");
        }

        await page.GotoAsync(server.BaseUrl + "/dashboard");
        var banner = page.GetByRole(AriaRole.Alert);
        Assert.Contains("needs to be re-established", await banner.InnerTextAsync());
        await session.ScreenshotAsync("attention-required");

        await page.GetByRole(AriaRole.Link, new() { Name = "Reconnect" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Continue to Google Drive" }).ClickAsync();
        await page.WaitForPageAsync(server.BaseUrl + "/dashboard");
        Assert.Equal(0, await page.GetByRole(AriaRole.Alert).CountAsync());
        Assert.Equal(1, await page.Locator("tbody tr").CountAsync());
        Assert.Contains("active", await page.Locator("tbody tr").First.InnerTextAsync());
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task MyConnectionsShowsHealthInPlainWordsAndReconnectKeepsTheConnection()
    {
        await kit.RegisterAsync("google", new { display_name = "Google Drive", scopes = new[] { "drive.readonly" } }, "drive");
        await using var session = await SignedUpAsync("health@example.com");
        var page = session.Page;
        await ConnectAsync(page, "Google Drive");
        var id = (await ConnectionIdsAsync()).Single();
        var health = page.Locator("tbody tr td[data-label=Health]");
        Assert.Contains("Last refreshed: not yet", await health.InnerTextAsync());
        Assert.Contains("Next refresh:", await health.InnerTextAsync());

        // The provider is down: two refreshes fail (the API's manual refresh, as the background refresher would).
        fake.FailRefresh = true;
        try
        {
            for (var i = 0; i < 2; i++)
            {
                var (status, _) = await kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
                Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, status);
            }
        }
        finally
        {
            fake.FailRefresh = false;
        }

        await page.GotoAsync(server.BaseUrl + "/dashboard");
        await page.GetByText("2 failed refreshes in a row").WaitForAsync();
        var text = await health.InnerTextAsync();
        Assert.Contains("Google Drive could not be reached to renew access. Nexus keeps trying", text);
        Assert.Contains("Next try:", text);
        Assert.DoesNotContain("temporarily_unavailable", text);
        await session.ScreenshotAsync("my-connections-health");
        // The health cell keeps the phone layout: nothing scrolls sideways at 390 px.
        await page.SetViewportSizeAsync(390, 844);
        await session.ScreenshotAsync("my-connections-health-390px");
        Assert.True(await page.EvaluateAsync<bool>("() => document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"));
        await page.SetViewportSizeAsync(1200, 900);

        // Reconnect goes through the same service as POST /v1/connections/{id}/reconnect: a new consent for the same id.
        await page.GetByRole(AriaRole.Link, new() { Name = "Reconnect Google Drive" }).ClickAsync();
        await page.GetByRole(AriaRole.Heading, new() { Name = "Reconnect Google Drive" }).WaitForAsync();
        Assert.True(await page.Locator("input[value='drive.readonly']").IsCheckedAsync());
        await page.GetByRole(AriaRole.Button, new() { Name = "Continue to Google Drive" }).ClickAsync();
        await page.WaitForPageAsync(server.BaseUrl + "/dashboard");
        await page.Locator("tbody tr td[data-label=Health]", new() { HasNotText = "failed refresh" }).WaitForAsync();
        Assert.Equal([id], await ConnectionIdsAsync());
        Assert.Contains("active", await page.Locator("tbody tr").First.InnerTextAsync());
        var audit = await server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}&event=reconnected");
        Assert.Single(audit.GetProperty("events").EnumerateArray());
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task AReturnLinkThatClaimsSuccessRevokesNothing()
    {
        await kit.RegisterAsync("github", new { display_name = "GitHub", scopes = new[] { "read:user" } }, "github");
        await using var session = await SignedUpAsync("link.victim@example.com");
        var page = session.Page;
        await ConnectAsync(page, "GitHub");
        var id = (await ConnectionIdsAsync()).Single();

        // A link (in a mail, on another site) that used to make the dashboard revoke the connection named in
        // "replaces" because the query said status=active. GET changes nothing now.
        await page.GotoAsync($"{server.BaseUrl}/dashboard/returned?connection_id={id}&status=active&replaces={id}");
        await page.GotoAsync($"{server.BaseUrl}/dashboard/returned?connection_id=conn_other&status=active&replaces={id}");
        Assert.Equal([id], await ConnectionIdsAsync());
        Assert.Empty(fake.Revocations);

        // And a status the query claims is not believed either: the page shows what the database says.
        await page.GotoAsync($"{server.BaseUrl}/dashboard/returned?connection_id={id}&status=failed&error=made_up");
        Assert.Equal(server.BaseUrl + "/dashboard", page.Url);
        Assert.DoesNotContain("made_up", await page.ContentAsync());
    }

    [Fact]
    public async Task AReconnectRetiresTheOldConnectionWhenTheNewOneIsActiveEvenIfTheBrowserNeverComesBack()
    {
        await kit.RegisterAsync("google", new { display_name = "Google Drive", scopes = new[] { "drive.readonly" } }, "drive");
        await using var session = await SignedUpAsync("reconnect@example.com");
        var page = session.Page;
        await ConnectAsync(page, "Google Drive");
        var old = (await ConnectionIdsAsync()).Single();

        // The browser never reaches the return page (closed tab, lost network): the server still completes the
        // replacement, because it happens when the callback activates the new connection. The form's answer (the
        // redirect to the provider) is taken from the browser, and the provider and callback are visited without it.
        var authUrl = new TaskCompletionSource<string>();
        await page.RouteAsync("**/dashboard/connect/drive", async route =>
        {
            if (route.Request.Method != "POST")
            {
                await route.ContinueAsync();
                return;
            }

            var answer = await route.FetchAsync(new() { MaxRedirects = 0 });
            authUrl.TrySetResult(answer.Headers["location"]);
            await route.AbortAsync();
        });
        await page.GotoAsync($"{server.BaseUrl}/dashboard/connect/drive?replaces={old}");
        await page.GetByRole(AriaRole.Button, new() { Name = "Continue to Google Drive" }).ClickAsync();
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
        var atProvider = await http.GetAsync(await authUrl.Task.WaitAsync(TimeSpan.FromSeconds(30)));
        // The callback with the person's session (the browser's cookies), as only they may complete the consent.
        var callback = await page.Context.APIRequest.GetAsync(atProvider.Headers.Location!.ToString(), new() { MaxRedirects = 0 });
        Assert.Equal(302, callback.Status);
        Assert.Contains("/dashboard/returned", callback.Headers["location"]);

        var ids = await ConnectionIdsAsync();
        Assert.DoesNotContain(old, ids);
        Assert.Single(ids);
        Assert.NotEmpty(fake.Revocations);
    }

    [Fact]
    public async Task AReconnectCannotRetireAnotherPersonsConnection()
    {
        await kit.RegisterAsync("github", new { display_name = "GitHub", scopes = new[] { "read:user" } }, "github");
        await using (var victim = await SignedUpAsync("victim@example.com"))
        {
            await ConnectAsync(victim.Page, "GitHub");
        }

        var victims = (await ConnectionIdsAsync()).Single();
        await using var attacker = await SignedUpAsync("attacker@example.com");
        await attacker.Page.GotoAsync($"{server.BaseUrl}/dashboard/connect/github?replaces={victims}");
        await attacker.Page.GetByRole(AriaRole.Button, new() { Name = "Continue to GitHub" }).ClickAsync();
        await attacker.Page.WaitForPageAsync(server.BaseUrl + "/dashboard");

        Assert.Contains(victims, await ConnectionIdsAsync());
        Assert.Equal(2, (await ConnectionIdsAsync()).Count);
    }

    private async Task<List<string>> ConnectionIdsAsync()
    {
        await using var connection = await server.Services.GetRequiredService<NexusDatabase>().OpenAsync();
        return (await connection.QueryAsync<string>("SELECT id FROM connections ORDER BY id")).ToList();
    }

    [Fact]
    public async Task ApiKeyServicesAreConnectedThroughTheCredentialForm()
    {
        // A custom api_key provider: the catalog's OpenAI entry would verify the key against api.openai.com, out of reach here.
        await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "openai", display_name = "OpenAI", auth_mode = "api_key", api_base_url = fake.BaseUrl + "/api",
            api_key = new { @in = "header", name = "Authorization", prefix = "Bearer " },
        }, System.Net.HttpStatusCode.Created);
        await using var session = await SignedUpAsync("keys@example.com");
        var page = session.Page;
        await page.GotoAsync(server.BaseUrl + "/dashboard");
        await page.GetByRole(AriaRole.Link, new() { Name = "OpenAI" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Continue to OpenAI" }).ClickAsync();
        await page.WaitForPageAsync("**/connect/credentials**");
        Assert.Equal("password", await page.Locator("input[name=api_key]").GetAttributeAsync("type"));
        await session.ScreenshotAsync("credential-form");
        await page.Locator("input[name=api_key]").FillAsync("sk-" + new string('a', 40));
        await page.GetByRole(AriaRole.Button, new() { Name = "Connect", Exact = true }).ClickAsync();
        await page.WaitForPageAsync(server.BaseUrl + "/dashboard");
        Assert.Contains("active", await page.Locator("tbody tr").First.InnerTextAsync());
        Assert.DoesNotContain("sk-aaaa", await page.ContentAsync());
        session.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task AdminSeesProvidersApiKeysWebhooksAuditAndHealth()
    {
        await kit.RegisterAsync("github", new { display_name = "GitHub" }, "github");
        await using var admin = await SignedUpAsync(AdminEmail);
        var page = admin.Page;
        await ConnectAsync(page, "GitHub");

        await page.GotoAsync(server.BaseUrl + "/admin/api-keys");
        await page.GetByLabel("Name").FillAsync("agent");
        await page.GetByLabel("Workspaces").FillAsync("ws_agent");
        await page.GetByLabel("Bridge only").CheckAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        Assert.StartsWith("nxk_", await page.Locator("#new-api-key").InputValueAsync());
        Assert.Contains("Bridge only", await page.ContentAsync());
        await admin.ScreenshotAsync("admin-api-keys");

        await page.GotoAsync(server.BaseUrl + "/admin/webhooks");
        await page.GetByLabel("Endpoint URL").FillAsync("https://hooks.example.com/nexus");
        await page.GetByRole(AriaRole.Button, new() { Name = "Add webhook" }).ClickAsync();
        Assert.StartsWith("whsec_", await page.Locator("#new-webhook-secret").InputValueAsync());
        await admin.ScreenshotAsync("admin-webhooks");

        await page.GotoAsync(server.BaseUrl + "/admin/providers");
        Assert.Contains("GitHub", await page.ContentAsync());
        await page.Locator("#custom_name").FillAsync("intranet");
        await page.Locator("#display_name").FillAsync("Intranet SSO");
        await page.Locator("#authorization_url").FillAsync(fake.Url("github", "authorize"));
        await page.Locator("#token_url").FillAsync(fake.Url("github", "token"));
        await page.Locator("#custom_client_id").FillAsync(fake.ClientId);
        await page.Locator("#custom_client_secret").FillAsync(fake.ClientSecret);
        await page.GetByRole(AriaRole.Button, new() { Name = "Add custom provider" }).ClickAsync();
        await page.WaitForPageAsync(server.BaseUrl + "/admin/providers");
        Assert.Contains("Intranet SSO", await page.Locator("tbody").InnerTextAsync());
        Assert.DoesNotContain(fake.ClientSecret, await page.ContentAsync());
        await admin.ScreenshotAsync("admin-providers");

        await page.GotoAsync(server.BaseUrl + "/admin/audit?event=activated");
        Assert.Contains("activated", await page.Locator("tbody").InnerTextAsync());
        await admin.ScreenshotAsync("admin-audit");

        await page.GotoAsync(server.BaseUrl + "/admin/status");
        Assert.Contains("Connections by provider", await page.ContentAsync());
        Assert.Equal(1, await page.Locator("svg[role=img]").CountAsync());
        await admin.ScreenshotAsync("admin-status");
        admin.AssertNoConsoleErrors();
    }
}
