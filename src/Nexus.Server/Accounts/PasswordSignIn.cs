using Microsoft.AspNetCore.Identity;

namespace Nexus.Server.Accounts;

internal enum PasswordSignInOutcome
{
    SignedIn,

    /// <summary>Signed in with a password someone else chose: the session reaches only <see cref="PasswordChange.Path"/>.</summary>
    SignedInPasswordChangeRequired,
    Failed,
    Throttled,
}

/// <summary>
/// Sign-in with email and password, answered so that it tells an attacker nothing: an unknown email, an account
/// without a password, a locked account and a wrong password all end as <see cref="PasswordSignInOutcome.Failed"/>
/// after one password-hash verification each (OWASP Authentication Cheat Sheet: generic messages, equal response
/// time). Failures count per source address in <see cref="SignInLimiter"/> and per account in Identity's lockout.
/// </summary>
internal sealed class PasswordSignIn(UserManager<NexusUser> users, SignInManager<NexusUser> signIn, IPasswordHasher<NexusUser> hasher, SignInLimiter limiter,
    UserStore store)
{
    private static readonly NexusUser Nobody = new() { Id = "usr_nobody" };
    private static string? dummyHash;

    public async Task<(PasswordSignInOutcome Outcome, TimeSpan RetryAfter)> SignInAsync(HttpContext context, string email, string password)
    {
        // Counted before the check and given back on success, so that guesses sent at once cannot all pass the limit.
        var (outcome, wait) = await limiter.AttemptAsync(SignInLimiter.AddressOf(context), () => CheckAsync(email, password),
            checkedOutcome => checkedOutcome.Outcome == PasswordSignInOutcome.Failed);
        return wait is { } retryAfter ? (PasswordSignInOutcome.Throttled, retryAfter) : outcome;
    }

    private async Task<(PasswordSignInOutcome Outcome, TimeSpan RetryAfter)> CheckAsync(string email, string password)
    {
        var user = email.Length > 254 ? null : await users.FindByEmailAsync(email);
        if (user?.PasswordHash is null)
        {
            // Spend what a real check spends, so the answer time does not tell whether the address has an account.
            dummyHash ??= hasher.HashPassword(Nobody, Guid.NewGuid().ToString());
            hasher.VerifyHashedPassword(Nobody, dummyHash, password);
        }
        else if (await users.IsLockedOutAsync(user)
            // Counted as a failure before the check, atomically, so that attempts sent at once cannot all be checked
            // past the lockout (UserStore.ReserveFailedPasswordAsync); false when the account is locked meanwhile.
            || !await store.ReserveFailedPasswordAsync(user.Id, CancellationToken.None))
        {
            // Locked: answered like a wrong password, after the same work, and without touching the lockout.
            hasher.VerifyHashedPassword(user, user.PasswordHash, password);
        }
        else if ((await signIn.PasswordSignInAsync(user, password, isPersistent: false, lockoutOnFailure: false)).Succeeded)
        {
            // Right: the reservations are taken back (a lockout set by attempts meanwhile included).
            await store.ClearFailedPasswordsAsync(user.Id, CancellationToken.None);
            return (user.PasswordChangeRequired ? PasswordSignInOutcome.SignedInPasswordChangeRequired : PasswordSignInOutcome.SignedIn, TimeSpan.Zero);
        }

        return (PasswordSignInOutcome.Failed, TimeSpan.Zero);
    }
}
