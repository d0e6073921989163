using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Connections;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>
/// A connection in a Nexus account's own workspace (the dashboard's and the MCP tools') is completed only in a browser
/// signed in as that person. Otherwise someone who starts a connection in their own account and passes the link on
/// (the provider's consent URL, or Nexus's credential form) gets another person's account connected to their own
/// workspace, and to their assistant.
/// </summary>
public sealed class PersonalConsentTests(BrokerFixture shared) : IClassFixture<BrokerFixture>
{
    private const string Password = "a long enough password 1";

    private async Task<(string Id, Browser Browser)> PersonAsync(string name)
    {
        var email = $"{name}-{Guid.NewGuid():N}@personal.example";
        var created = await shared.Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        var browser = new Browser(shared.Server);
        await browser.SignInAsync(email, Password);
        return (created.GetProperty("id").GetString()!, browser);
    }

    private async Task<Connection> ConnectionAsync(string id) => (await shared.Server.Services.GetRequiredService<ConnectionStore>().FindAsync(id, CancellationToken.None))!;

    [Fact]
    public async Task AConsentInAPersonsOwnWorkspaceIsCompletedOnlyInTheirSignedInBrowser()
    {
        var provider = await shared.Kit.RegisterAsync("github");
        var (aliceId, alice) = await PersonAsync("alice");
        var (_, mallory) = await PersonAsync("mallory");
        using (alice)
        using (mallory)
        {
            // A connection in Alice's workspace; the provider's consent was given and sends a browser to the callback.
            var (authUrl, id) = await shared.Kit.RequestAsync(provider, workspace: aliceId);
            var callback = await shared.Kit.ConsentAsync(authUrl);
            var exchanges = shared.Fake.TokenCalls.Count;

            // Someone else signed in is refused, and nothing is consumed: Alice's own browser can still complete it.
            await mallory.NavigateAsync(callback);
            Assert.Equal(HttpStatusCode.Forbidden, mallory.LastStatus);
            Assert.Equal("consent_for_another_account", JsonDocument.Parse(mallory.LastPage).RootElement.GetProperty("code").GetString());

            // Nobody signed in: the sign-in page, back to the callback afterwards.
            using (var signedOut = await shared.Kit.Browser.GetAsync(callback))
            {
                Assert.Equal(HttpStatusCode.Redirect, signedOut.StatusCode);
                Assert.Equal("/account/signin?returnUrl=" + Uri.EscapeDataString(new Uri(callback).PathAndQuery), signedOut.Headers.Location!.OriginalString);
            }

            var waiting = await ConnectionAsync(id);
            Assert.Equal((ConnectionStatus.Pending, null), (waiting.Status, waiting.StateUsedAt));
            Assert.Equal(exchanges, shared.Fake.TokenCalls.Count);

            // Alice's browser completes it.
            var landed = await alice.NavigateAsync(callback);
            Assert.StartsWith(BrokerFixture.ReturnUrl + "?", landed.ToString(), StringComparison.Ordinal);
            Assert.Equal("active", Browser.Query(landed)["status"]);
            Assert.Equal(ConnectionStatus.Active, (await ConnectionAsync(id)).Status);
        }
    }

    [Fact]
    public async Task APersonSentToSignInByTheCallbackComesBackToItAndCompletesTheConsent()
    {
        var provider = await shared.Kit.RegisterAsync("github");
        var email = $"bob-{Guid.NewGuid():N}@personal.example";
        var bobId = (await shared.Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created)).GetProperty("id").GetString()!;
        var (authUrl, _) = await shared.Kit.RequestAsync(provider, workspace: bobId);
        var callback = await shared.Kit.ConsentAsync(authUrl);

