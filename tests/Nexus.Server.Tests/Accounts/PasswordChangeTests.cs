using System.Net;
using System.Web;
using Dapper;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Accounts;
using Nexus.Server.Data;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Accounts;

/// <summary>A person changes their own password; a temporary one (an administrator's reset) must be changed before anything else.</summary>
public sealed class PasswordChangeTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const string NewPassword = "a brand new passphrase";

    private NexusTestServer Server => fixture.Server;

    private static Dictionary<string, string> Change(string current, string next, string? confirmation = null) => new()
    {
        ["current_password"] = current,
        ["new_password"] = next,
        ["confirm_password"] = confirmation ?? next,
    };

    private async Task<HttpStatusCode> StatusWithCookieAsync(string cookie, string path) => (await GetWithCookieAsync(cookie, path)).Status;

    /// <summary>A GET with exactly this cookie, redirects not followed.</summary>
    private async Task<(HttpStatusCode Status, string? Location)> GetWithCookieAsync(string cookie, string path)
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = new Uri(Server.BaseUrl) };
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("Cookie", cookie);
        using var response = await http.SendAsync(request);
        return (response.StatusCode, response.Headers.Location?.OriginalString);
    }

    private async Task<HttpStatusCode> SignInStatusAsync(string email, string password)
    {
        using var browser = new Browser(Server);
        await browser.SignInAsync(email, password);
        return browser.LastStatus;
    }

    /// <summary>Resets the password as Site management › Users does and returns the temporary one.</summary>
    private async Task<string> ResetAsync(string email)
    {
        using var scope = Server.Services.CreateScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>();
        var user = (await users.FindByEmailAsync(email))!;
        var (_, temporary) = await UserAdministration.ResetPasswordAsync(users, Server.Services.GetRequiredService<SessionValidator>(), Server.Services.GetRequiredService<IAccountGrants>(),
            user.Id, DateTimeOffset.UtcNow);
        return temporary!;
    }

    private async Task<long> StoredFlagAsync(string email)
    {
        await using var connection = await Server.Services.GetRequiredService<NexusDatabase>().OpenAsync();
        return await connection.ExecuteScalarAsync<long>("SELECT password_change_required FROM users WHERE email = @email", new { email });
    }

    [Fact]
    public async Task ASignedInPersonChangesTheirPasswordAndTheirOtherSessionsEnd()
    {
        var email = NewEmail();
        using var here = new Browser(Server);
        await here.SignUpAsync(email, Password);
        using var elsewhere = new Browser(Server);
        await elsewhere.SignInAsync(email, Password);
        var otherCookie = elsewhere.Cookies.GetCookieHeader(new Uri(Server.BaseUrl));
        Assert.Equal(HttpStatusCode.OK, await StatusWithCookieAsync(otherCookie, "/dashboard"));

        await here.NavigateAsync("/");
        Assert.Contains("href=\"/account/password\"", here.LastPage);
        await here.NavigateAsync("/account/password");
        Assert.Contains("Change your password", here.LastPage);
        var landed = await here.SubmitAsync("/account/password", Change(Password, NewPassword));

        Assert.Equal("/dashboard", landed.AbsolutePath);
        Assert.Equal(HttpStatusCode.OK, here.LastStatus);
        Assert.Equal(HttpStatusCode.OK, await StatusWithCookieAsync(here.Cookies.GetCookieHeader(new Uri(Server.BaseUrl)), "/dashboard"));
        Assert.Equal(HttpStatusCode.Redirect, await StatusWithCookieAsync(otherCookie, "/dashboard"));
        Assert.Equal(HttpStatusCode.Unauthorized, await SignInStatusAsync(email, Password));
        Assert.Equal(HttpStatusCode.OK, await SignInStatusAsync(email, NewPassword));
    }

    [Fact]
    public async Task ChangingTheirOwnPasswordLeavesTheTokensOfTheApplicationsTheyAuthorized()
    {
        // Unlike an administrator's reset (Accounts/UserAdministrationTests), which revokes them.
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var back = await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge));
        var (_, tokens) = await ExchangeCodeAsync(Server, clientId, secret, Browser.Query(back)["code"], verifier);
        var access = tokens.GetProperty("access_token").GetString()!;

        await browser.NavigateAsync("/account/password");
        Assert.Equal("/dashboard", (await browser.SubmitAsync("/account/password", Change(Password, NewPassword))).AbsolutePath);

        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, access));
        Assert.True((await IntrospectAsync(Server, clientId, secret!, access)).GetProperty("active").GetBoolean());
        var (status, refreshed) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!));
        Assert.True(status == HttpStatusCode.OK, refreshed.ToString());
    }

    [Fact]
    public async Task AWrongCurrentPasswordChangesNothingAndCountsAsAFailedSignIn()
    {
        var email = NewEmail();
        using var browser = new Browser(Server);
        await browser.SignUpAsync(email, Password);
        await browser.NavigateAsync("/account/password");
        await browser.SubmitAsync("/account/password", Change("not my password at all", NewPassword));

        Assert.Equal(HttpStatusCode.Unauthorized, browser.LastStatus);
        Assert.Contains("The current password is wrong.", browser.LastPage);
        Assert.DoesNotContain(NewPassword, browser.LastPage);
        using (var scope = Server.Services.CreateScope())
        {
            var user = await scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>().FindByEmailAsync(email);
            Assert.Equal(1, user!.AccessFailedCount);
        }

        Assert.Equal(HttpStatusCode.OK, await SignInStatusAsync(email, Password));
        Assert.Equal(HttpStatusCode.Unauthorized, await SignInStatusAsync(email, NewPassword));
    }

    [Theory]
    [InlineData("short", "short", "at least 10")]
    [InlineData(NewPassword, "a different confirmation", "confirmation differ")]
    [InlineData(Password, Password, "different from the current one")]
    public async Task ANewPasswordThatIsRefusedSaysWhyAndChangesNothing(string next, string confirmation, string reason)
    {
        var email = NewEmail();
        using var browser = new Browser(Server);
        await browser.SignUpAsync(email, Password);
        await browser.NavigateAsync("/account/password");
        await browser.SubmitAsync("/account/password", Change(Password, next, confirmation));

        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains(reason, browser.LastPage, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(HttpStatusCode.OK, await SignInStatusAsync(email, Password));
    }

    [Fact]
    public async Task TheFormNeedsASessionAndItsAntiforgeryToken()
    {
        using var anonymous = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(Server.BaseUrl) };
        using var page = await anonymous.GetAsync("/account/password");
        Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
        Assert.Equal("/account/signin?returnUrl=%2Faccount%2Fpassword", page.Headers.Location?.OriginalString);

        var email = NewEmail();
        using var browser = new Browser(Server);
        await browser.SignUpAsync(email, Password);
        await browser.NavigateAsync("/account/password");
        await browser.SubmitAsync("/account/password", Change(Password, NewPassword), includeCsrf: false);
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Equal(HttpStatusCode.OK, await SignInStatusAsync(email, Password));
    }

    [Fact]
    public async Task ATemporaryPasswordFromAResetOpensOnlyThePasswordPageUntilItIsChanged()
    {
        var email = NewEmail();
        using (var owner = new Browser(Server))
        {
            await owner.SignUpAsync(email, Password);
        }

        var temporary = await ResetAsync(email);
        Assert.Equal(1, await StoredFlagAsync(email));

        // Signing in lands on the password page, which says why; the page asked for comes after.
        using var browser = new Browser(Server);
        await browser.NavigateAsync("/account/signin?returnUrl=%2Faccount%2Fapplications");
        var landed = await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = temporary });
        Assert.Equal("/account/password", landed.AbsolutePath);
        Assert.Equal("/account/applications", HttpUtility.ParseQueryString(landed.Query)["returnUrl"]);
        Assert.Contains("temporary password", browser.LastPage);

        // Every page of the session sends it back there, with the page as returnUrl; OAuth issues no code.
        var cookie = browser.Cookies.GetCookieHeader(new Uri(Server.BaseUrl));
        foreach (var path in new[] { "/dashboard", "/account/applications", "/mcp/connect" })
        {
            var (status, location) = await GetWithCookieAsync(cookie, path);
            Assert.Equal(HttpStatusCode.Redirect, status);
            Assert.StartsWith("/account/password?returnUrl=" + Uri.EscapeDataString(path), location);
        }

        await browser.NavigateAsync("/");
        Assert.Equal("/account/password", browser.CurrentUri.AbsolutePath);

        var (clientId, _) = await RegisterApplicationAsync(Server);
        var (_, challenge) = Pkce();
        var authorize = AuthorizeUrl(clientId, challenge);
        var silent = await browser.NavigateAsync(authorize + "&prompt=none");
        Assert.Equal("interaction_required", HttpUtility.ParseQueryString(silent.Query)["error"]);
        var sent = await browser.NavigateAsync(authorize);
        Assert.Equal("/account/password", sent.AbsolutePath);
        var back = HttpUtility.ParseQueryString(sent.Query)["returnUrl"]!;
        Assert.StartsWith("/oauth2/authorize?", back);

        // Changing it (the temporary password as the current one) clears the requirement and goes on with the request.
        var after = await browser.SubmitAsync("/account/password", Change(temporary, NewPassword));
        Assert.Equal("/oauth2/authorize", after.AbsolutePath);
        Assert.Contains("name=\"decision\"", browser.LastPage);
        Assert.Equal(0, await StoredFlagAsync(email));
        Assert.Equal(HttpStatusCode.OK, await StatusWithCookieAsync(browser.Cookies.GetCookieHeader(new Uri(Server.BaseUrl)), "/dashboard"));
        Assert.Equal(HttpStatusCode.Unauthorized, await SignInStatusAsync(email, temporary));

        // The next sign-in with the chosen password goes straight to the page asked for.
        using var later = new Browser(Server);
        await later.SignInAsync(email, NewPassword);
        Assert.Equal("/dashboard", later.CurrentUri.AbsolutePath);
    }

    [Fact]
    public async Task AGeneratedInitialPasswordMustBeChangedButOneTheAdministratorChoseNeedNot()
    {
        using var scope = Server.Services.CreateScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>();
        var (generated, _, _) = await UserAdministration.CreateAsync(users, NewEmail(), "generated temporary secret", null, temporary: true);
        var (chosen, _, _) = await UserAdministration.CreateAsync(users, NewEmail(), "an administrator chose this", "Named");

        Assert.Equal(1, await StoredFlagAsync(generated!.Email));
        Assert.Equal(0, await StoredFlagAsync(chosen!.Email));
        using var browser = new Browser(Server);
        await browser.SignInAsync(generated.Email, "generated temporary secret");
        Assert.Equal("/account/password", browser.CurrentUri.AbsolutePath);
        await browser.SignInAsync(chosen.Email, "an administrator chose this");
        Assert.Equal("/dashboard", browser.CurrentUri.AbsolutePath);
    }

    [Fact]
    public async Task ALockedAccountChangesNoPasswordUntilTheLockoutEnds()
    {
        var email = NewEmail();
        using var browser = new Browser(Server);
        await browser.SignUpAsync(email, Password);
        for (var i = 0; i < 5; i++)
        {
            await browser.NavigateAsync("/account/password");
            await browser.SubmitAsync("/account/password", Change($"wrong guess {i}", NewPassword));
            Assert.Equal(HttpStatusCode.Unauthorized, browser.LastStatus);
        }

        // Locked by the five wrong guesses: the right password changes nothing either, as at sign-in.
        await browser.NavigateAsync("/account/password");
        await browser.SubmitAsync("/account/password", Change(Password, NewPassword));
        Assert.Equal(HttpStatusCode.TooManyRequests, browser.LastStatus);
        Assert.Contains("Too many failed attempts", browser.LastPage);
        Assert.Equal(HttpStatusCode.Unauthorized, await SignInStatusAsync(email, NewPassword));
    }

    [Fact]
    public async Task APostWithoutASessionIsSentToSignInAndChangesNothing()
    {
        using var anonymous = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(Server.BaseUrl) };
        using var response = await anonymous.PostAsync("/account/password", new FormUrlEncodedContent(Change(Password, NewPassword)));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        // A form post has no page to come back to after signing in.
        Assert.Equal("/account/signin?returnUrl=%2F", response.Headers.Location?.OriginalString);
    }

    [Fact]
    public async Task AnAdministratorWithATemporaryPasswordReachesNeitherSiteManagementNorConsent()
    {
        var email = NewEmail();
        using (var owner = new Browser(Server))
        {
            await owner.SignUpAsync(email, Password);
        }

        await Server.MakeAdminAsync(email);
        var temporary = await ResetAsync(email);
        using var browser = new Browser(Server);
        await browser.SignInAsync(email, temporary);
        Assert.Equal("/account/password", browser.CurrentUri.AbsolutePath);

        await browser.NavigateAsync("/admin/users");
        Assert.Equal("/account/password", browser.CurrentUri.AbsolutePath);
        Assert.Equal("/admin/users", HttpUtility.ParseQueryString(browser.CurrentUri.Query)["returnUrl"]);

        // The consent form posted by hand (the page never showed it): refused, no code.
        var csrf = Browser.Forms(browser.LastPage).Single(f => f.Action.EndsWith("/account/password", StringComparison.Ordinal)).Hidden["__csrf"];
        var (clientId, _) = await RegisterApplicationAsync(Server);
        var (_, challenge) = Pkce();
        var fields = HttpUtility.ParseQueryString(new Uri(new Uri(Server.BaseUrl), AuthorizeUrl(clientId, challenge)).Query);
        var form = fields.AllKeys.ToDictionary(k => k!, k => fields[k]!);
        form["decision"] = "allow";
        form["__csrf"] = csrf;
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = browser.Cookies }) { BaseAddress = new Uri(Server.BaseUrl) };
        using var consent = await http.PostAsync("/oauth2/authorize", new FormUrlEncodedContent(form));
        Assert.Equal(HttpStatusCode.Forbidden, consent.StatusCode);
        Assert.Contains("Change your password first", await consent.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AnAdministratorMarksTheInitialPasswordTemporaryThroughTheApiOrSiteManagement()
    {
        // The API: only when asked (its callers before this flag keep their behaviour); the answer says which.
        var asked = NewEmail();
        var created = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email = asked, password = Password, password_change_required = true },
            HttpStatusCode.Created);
        Assert.True(created.GetProperty("password_change_required").GetBoolean());
        var plain = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email = NewEmail(), password = Password }, HttpStatusCode.Created);
        Assert.False(plain.GetProperty("password_change_required").GetBoolean());
        using (var browser = new Browser(Server))
        {
            await browser.SignInAsync(asked, Password);
            Assert.Equal("/account/password", browser.CurrentUri.AbsolutePath);
        }

        // Site management: the box is ticked by default; unticked, the password is the person's to keep.
        var admin = NewEmail();
        await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email = admin, password = Password }, HttpStatusCode.Created);
        await Server.MakeAdminAsync(admin);
        using var page = new Browser(Server);
        await page.SignInAsync(admin, Password);
        await page.NavigateAsync("/admin/users");
        Assert.Contains("id=\"password_change_required\" name=\"password_change_required\" value=\"true\" checked", page.LastPage);
        string ticked = NewEmail(), unticked = NewEmail();
        await page.SubmitAsync("/admin/users", new Dictionary<string, string> { ["email"] = ticked, ["password"] = Password, ["password_change_required"] = "true" });
        await page.NavigateAsync("/admin/users");
        await page.SubmitAsync("/admin/users", new Dictionary<string, string> { ["email"] = unticked, ["password"] = Password });
        Assert.Equal(1, await StoredFlagAsync(ticked));
        Assert.Equal(0, await StoredFlagAsync(unticked));
        Assert.Contains("temporary password", page.LastPage);
    }
}
