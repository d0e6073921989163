using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Accounts;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Accounts;

/// <summary>Issue 12 item 7: signing out ends the session on the server, not only in the browser.</summary>
public sealed class SessionTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    private async Task<HttpStatusCode> ApplicationsWithCookieAsync(string cookie)
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = new Uri(Server.BaseUrl) };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/account/applications");
        request.Headers.Add("Cookie", cookie);
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    [Fact]
    public async Task ASessionUsedEveryFewHoursStillEndsNexusSessionMaxHoursAfterItsSignIn()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:SessionMaxHours"] = "24");
        using var browser = new Browser(server);
        await browser.SignUpAsync(NewEmail(), Password);

        // Used every five hours, the sliding cookie (renewed for 12 hours once half of that has passed) alone would never
        // expire: renewed at 10 and 20 hours, it is good until 32.
        for (var hours = 5; hours <= 20; hours += 5)
        {
            server.Time.Advance(TimeSpan.FromHours(5));
            Assert.Equal("/account/applications", (await browser.NavigateAsync("/account/applications")).AbsolutePath);
        }

        server.Time.Advance(TimeSpan.FromHours(5));
        Assert.Equal(AccountEndpoints.SignInPath, (await browser.NavigateAsync("/account/applications")).AbsolutePath);
    }

    [Fact]
    public async Task AReplayedSessionCookieIsRefusedAfterSignOut()
    {
        var email = NewEmail();
        using var browser = new Browser(Server);
        await browser.SignUpAsync(email, Password);
        var stolen = browser.Cookies.GetCookieHeader(new Uri(Server.BaseUrl));
        Assert.Equal(HttpStatusCode.OK, await ApplicationsWithCookieAsync(stolen));

        await browser.NavigateAsync("/");
        await browser.SubmitAsync("/account/signout");
        Assert.DoesNotContain(email, browser.LastPage);

        // The copy taken before sign-out no longer opens the session (it is sent to sign in).
        Assert.Equal(HttpStatusCode.Redirect, await ApplicationsWithCookieAsync(stolen));

        // Signing in again opens a new session that works.
        await browser.SignInAsync(email, Password);
        Assert.Equal(HttpStatusCode.OK, await ApplicationsWithCookieAsync(browser.Cookies.GetCookieHeader(new Uri(Server.BaseUrl))));
        Assert.Equal(HttpStatusCode.Redirect, await ApplicationsWithCookieAsync(stolen));
    }

    [Fact]
    public async Task AReplayedSessionCookieIsRefusedAfterOpenIdLogoutToo()
    {
        // RP-initiated logout (/oauth2/logout) ends the session on the server as /account/signout does.
        using var browser = new Browser(Server);
        await browser.SignUpAsync(NewEmail(), Password);
        var stolen = browser.Cookies.GetCookieHeader(new Uri(Server.BaseUrl));
        Assert.Equal(HttpStatusCode.OK, await ApplicationsWithCookieAsync(stolen));

        await browser.NavigateAsync("/oauth2/logout");
        await browser.SubmitAsync("/oauth2/logout");

        Assert.Equal(HttpStatusCode.Redirect, await ApplicationsWithCookieAsync(stolen));
    }

    [Fact]
    public async Task ACookieNewerThanTheCachedStampIsCheckedAgainstTheDatabaseBeforeItIsRefused()
    {
        // Another instance of a cluster signs the account out and in again: its new cookie carries a stamp this
        // instance has not cached yet. Simulated here by changing the stamp without telling this instance's cache.
        var email = NewEmail();
        using var browser = new Browser(Server);
        await browser.SignUpAsync(email, Password);
        var before = browser.Cookies.GetCookieHeader(new Uri(Server.BaseUrl));
        Assert.Equal(HttpStatusCode.OK, await ApplicationsWithCookieAsync(before));

        using (var scope = Server.Services.CreateScope())
        {
            var users = scope.ServiceProvider.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<Nexus.Server.Accounts.NexusUser>>();
            await users.UpdateSecurityStampAsync((await users.FindByEmailAsync(email))!);
        }

        using var renewed = new Browser(Server);
        await renewed.SignInAsync(email, Password);
        Assert.Equal(HttpStatusCode.OK, await ApplicationsWithCookieAsync(renewed.Cookies.GetCookieHeader(new Uri(Server.BaseUrl))));
        Assert.Equal(HttpStatusCode.Redirect, await ApplicationsWithCookieAsync(before));
    }
}