        using var bob = new Browser(shared.Server);
        await bob.NavigateAsync(callback);
        Assert.Contains("/account/signin", bob.CurrentUri.AbsolutePath, StringComparison.Ordinal);
        var landed = await bob.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = Password });

        Assert.Equal("active", Browser.Query(landed)["status"]);
    }

    [Fact]
    public async Task ASessionThatOwesAPasswordChangeChangesItBeforeCompletingTheConsent()
    {
        var provider = await shared.Kit.RegisterAsync("github");
        var email = $"temp-{Guid.NewGuid():N}@personal.example";
        var id = (await shared.Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created)).GetProperty("id").GetString()!;
        string? temporary;
        using (var scope = shared.Server.Services.CreateScope())
        {
            var users = scope.ServiceProvider.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<Nexus.Server.Accounts.NexusUser>>();
            (_, temporary) = await Nexus.Server.Accounts.UserAdministration.ResetPasswordAsync(users,
                shared.Server.Services.GetRequiredService<Nexus.Server.Accounts.SessionValidator>(), shared.Server.Services.GetRequiredService<Nexus.Server.Accounts.IAccountGrants>(),
                id, DateTimeOffset.UtcNow);
        }

        // Whoever knows the temporary password acts for nobody until it is replaced, as on every other page.
        using var browser = new Browser(shared.Server);
        await browser.SignInAsync(email, temporary!);
        var (authUrl, connectionId) = await shared.Kit.RequestAsync(provider, workspace: id);
        var callback = await shared.Kit.ConsentAsync(authUrl);
        var landed = await browser.NavigateAsync(callback);
        Assert.Equal("/account/password", landed.AbsolutePath);
        Assert.Equal(ConnectionStatus.Pending, (await ConnectionAsync(connectionId)).Status);

        // A credential form posted from that session (its form token from the password change page) is refused, and
        // the page says what to do: change the password, not sign in.
        var basic = "basic-" + Guid.NewGuid().ToString("N")[..8];
        await shared.Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new { name = basic, auth_mode = "basic_auth", api_base_url = shared.Fake.BaseUrl + "/api" },
            HttpStatusCode.Created);
        var (formUrl, formConnection) = await shared.Kit.RequestAsync(basic, workspace: id);
        var token = Browser.Forms(browser.LastPage).First(f => f.Hidden.ContainsKey("__csrf")).Hidden["__csrf"];
        await browser.PostAsync("/connect/credentials", new Dictionary<string, string>
        {
            ["__csrf"] = token, ["state"] = Browser.Query(new Uri(formUrl))["state"], ["username"] = "someone", ["password"] = "planted",
        });
        Assert.Equal(HttpStatusCode.Forbidden, browser.LastStatus);
        Assert.Contains("Change your password to connect", browser.LastPage, StringComparison.Ordinal);
        Assert.Equal(ConnectionStatus.Pending, (await ConnectionAsync(formConnection)).Status);
    }

    [Fact]
    public async Task AConsentInAWorkspaceThatIsNoAccountIsCompletedByWhoeverHoldsTheLinkAsBefore()
    {
        var provider = await shared.Kit.RegisterAsync("github");
        var (_, returned) = await shared.Kit.ConnectAsync(provider, workspace: "ws_an_apps_user");
        Assert.Equal("active", returned["status"]);
    }

    [Fact]
    public async Task ACredentialFormInAPersonsOwnWorkspaceTakesNoCredentialsFromAnotherPerson()
    {
        var provider = "basic-" + Guid.NewGuid().ToString("N")[..8];
        await shared.Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new { name = provider, auth_mode = "basic_auth", api_base_url = shared.Fake.BaseUrl + "/api" },
            HttpStatusCode.Created);
        var (aliceId, alice) = await PersonAsync("alice");
        var (_, mallory) = await PersonAsync("mallory");
        using (alice)
        using (mallory)
        {
            var (authUrl, id) = await shared.Kit.RequestAsync(provider, workspace: aliceId);

            // The form is not shown to someone else, and a post of it with their own session's form token is refused.
            await mallory.NavigateAsync(authUrl);
            Assert.Equal(HttpStatusCode.Forbidden, mallory.LastStatus);
            Assert.Contains("another Nexus account", mallory.LastPage, StringComparison.Ordinal);
            await mallory.NavigateAsync("/dashboard");
            var token = Browser.Forms(mallory.LastPage).First(f => f.Hidden.ContainsKey("__csrf")).Hidden["__csrf"];
            await mallory.PostAsync("/connect/credentials", new Dictionary<string, string>
            {
                ["__csrf"] = token, ["state"] = Browser.Query(new Uri(authUrl))["state"], ["username"] = "mallorys", ["password"] = "planted",
            });
            Assert.Equal(HttpStatusCode.Forbidden, mallory.LastStatus);
            Assert.Equal(ConnectionStatus.Pending, (await ConnectionAsync(id)).Status);

            // Alice's own browser gets the form and connects.
            await alice.NavigateAsync(authUrl);
            Assert.Equal(HttpStatusCode.OK, alice.LastStatus);
            var back = await alice.SubmitAsync("/connect/credentials", new Dictionary<string, string> { ["username"] = "alice", ["password"] = "hers" });
            Assert.Equal("active", Browser.Query(back)["status"]);
        }
    }
}
