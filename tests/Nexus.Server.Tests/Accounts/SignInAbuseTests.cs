using System.Net;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Accounts;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Accounts;

/// <summary>Issue 12 item 8: guessing and lockout abuse are throttled per address, and answers do not tell accounts apart.</summary>
public sealed class SignInAbuseTests
{
    private sealed class CountingHasher : IPasswordHasher<NexusUser>
    {
        private readonly PasswordHasher<NexusUser> inner = new();
        public int Verifications;

        public string HashPassword(NexusUser user, string password) => inner.HashPassword(user, password);

        public PasswordVerificationResult VerifyHashedPassword(NexusUser user, string hashedPassword, string providedPassword)
        {
            Interlocked.Increment(ref Verifications);
            return inner.VerifyHashedPassword(user, hashedPassword, providedPassword);
        }
    }

    [Fact]
    public async Task UnknownEmailsAndLockedAccountsCostOnePasswordHashLikeAWrongPassword()
    {
        var hasher = new CountingHasher();
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, services: s => s.AddSingleton<IPasswordHasher<NexusUser>>(hasher));
        var email = NewEmail();
        using (var owner = new Browser(server))
        {
            await owner.SignUpAsync(email, Password);
        }

        using var browser = new Browser(server);
        async Task<int> VerificationsForAsync(string who, string password)
        {
            var before = Volatile.Read(ref hasher.Verifications);
            await browser.SignInAsync(who, password);
            Assert.Equal(HttpStatusCode.Unauthorized, browser.LastStatus);
            return Volatile.Read(ref hasher.Verifications) - before;
        }

        Assert.Equal(1, await VerificationsForAsync(email, "wrong password"));
        Assert.Equal(1, await VerificationsForAsync(NewEmail(), "wrong password"));
        for (var i = 0; i < 4; i++)
        {
            await VerificationsForAsync(email, "wrong password " + i);
        }

        // Locked now: still one verification, and the same answer.
        Assert.Equal(1, await VerificationsForAsync(email, Password));
        Assert.Contains("Wrong email or password.", browser.LastPage);
    }

    [Fact]
    public async Task OneAddressCannotGuessAcrossManyAccounts()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedSignInLimit"] = "3");
        var email = NewEmail();
        using (var owner = new Browser(server))
        {
            await owner.SignUpAsync(email, Password);
        }

        using var attacker = new Browser(server);
        for (var i = 0; i < 3; i++)
        {
            await attacker.SignInAsync(NewEmail(), "guess " + i);
            Assert.Equal(HttpStatusCode.Unauthorized, attacker.LastStatus);
        }

        // The address is throttled before any account is looked at: no more guesses, no lockouts caused.
        await attacker.SignInAsync(email, "guess 4");
        Assert.Equal(HttpStatusCode.TooManyRequests, attacker.LastStatus);
        Assert.Contains("Too many failed sign-ins", attacker.LastPage);
        await attacker.SignInAsync(email, Password);
        Assert.Equal(HttpStatusCode.TooManyRequests, attacker.LastStatus);
        var users = await server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/users");
        Assert.False(users.GetProperty("users").EnumerateArray().Single(u => u.GetProperty("email").GetString() == email).GetProperty("locked_out").GetBoolean());

        // Guessing the setup token counts too.
        using var signedIn = new Browser(server);
        await signedIn.SignUpAsync(NewEmail(), Password);
        await signedIn.EnterSetupTokenAsync("a-guessed-setup-token");
        Assert.Equal(HttpStatusCode.TooManyRequests, signedIn.LastStatus);
    }
}
