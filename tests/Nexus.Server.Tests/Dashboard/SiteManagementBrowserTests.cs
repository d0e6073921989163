using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nexus.Server.Notifications;
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
    public async Task AdminSendsATestEventAndAFailedDeliveryAgainFromTheWebhooksPageAndSeesWhatBecameOfThem()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var webhookId = await WebhookAsync(receiver.Url);

        // A delivery that failed for good: the receiver answered 500 to each attempt of the retry schedule, over which
        // Nexus's clock is moved (before anyone signs in: a day later, a session from before would have expired).
        receiver.FailNext(WebhookDispatcher.MaxAttempts);
        await server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{webhookId}/test", expected: HttpStatusCode.Accepted);
        var failed = Assert.Single(await SettledDeliveriesAsync(webhookId));
        while (failed.Status != DeliveryStatus.Failed)
        {
            Assert.Equal(DeliveryStatus.Pending, failed.Status);
            server.Time.Advance(failed.NextAttemptAt - server.Time.GetUtcNow() + TimeSpan.FromSeconds(1));
            failed = Assert.Single(await SettledDeliveriesAsync(webhookId));
        }

        Assert.Equal(WebhookDispatcher.MaxAttempts, failed.Attempts);
        Assert.Equal(WebhookDispatcher.MaxAttempts, receiver.Received.Count(d => d.Id == failed.Id && d.Answered == 500));

        await using var admin = await SignedUpAsync(AdminEmail);
        var page = admin.Page;
        await page.GotoAsync(server.BaseUrl + "/admin/webhooks");
        var failedEntry = page.Locator($"[data-delivery='{failed.Id}']");
        var shown = await failedEntry.InnerTextAsync();
        Assert.Contains("failed", shown);
        Assert.Contains($"{WebhookDispatcher.MaxAttempts} attempts, last error HTTP 500", shown);
        await admin.ScreenshotAsync("admin-webhooks-failed-delivery");

        // "Send test event": the page says it is on its way; the receiver (back now) gets it, and the page then lists it.
        await page.GetByRole(AriaRole.Button, new() { Name = $"Send a test event to {receiver.Url}", Exact = true }).ClickAsync();
        await page.WaitForPageAsync(url => url.Contains("/admin/webhooks?sent=test", StringComparison.Ordinal));
        var sentTestUrl = page.Url;
        var outcome = page.Locator("#webhook-outcome[role=status]");
        Assert.Contains("Test event queued", await outcome.InnerTextAsync());
        Assert.Contains(receiver.Url, await outcome.InnerTextAsync());
        var test = await receiver.WaitForAsync(d => d.Id != failed.Id);
        Assert.Equal("webhook.test", test.Type);
        Assert.Equal(webhookId, test.Data.GetProperty("webhook_id").GetString());
        Assert.Contains(await SettledDeliveriesAsync(webhookId), d => d.Id == test.Id && d.Status == DeliveryStatus.Delivered && d.Attempts == 1);
        await page.ReloadAsync();
        Assert.Contains("delivered 1 attempt", await page.Locator($"[data-delivery='{test.Id}']").InnerTextAsync());

        // "Send again" on the failed one: delivered, and the log counts the 8 failed attempts and this one.
        await failedEntry.GetByRole(AriaRole.Button, new() { Name = $"Send webhook.test delivery {failed.Id} again", Exact = true }).ClickAsync();
        await page.WaitForPageAsync(url => url.Contains("/admin/webhooks?sent=again", StringComparison.Ordinal));
        Assert.Contains("Delivery sent again", await outcome.InnerTextAsync());
        Assert.Contains(failed.Id, await outcome.InnerTextAsync());
        await admin.ScreenshotAsync("admin-webhooks-sent-again");
        await receiver.WaitForAsync(d => d.Id == failed.Id);
        var resent = (await SettledDeliveriesAsync(webhookId)).Single(d => d.Id == failed.Id);
        Assert.Equal((DeliveryStatus.Delivered, WebhookDispatcher.MaxAttempts + 1), (resent.Status, resent.Attempts));
        Assert.Equal(WebhookDispatcher.MaxAttempts + 1, receiver.Received.Count(d => d.Id == failed.Id));

        await page.ReloadAsync();
        shown = await failedEntry.InnerTextAsync();
        Assert.Contains($"delivered {WebhookDispatcher.MaxAttempts + 1} attempts", shown);
        Assert.Equal(0, await failedEntry.GetByRole(AriaRole.Button).CountAsync()); // delivered: nothing to send again

        // The page says "queued" of a test delivery that exists: not of a link that names none, or one that does not exist.
        Assert.Contains($"delivery={test.Id}", sentTestUrl, StringComparison.Ordinal);
        foreach (var crafted in new[] { "", "&delivery=msg_nonexistent" })
        {
            await page.GotoAsync($"{server.BaseUrl}/admin/webhooks?sent=test&webhook={webhookId}{crafted}");
            Assert.Equal(0, await outcome.CountAsync());
        }

        admin.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task AdminPausesResumesAndGivesAWebhookANewSecretFromTheWebhooksPage()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var webhookId = await WebhookAsync(receiver.Url);
        var store = server.Services.GetRequiredService<WebhookStore>();
        await using var admin = await SignedUpAsync(AdminEmail);
        var page = admin.Page;
        await page.GotoAsync(server.BaseUrl + "/admin/webhooks");

        // Pause: the row says since when, and offers Resume instead of Pause and Send test event.
        await page.GetByRole(AriaRole.Button, new() { Name = $"Pause {receiver.Url}", Exact = true }).ClickAsync();
        var resume = page.GetByRole(AriaRole.Button, new() { Name = $"Resume {receiver.Url}", Exact = true });
        await resume.WaitForAsync();
        Assert.NotNull((await store.FindAsync(webhookId, TestContext.Current.CancellationToken))!.DisabledAt);
        Assert.Equal(0, await page.GetByRole(AriaRole.Button, new() { Name = $"Send a test event to {receiver.Url}", Exact = true }).CountAsync());
        Assert.Contains("paused", await page.Locator("tr", new() { HasText = webhookId }).InnerTextAsync());
        await admin.ScreenshotAsync("admin-webhooks-paused");
        await resume.ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = $"Pause {receiver.Url}", Exact = true }).WaitForAsync();
        Assert.Null((await store.FindAsync(webhookId, TestContext.Current.CancellationToken))!.DisabledAt);

        // New secret: shown once, the one the store now signs with, the replaced one signing too until the time shown.
        var before = (await store.SecretsAsync(webhookId, TestContext.Current.CancellationToken)).Current;
        await page.GetByRole(AriaRole.Button, new() { Name = $"Give {receiver.Url} a new signing secret", Exact = true }).ClickAsync();
        var box = page.Locator("#new-webhook-secret");
        await box.WaitForAsync();
        var shown = await box.InputValueAsync();
        Assert.Equal(new WebhookSecrets(shown, before), await store.SecretsAsync(webhookId, TestContext.Current.CancellationToken));
        Assert.Contains("signed with both this secret and the previous one", await page.Locator("section", new() { HasText = "New signing secret" }).InnerTextAsync());
        Assert.Contains("encrypted", await page.Locator("#new-webhook-secret-help").InnerTextAsync());
        await admin.ScreenshotAsync("admin-webhooks-new-secret");
        await page.GotoAsync(server.BaseUrl + "/admin/webhooks");
        Assert.DoesNotContain(shown, await page.ContentAsync());
        Assert.Contains("the previous secret signs too until", await page.Locator("tr", new() { HasText = webhookId }).InnerTextAsync());
        admin.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task TheWebhooksPageButtonsRefuseAPersonWhoIsNotTheAdministratorAndAPostWithoutItsAntiforgeryTokenAndSendNothing()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var webhookId = await WebhookAsync(receiver.Url);
        var store = server.Services.GetRequiredService<WebhookStore>();
        var test = $"{server.BaseUrl}/admin/webhooks/{webhookId}/test";

        // Someone signed in but not the administrator: refused, token or not.
        await using var person = await SignedUpAsync("someone@example.com");
        var personPage = person.Page;
        await personPage.GotoAsync(server.BaseUrl + "/dashboard");
        var personToken = await personPage.Locator("input[name=__csrf]").First.InputValueAsync();
        var refused = await personPage.APIRequest.PostAsync(test, new() { Form = personPage.APIRequest.CreateFormData().Set("__csrf", personToken), MaxRedirects = 0 });
        Assert.Equal(403, refused.Status);

        // The administrator, without the page's antiforgery token: the "Form expired" page, nothing sent.
        await using var admin = await SignedUpAsync(AdminEmail);
        var page = admin.Page;
        var forged = await page.APIRequest.PostAsync(test, new() { Form = page.APIRequest.CreateFormData().Set("unrelated", "x"), MaxRedirects = 0 });
        Assert.Equal(400, forged.Status);
        Assert.Contains("could not be verified", await forged.TextAsync());

        // Likewise "Send again", for a failed delivery: its first attempt fails, then it is marked failed at once, as the
        // dispatcher leaves one after its last attempt (so that no scheduled retry can change it while the test looks).
        receiver.FailNext(1);
        await server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{webhookId}/test", expected: HttpStatusCode.Accepted);
        var delivery = Assert.Single(await SettledDeliveriesAsync(webhookId));
        var lease = await store.ClaimAsync(delivery, TimeSpan.FromMinutes(1), CancellationToken.None);
        Assert.NotNull(lease);
        await store.RecordAttemptAsync(delivery.Id, lease.Value, false, 500, "HTTP 500", null, CancellationToken.None);
        var again = $"{server.BaseUrl}/admin/webhooks/{webhookId}/deliveries/{delivery.Id}/retry";
        refused = await personPage.APIRequest.PostAsync(again, new() { Form = personPage.APIRequest.CreateFormData().Set("__csrf", personToken), MaxRedirects = 0 });
        Assert.Equal(403, refused.Status);
        forged = await page.APIRequest.PostAsync(again, new() { Form = page.APIRequest.CreateFormData().Set("unrelated", "x"), MaxRedirects = 0 });
        Assert.Equal(400, forged.Status);

        var after = Assert.Single(await SettledDeliveriesAsync(webhookId));
        Assert.Equal((DeliveryStatus.Failed, 2), (after.Status, after.Attempts));
        Assert.Single(receiver.Received);
    }

    private async Task<string> WebhookAsync(string url) =>
        (await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/webhooks", new { url, events = new[] { "connection.active" } }, HttpStatusCode.Created)).GetProperty("id").GetString()!;

    /// <summary>
    /// The webhook's deliveries, once the dispatcher has attempted whatever was due: it is woken and two of its idle
    /// passes are waited for (an event, not a sleep: the second pass began after anything due now, so it was attempted).
    /// </summary>
    private async Task<IReadOnlyList<WebhookDelivery>> SettledDeliveriesAsync(string webhookId)
    {
        var dispatcher = server.Services.GetRequiredService<WebhookDispatcher>();
        dispatcher.Wake();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await dispatcher.Passes.WaitAsync(2, timeout.Token);
        return await server.Services.GetRequiredService<WebhookStore>().DeliveriesAsync(webhookId, 10, CancellationToken.None);
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
