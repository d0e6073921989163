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

    /// <summary>Browsers on the sign-in page, each with its own form token; then every one submits at once.</summary>
    private static async Task<List<Browser>> SubmitAtOnceAsync(NexusTestServer server, int count, Func<int, (string Email, string Password)> credentials)
    {
        var browsers = new List<Browser>();
        for (var i = 0; i < count; i++)
        {
            var browser = new Browser(server);
            await browser.NavigateAsync("/account/signin");
            browsers.Add(browser);
        }

        using var start = new ManualResetEventSlim();
        await Task.WhenAll(browsers.Select((b, i) => Task.Run(async () =>
        {
            start.Wait();
            var (email, password) = credentials(i);
            await b.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = password });
        })).Append(Task.Run(start.Set)));
        return browsers;
    }

    [Fact]
    public async Task WrongPasswordsSentAtOnceEachCountTowardTheAccountsLockout()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedSignInLimit"] = "1000");
        var email = NewEmail();
        using (var owner = new Browser(server))
        {
            await owner.SignUpAsync(email, Password);
        }

        // As many wrong passwords as lock an account (5), all at once: each read the account before any had failed.
        var guessers = await SubmitAtOnceAsync(server, 5, i => (email, "wrong password " + i));
        Assert.All(guessers, g => Assert.Equal(HttpStatusCode.Unauthorized, g.LastStatus));
        guessers.ForEach(g => g.Dispose());

        // Every one counted: the account is locked, so even the right password is refused.
        var users = await server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/users");
        Assert.True(users.GetProperty("users").EnumerateArray().Single(u => u.GetProperty("email").GetString() == email).GetProperty("locked_out").GetBoolean());
        using var owner2 = new Browser(server);
        await owner2.SignInAsync(email, Password);
        Assert.Equal(HttpStatusCode.Unauthorized, owner2.LastStatus);
    }

    /// <summary>Holds every check of a password other than <see cref="Right"/> until released, counting those held.</summary>
    private sealed class GatedHasher(string right) : IPasswordHasher<NexusUser>
    {
        private readonly PasswordHasher<NexusUser> inner = new();

        public string Right => right;

        public ManualResetEventSlim Gate { get; } = new();

        /// <summary>Released once per check held.</summary>
        public SemaphoreSlim Entered { get; } = new(0);

        public string HashPassword(NexusUser user, string password) => inner.HashPassword(user, password);

        public PasswordVerificationResult VerifyHashedPassword(NexusUser user, string hashedPassword, string providedPassword)
        {
            if (providedPassword != right)
            {
                Entered.Release();
                Gate.Wait(TimeSpan.FromSeconds(60));
            }

            return inner.VerifyHashedPassword(user, hashedPassword, providedPassword);
        }
    }

    [Fact]
    public async Task WhileAsManyGuessesAsLockTheAccountAreBeingCheckedTheRightPasswordIsRefusedToo()
    {
        // Each attempt is counted before its check: five guesses in flight have used the account's five attempts, so a
        // sixth is not checked at all, even with the right password (counted after the check, all six were checked and
        // the right one signed in: guesses sent at once went past the lockout).
        var hasher = new GatedHasher(Password);
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedSignInLimit"] = "1000", services: s => s.AddSingleton<IPasswordHasher<NexusUser>>(hasher));
        var email = NewEmail();
        using (var owner = new Browser(server))
        {
            await owner.SignUpAsync(email, Password);
        }

        var guessers = new List<Browser>();
        for (var i = 0; i < 5; i++)
        {
            var guesser = new Browser(server);
            await guesser.NavigateAsync("/account/signin");
            guessers.Add(guesser);
        }

        var guesses = guessers.Select((g, i) => g.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = "wrong " + i })).ToList();
        try
        {
            for (var i = 0; i < 5; i++)
            {
                Assert.True(await hasher.Entered.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken), $"{i} of the 5 guesses reached their check");
            }

            using var owner = new Browser(server);
            await owner.SignInAsync(email, Password);
            Assert.Equal(HttpStatusCode.Unauthorized, owner.LastStatus);
        }
        finally
        {
            hasher.Gate.Set();
            await Task.WhenAll(guesses);
            guessers.ForEach(g => g.Dispose());
        }
    }

    [Fact]
    public async Task AnUpdateMadeFromAnEarlierReadOfTheAccountDoesNotLiftALockoutCountedSince()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedSignInLimit"] = "1000");
        var email = NewEmail();
        using (var owner = new Browser(server))
        {
            await owner.SignUpAsync(email, Password);
        }

        // A sign-out (a new security stamp) reads the account, then guesses lock it, then the sign-out writes.
        using var scope = server.Services.CreateScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>();
        var earlier = (await users.FindByEmailAsync(email))!;
        using (var guesser = new Browser(server))
        {
            for (var i = 0; i < 5; i++)
            {
                await guesser.SignInAsync(email, "wrong " + i);
            }
        }

        Assert.True((await users.UpdateSecurityStampAsync(earlier)).Succeeded);

        // The write carried the count and lockout it read (none): the lockout stands.
        var listed = await server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/users");
        Assert.Equal("locked_out", listed.GetProperty("users").EnumerateArray().Single(u => u.GetProperty("email").GetString() == email).GetProperty("state").GetString());
    }

    [Fact]
    public async Task GuessesSentAtOnceFromOneAddressStopAtTheAddressLimit()
    {
        var hasher = new CountingHasher();
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedSignInLimit"] = "3", services: s => s.AddSingleton<IPasswordHasher<NexusUser>>(hasher));
        var before = Volatile.Read(ref hasher.Verifications);

        var guessers = await SubmitAtOnceAsync(server, 12, i => (NewEmail(), "guess " + i));

        // Only the limit's worth were checked (a password hash each); the others were turned away before any check.
        Assert.Equal(3, guessers.Count(g => g.LastStatus == HttpStatusCode.Unauthorized));
        Assert.Equal(9, guessers.Count(g => g.LastStatus == HttpStatusCode.TooManyRequests));
        Assert.Equal(3, Volatile.Read(ref hasher.Verifications) - before);
        guessers.ForEach(g => g.Dispose());
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

        // Signed up before the address is throttled (a throttled address cannot sign up either).
        using var signedIn = new Browser(server);
        await signedIn.SignUpAsync(NewEmail(), Password);
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
        await signedIn.EnterSetupTokenAsync("a-guessed-setup-token");
        Assert.Equal(HttpStatusCode.TooManyRequests, signedIn.LastStatus);
    }

    /// <summary>Each browser on <paramref name="page"/> (after <paramref name="prepare"/>), then all submit its form at once.</summary>
    private static async Task<List<Browser>> SubmitFormsAtOnceAsync(NexusTestServer server, int count, string page, Func<int, Dictionary<string, string>> form,
        Func<Browser, Task>? prepare = null)
    {
        var browsers = new List<Browser>();
        for (var i = 0; i < count; i++)
        {
            var browser = new Browser(server);
            if (prepare is not null)
            {
                await prepare(browser);
            }

            await browser.NavigateAsync(page);
            browsers.Add(browser);
        }

        using var start = new ManualResetEventSlim();
        await Task.WhenAll(browsers.Select((b, i) => Task.Run(async () =>
        {
            start.Wait();
            await b.SubmitAsync(page, form(i));
        })).Append(Task.Run(start.Set)));
        return browsers;
    }

    [Fact]
    public async Task TakenAddressesProbedAtOnceAtSignUpStopAtTheAddressLimit()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedSignInLimit"] = "3");
        var taken = Enumerable.Range(0, 10).Select(_ => NewEmail()).ToArray();
        foreach (var email in taken)
        {
            await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        }

        var probes = await SubmitFormsAtOnceAsync(server, 10, "/account/signup", i => new() { ["email"] = taken[i], ["password"] = Password });

        // Only the limit's worth learn that their address is taken; the others are turned away before it is looked at.
        Assert.Equal(3, probes.Count(p => p.LastStatus == HttpStatusCode.BadRequest));
        Assert.Equal(7, probes.Count(p => p.LastStatus == HttpStatusCode.TooManyRequests));
        probes.ForEach(p => p.Dispose());
    }

    [Fact]
    public async Task SetupTokenGuessesSentAtOnceStopAtTheAddressLimit()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedSignInLimit"] = "3");

        var guessers = await SubmitFormsAtOnceAsync(server, 10, "/setup", i => new() { ["token"] = "a-guessed-setup-token-" + i },
            browser => browser.SignUpAsync(NewEmail(), Password));

        Assert.Equal(3, guessers.Count(g => g.LastStatus == HttpStatusCode.BadRequest));
        Assert.Equal(7, guessers.Count(g => g.LastStatus == HttpStatusCode.TooManyRequests));
        guessers.ForEach(g => g.Dispose());
    }

    [Fact]
    public async Task SigningUpWithTakenAddressesCountsAgainstTheAddressSoAccountsCannotBeHarvested()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedSignInLimit"] = "3");
        var taken = new[] { NewEmail(), NewEmail(), NewEmail(), NewEmail() };
        foreach (var email in taken)
        {
            await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        }

        using var harvester = new Browser(server);
        // A new address signs up as before; nothing is counted for it.
        await harvester.SignUpAsync(NewEmail(), Password);
        Assert.Equal(HttpStatusCode.OK, harvester.LastStatus);
        using var probe = new Browser(server);
        for (var i = 0; i < 3; i++)
        {
            await probe.NavigateAsync("/account/signup");
            await probe.SubmitAsync("/account/signup", new Dictionary<string, string> { ["email"] = taken[i], ["password"] = Password });
            Assert.Equal(HttpStatusCode.BadRequest, probe.LastStatus);
            Assert.Contains("already", probe.LastPage);
        }

        // The fourth probe learns nothing: the address is throttled before the address is looked at.
        await probe.NavigateAsync("/account/signup");
        await probe.SubmitAsync("/account/signup", new Dictionary<string, string> { ["email"] = taken[3], ["password"] = Password });
        Assert.Equal(HttpStatusCode.TooManyRequests, probe.LastStatus);
        Assert.DoesNotContain("already", probe.LastPage);
        Assert.Contains("Too many failed attempts", probe.LastPage);
    }
}
