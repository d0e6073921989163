using System.Net;
using System.Text.RegularExpressions;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Accounts;

/// <summary>Issue 12 item 1: only the operator makes someone the system administrator, never an email address.</summary>
public sealed partial class AdministratorTests
{
    private const string AdminEmail = "admin@nexus.example";

    private static async Task<bool> SeesSiteManagementAsync(Browser browser)
    {
        await browser.NavigateAsync("/admin/users");
        return browser.LastStatus == HttpStatusCode.OK && browser.LastPage.Contains("Site management", StringComparison.Ordinal);
    }

    private static async Task<bool> ListedAsAdminAsync(NexusTestServer server, string email)
    {
        var users = await server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/users");
        return users.GetProperty("users").EnumerateArray().Single(u => u.GetProperty("email").GetString() == email).GetProperty("is_system_admin").GetBoolean();
    }

    [Fact]
    public async Task SigningUpWithTheSuperuserEmailGrantsNothing()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["SUPERUSER_EMAIL"] = AdminEmail);
        using var squatter = new Browser(server);
        await squatter.SignUpAsync(AdminEmail.ToUpperInvariant(), Password);

        Assert.False(await SeesSiteManagementAsync(squatter));
        Assert.Equal(HttpStatusCode.Forbidden, squatter.LastStatus);
        await squatter.NavigateAsync("/");
        Assert.DoesNotContain("system administrator", squatter.LastPage);
        Assert.DoesNotContain("/admin", squatter.LastPage);
        Assert.False(await ListedAsAdminAsync(server, AdminEmail.ToUpperInvariant()));
    }

    [Fact]
    public async Task TheSetupTokenMakesTheSignedInAccountAdministratorOnce()
    {
        await using var db = await TestDatabase.CreateAsync();
        // Configured with the final newline of the file it was read from: what is entered (trimmed) still matches.
        await using var server = await NexusTestServer.StartAsync(db, s => s["SETUP_TOKEN"] += "\n");
        using var first = new Browser(server);
        await first.SignUpAsync(NewEmail(), Password);

        // A wrong token grants nothing.
        await first.EnterSetupTokenAsync("not-the-setup-token-at-all");
        Assert.Equal(HttpStatusCode.BadRequest, first.LastStatus);
        Assert.False(await SeesSiteManagementAsync(first));

        // The right one does, at once, for this session.
        await first.EnterSetupTokenAsync(server.SetupToken!.Trim());
        Assert.StartsWith("/admin", first.LastLocation);
        Assert.True(await SeesSiteManagementAsync(first));

        // It is used up: nobody else becomes administrator with it, and /setup has nothing left to do.
        using var second = new Browser(server);
        var email = NewEmail();
        await second.SignUpAsync(email, Password);
        await second.NavigateAsync("/setup");
        Assert.Equal(HttpStatusCode.NotFound, second.LastStatus);
        Assert.False(await SeesSiteManagementAsync(second));
        Assert.False(await ListedAsAdminAsync(server, email));

        // Anonymous visitors are sent to sign in first.
        using var anonymous = new Browser(server);
        Assert.EndsWith("/account/signin", (await anonymous.NavigateAsync("/setup")).AbsolutePath);
    }

    [Fact]
    public async Task WithSuperuserEmailSetOnlyThatAccountMayUseTheSetupToken()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["SUPERUSER_EMAIL"] = AdminEmail);
        using var other = new Browser(server);
        await other.SignUpAsync(NewEmail(), Password);
        await other.NavigateAsync("/setup");
        Assert.Equal(HttpStatusCode.Forbidden, other.LastStatus);
        Assert.DoesNotContain(Browser.Forms(other.LastPage), f => f.Action == "/setup");

        using var admin = new Browser(server);
        await admin.SignUpAsync(AdminEmail, Password);
        await admin.EnterSetupTokenAsync(server.SetupToken!);
        Assert.True(await SeesSiteManagementAsync(admin));
    }

    [Fact]
    public async Task TheApiKeyGrantsAndWithdrawsTheRoleForOpenSessions()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        using var browser = new Browser(server);
        var email = NewEmail();
        await browser.SignUpAsync(email, Password);
        Assert.False(await SeesSiteManagementAsync(browser));

        await server.MakeAdminAsync(email);
        Assert.True(await SeesSiteManagementAsync(browser));
        Assert.True(await ListedAsAdminAsync(server, email));

        var withdrawn = await server.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/users/{await server.UserIdAsync(email)}/admin");
        Assert.False(withdrawn.GetProperty("is_system_admin").GetBoolean());
        Assert.False(await SeesSiteManagementAsync(browser));

        await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users/usr_nobody/admin", expected: HttpStatusCode.NotFound);
        using var anonymous = new HttpRequestMessage(HttpMethod.Post, $"/v1/admin/users/{await server.UserIdAsync(email)}/admin");
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.Http.SendAsync(anonymous)).StatusCode);
    }

    [Fact]
    public async Task SignUpIsClosedByDefaultInProduction()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, environment: "Production");
        using var browser = new Browser(server);
        await browser.NavigateAsync("/account/signup");
        Assert.Equal(HttpStatusCode.Forbidden, browser.LastStatus);
        var settings = await server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/settings");
        Assert.False(settings.GetProperty("sign_up_enabled").GetBoolean());

        // Until an administrator opens it.
        await server.AdminJsonAsync(HttpMethod.Patch, "/v1/admin/settings", new { sign_up_enabled = true });
        await browser.SignUpAsync(NewEmail(), Password);
    }

    [Fact]
    public async Task AFreshDeploymentPrintsASetupTokenThatWorksOnce()
    {
        await using var db = await TestDatabase.CreateAsync();
        var shared = NexusServerProcess.SharedSettings();
        await using var server = await NexusServerProcess.StartAsync(db, shared);
        var token = SetupTokenRegex().Match(server.Output).Value;
        Assert.StartsWith("nxsetup_", token);

        // Production: sign-up is closed, so the operator creates the account with the admin API.
        var email = NewEmail();
        using var create = new HttpRequestMessage(HttpMethod.Post, "/v1/admin/users") { Content = System.Net.Http.Json.JsonContent.Create(new { email, password = Password }) };
        create.Headers.Add("X-API-Key", shared["API_KEY"]);
        Assert.Equal(HttpStatusCode.Created, (await server.Http.SendAsync(create)).StatusCode);

        using var browser = new Browser(server.BaseUrl);
        await browser.SignInAsync(email, Password);
        await browser.EnterSetupTokenAsync(token);
        Assert.StartsWith("/admin", browser.LastLocation);
        Assert.True(await SeesSiteManagementAsync(browser));
        await browser.NavigateAsync("/setup");
        Assert.Equal(HttpStatusCode.NotFound, browser.LastStatus);
    }

    [Fact]
    public async Task CommandsRunWhileNoAdministratorExistsLeaveTheTokenTheServerPrintedWorking()
    {
        await using var db = await TestDatabase.CreateAsync();
        var shared = NexusServerProcess.SharedSettings();
        await using var server = await NexusServerProcess.StartAsync(db, shared);
        var token = SetupTokenRegex().Match(server.Output).Value;
        Assert.StartsWith("nxsetup_", token);

        // A migrate job, an operator listing users: neither arms (nor prints) a token of its own, which would replace the server's.
        string[][] commands = [["migrate"], ["users", "list"]];
        foreach (var command in commands)
        {
            var (code, output) = await NexusProcess.RunAsync(db, shared, command);
            Assert.True(code == 0, output);
            Assert.DoesNotMatch(SetupTokenRegex(), output);
        }

        var email = NewEmail();
        using var create = new HttpRequestMessage(HttpMethod.Post, "/v1/admin/users") { Content = System.Net.Http.Json.JsonContent.Create(new { email, password = Password }) };
        create.Headers.Add("X-API-Key", shared["API_KEY"]);
        Assert.Equal(HttpStatusCode.Created, (await server.Http.SendAsync(create)).StatusCode);
        using var browser = new Browser(server.BaseUrl);
        await browser.SignInAsync(email, Password);
        await browser.EnterSetupTokenAsync(token);
        Assert.StartsWith("/admin", browser.LastLocation);
        Assert.True(await SeesSiteManagementAsync(browser));
    }

    [Fact]
    public async Task TheUsersPromoteCommandMakesAnAdministrator()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        using var browser = new Browser(server);
        var email = NewEmail();
        await browser.SignUpAsync(email, Password);
        var env = new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = server.EncryptionKey, ["SETUP_TOKEN"] = server.SetupToken };

        var (code, output) = await NexusProcess.RunAsync(db, env, "users", "promote", email);
        Assert.True(code == 0, output);
        Assert.Contains("is a system administrator", output);
        Assert.True(await ListedAsAdminAsync(server, email));

        (code, output) = await NexusProcess.RunAsync(db, env, "users", "demote", email);
        Assert.True(code == 0, output);
        Assert.False(await ListedAsAdminAsync(server, email));

        (code, output) = await NexusProcess.RunAsync(db, env, "users", "promote", "nobody@example.com");
        Assert.Equal(1, code);
        Assert.Contains("No account", output);
    }

    [GeneratedRegex("nxsetup_[A-Za-z0-9_-]{43}")]
    private static partial Regex SetupTokenRegex();
}
