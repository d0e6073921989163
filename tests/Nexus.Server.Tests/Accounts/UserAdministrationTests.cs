using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Accounts;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Accounts;

/// <summary>
/// Disabling an account or resetting its password in Site management › Users takes the OAuth tokens of its
/// applications and assistants away too, not only its sessions: their refresh tokens are refused (invalid_grant), their
/// access tokens are inactive at introspection and refused by the bearer check (/api/v1/me, /mcp, userinfo).
/// </summary>
public sealed class UserAdministrationTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    /// <summary>A person who authorized an application, the application's tokens, and the person's id.</summary>
    private sealed record Authorized(string Email, string UserId, string ClientId, string Secret, string AccessToken, string RefreshToken);

    private async Task<Authorized> AuthorizeApplicationAsync()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var email = NewEmail();
        using var browser = await SignedInBrowserAsync(Server, email);
        var tokens = await AuthorizeAndExchangeAsync(browser, clientId, secret!);
        var access = tokens.GetProperty("access_token").GetString()!;
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, access));
        var userId = (await IntrospectAsync(Server, clientId, secret!, access)).GetProperty("sub").GetString()!;
        return new Authorized(email, userId, clientId, secret!, access, tokens.GetProperty("refresh_token").GetString()!);
    }

    private async Task<JsonElement> AuthorizeAndExchangeAsync(Browser browser, string clientId, string secret)
    {
        var (verifier, challenge) = Pkce();
        var back = await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge));
        var (status, tokens) = await ExchangeCodeAsync(Server, clientId, secret, Browser.Query(back)["code"], verifier);
        Assert.True(status == HttpStatusCode.OK, tokens.ToString());
        return tokens;
    }

    /// <summary>A signed-in system administrator's browser.</summary>
    private async Task<Browser> AdministratorAsync()
    {
        var email = NewEmail();
        var browser = new Browser(Server);
        await browser.SignUpAsync(email, Password);
        await Server.MakeAdminAsync(email);
        return browser;
    }

    /// <summary>Disable user, as Site management › Users does it: the confirmation page, then its form.</summary>
    private static async Task DisableAsync(Browser admin, string userId)
    {
        await admin.NavigateAsync($"/admin/users/{userId}/disable");
        var landed = await admin.SubmitAsync($"/admin/users/{userId}/disable");
        Assert.Equal("/admin/users", landed.AbsolutePath);
        Assert.Equal(HttpStatusCode.OK, admin.LastStatus);
    }

    private static async Task EnableAsync(Browser admin, string userId)
    {
        await admin.NavigateAsync("/admin/users");
        await admin.SubmitAsync($"/admin/users/{userId}/enable");
        Assert.Equal(HttpStatusCode.OK, admin.LastStatus);
    }

    private static async Task ResetPasswordAsync(Browser admin, string userId)
    {
        await admin.NavigateAsync($"/admin/users/{userId}/reset");
        await admin.SubmitAsync($"/admin/users/{userId}/reset");
        Assert.Equal(HttpStatusCode.OK, admin.LastStatus);
        Assert.Contains("id=\"temporary-password\"", admin.LastPage);
    }

    private Task<(HttpStatusCode Status, JsonElement Body)> RefreshAsync(Authorized a, string? refreshToken = null) =>
        TokenAsync(Server, a.ClientId, a.Secret, ("grant_type", "refresh_token"), ("refresh_token", refreshToken ?? a.RefreshToken));

    /// <summary>Neither token is active nor accepted any more, and the refresh token is refused with invalid_grant.</summary>
    /// <param name="refreshFirst">Try the refresh token before looking at the access token (else after, so that the revocation is not the refresh's doing).</param>
    private async Task AssertTokensRevokedAsync(Authorized a, bool refreshFirst = false)
    {
        if (refreshFirst)
        {
            await AssertRefreshRefusedAsync(a);
        }

        Assert.False((await IntrospectAsync(Server, a.ClientId, a.Secret, a.AccessToken)).GetProperty("active").GetBoolean());
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, a.AccessToken));
        Assert.False((await IntrospectAsync(Server, a.ClientId, a.Secret, a.RefreshToken)).GetProperty("active").GetBoolean());
        await AssertRefreshRefusedAsync(a);
    }

    private async Task AssertRefreshRefusedAsync(Authorized a)
    {
        var (status, body) = await RefreshAsync(a);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task DisablingAnAccountRevokesTheTokensOfTheApplicationsItAuthorized()
    {
        var person = await AuthorizeApplicationAsync();
        using var admin = await AdministratorAsync();

        await DisableAsync(admin, person.UserId);

        await AssertTokensRevokedAsync(person);
    }

    [Fact]
    public async Task AnAdministratorsPasswordResetRevokesTheTokensOfTheApplicationsTheAccountAuthorized()
    {
        var person = await AuthorizeApplicationAsync();
        using var admin = await AdministratorAsync();

        await ResetPasswordAsync(admin, person.UserId);

        await AssertTokensRevokedAsync(person);
    }

    [Fact]
    public async Task EnablingTheAccountAgainBringsNoRevokedTokenBackTheApplicationIsAuthorizedAnew()
    {
        var person = await AuthorizeApplicationAsync();
        using var admin = await AdministratorAsync();
        await DisableAsync(admin, person.UserId);

        await EnableAsync(admin, person.UserId);

        await AssertTokensRevokedAsync(person);

        // The consent stays, so once the person has signed in again the application gets new tokens without asking;
        // without the person nothing does.
        using var browser = new Browser(Server);
        await browser.SignInAsync(person.Email, Password);
        var tokens = await AuthorizeAndExchangeAsync(browser, person.ClientId, person.Secret);
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, tokens.GetProperty("access_token").GetString()!));
        Assert.Equal(HttpStatusCode.OK, (await RefreshAsync(person, tokens.GetProperty("refresh_token").GetString())).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, person.AccessToken));
    }

    /// <summary>A code minted for the account, then <paramref name="action"/> by an administrator, then the exchange: refused.</summary>
    private async Task AssertCodeIssuedBeforeYieldsNoTokensAsync(Func<Browser, string, Task> action)
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var email = NewEmail();
        using var browser = await SignedInBrowserAsync(Server, email);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];
        using var admin = await AdministratorAsync();

        await action(admin, await Server.UserIdAsync(email));

        var (status, body) = await ExchangeCodeAsync(Server, clientId, secret, code, verifier);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
    }

    [Fact]
    public Task ACodeIssuedBeforeTheAccountWasDisabledYieldsNoTokens() => AssertCodeIssuedBeforeYieldsNoTokensAsync(DisableAsync);

    /// <summary>Minted by whoever held the account just before the reset: the reset spends the codes not yet exchanged.</summary>
    [Fact]
    public Task ACodeIssuedBeforeAnAdministratorsPasswordResetYieldsNoTokens() => AssertCodeIssuedBeforeYieldsNoTokensAsync(ResetPasswordAsync);

    /// <summary>
    /// Another instance still trusts the session a reset ended, for SessionCheckSeconds, and issues a code to it after
    /// the reset spent the account's codes: the code remembers the session's security stamp, no longer the account's,
    /// and yields no tokens. A code of the account's current session still does.
    /// </summary>
    [Fact]
    public async Task ACodeApprovedAfterAPasswordResetByTheSessionItEndedYieldsNoTokens()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var email = NewEmail();
        using var browser = await SignedInBrowserAsync(Server, email);
        var userId = await Server.UserIdAsync(email);
        await using var scope = Server.Services.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserStore>();
        var endedSession = (await users.FindByIdAsync(userId, CancellationToken.None))!.SecurityStamp;
        using var admin = await AdministratorAsync();
        await ResetPasswordAsync(admin, userId);

        // What the other instance stores for the code its consent page issues to the old session.
        async Task<(HttpStatusCode Status, JsonElement Body)> ExchangeCodeOfAsync(string stamp)
        {
            var (verifier, challenge) = Pkce();
            var code = "nxa_" + Guid.NewGuid().ToString("N");
            await Server.Services.GetRequiredService<Nexus.Server.AuthorizationServer.Grants.GrantStore>().SaveCodeAsync(code,
                new Nexus.Server.AuthorizationServer.Grants.AuthorizationCodeRecord(clientId, userId, RedirectUri, ["openid", "offline_access"], challenge, null,
                    DateTimeOffset.UtcNow.ToUnixTimeSeconds(), DateTimeOffset.UtcNow.AddSeconds(60).ToUnixTimeMilliseconds(), RedirectUriSent: true,
                    SessionStamp: Nexus.Server.AuthorizationServer.Grants.GrantStore.StampHash(stamp)), CancellationToken.None);
            return await ExchangeCodeAsync(Server, clientId, secret, code, verifier);
        }

        var (status, body) = await ExchangeCodeOfAsync(endedSession);
        Assert.Equal((HttpStatusCode.BadRequest, "invalid_grant"), (status, body.GetProperty("error").GetString()));
        var current = (await users.FindByIdAsync(userId, CancellationToken.None))!.SecurityStamp;
        Assert.Equal(HttpStatusCode.OK, (await ExchangeCodeOfAsync(current)).Status);
    }

    [Fact]
    public async Task ARefreshTokenWhoseGrantADisableDidNotRevokeIsRefusedAndItsGrantRevoked()
    {
        // An account locked for good without its grants revoked: disabled before disabling revoked them, or a refresh
        // that read the grant just before a disable revoked it.
        var person = await AuthorizeApplicationAsync();
        using (var scope = Server.Services.CreateScope())
        {
            var users = scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>();
            var user = (await users.FindByIdAsync(person.UserId))!;
            await users.SetLockoutEnabledAsync(user, true);
            await users.SetLockoutEndDateAsync(user, DateTimeOffset.MaxValue);
        }

        await AssertTokensRevokedAsync(person, refreshFirst: true);
    }

    [Fact]
    public async Task AFailedSignInLockoutLeavesTheApplicationsTokensAlone()
    {
        // Anyone who knows the address can lock the account for 15 minutes; that must not cut its applications off.
        var person = await AuthorizeApplicationAsync();
        using (var browser = new Browser(Server))
        {
            for (var i = 0; i < 5; i++)
            {
                await browser.SignInAsync(person.Email, "wrong password " + i);
            }
        }

        // The account is locked (not merely the address throttled), and not disabled.
        using (var scope = Server.Services.CreateScope())
        {
            var user = (await scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>().FindByIdAsync(person.UserId))!;
            Assert.Equal(UserAdministration.State.LockedOut, UserAdministration.StateOf(user, Server.Time.GetUtcNow()));
        }

        var (status, body) = await RefreshAsync(person);
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, person.AccessToken));
    }

    [Fact]
    public async Task TheUsersDisableCommandRevokesTheTokensOnTheRunningServerToo()
    {
        var person = await AuthorizeApplicationAsync();
        var env = new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = Server.EncryptionKey, ["SETUP_TOKEN"] = Server.SetupToken };

        var (code, output) = await NexusProcess.RunAsync(fixture.Database, env, "users", "disable", person.Email);
        Assert.True(code == 0, output);

        // Another process revoked the grant: this server reads it at its next revocation poll (PollSeconds, 1 s here).
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (await MeStatusAsync(Server, person.AccessToken) == HttpStatusCode.OK && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }

        await AssertTokensRevokedAsync(person);
    }

    [Fact]
    public async Task TheAdminApiDisablesEnablesAndResetsAPasswordAsSiteManagementDoes()
    {
        var person = await AuthorizeApplicationAsync();

        // Disable: the state says so, and the account's applications lose their tokens.
        var disabled = await Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/users/{person.UserId}/disable");
        Assert.Equal("disabled", disabled.GetProperty("state").GetString());
        await AssertTokensRevokedAsync(person);
        using (var browser = new Browser(Server))
        {
            await browser.NavigateAsync("/account/signin");
            await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = person.Email, ["password"] = Password });
            Assert.Equal("/account/signin", browser.CurrentUri.AbsolutePath);
        }

        var listed = (await Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/users")).GetProperty("users").EnumerateArray().Single(u => u.GetProperty("id").GetString() == person.UserId);
        Assert.Equal("disabled", listed.GetProperty("state").GetString());

        // Enable: the person signs in again.
        Assert.Equal("active", (await Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/users/{person.UserId}/enable")).GetProperty("state").GetString());
        using (var browser = new Browser(Server))
        {
            await browser.SignInAsync(person.Email, Password);
            Assert.NotEqual("/account/signin", browser.CurrentUri.AbsolutePath);
        }

        // Reset: a temporary password, shown once and not cached, which must be replaced at the first sign-in.
        using var request = Server.Admin(HttpMethod.Post, $"/v1/admin/users/{person.UserId}/reset-password");
        using var response = await Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        var reset = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.True(reset.GetProperty("user").GetProperty("password_change_required").GetBoolean());
        var temporary = reset.GetProperty("temporary_password").GetString()!;
        using (var browser = new Browser(Server))
        {
            await browser.NavigateAsync("/account/signin");
            await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = person.Email, ["password"] = Password });
            Assert.Equal("/account/signin", browser.CurrentUri.AbsolutePath);
            await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = person.Email, ["password"] = temporary });
            Assert.Contains("Choose your password", browser.LastPage, StringComparison.Ordinal);
        }

        // Site management's Unlock (from a page read before the account was disabled) lifts a failed sign-ins' lockout
        // only, never an administrator's disabling.
        await Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/users/{person.UserId}/disable");
        Assert.True(await UserAdministration.ApplyAsync(Server.Services.GetRequiredService<UserStore>(), Server.Services.GetRequiredService<SessionValidator>(),
            Server.Services.GetRequiredService<IAccountGrants>(), person.UserId, UserAdministration.Action.Unlock));
        var afterUnlock = (await Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/users")).GetProperty("users").EnumerateArray().Single(u => u.GetProperty("id").GetString() == person.UserId);
        Assert.Equal("disabled", afterUnlock.GetProperty("state").GetString());

        // An id that names nobody: 404, as a problem document.
        foreach (var action in new[] { "disable", "enable", "reset-password" })
        {
            using var unknown = Server.Admin(HttpMethod.Post, $"/v1/admin/users/usr_nobody/{action}");
            using var answer = await Server.Http.SendAsync(unknown);
            Assert.Equal(HttpStatusCode.NotFound, answer.StatusCode);
            Assert.Equal("application/problem+json", answer.Content.Headers.ContentType?.MediaType);
        }
    }
}
