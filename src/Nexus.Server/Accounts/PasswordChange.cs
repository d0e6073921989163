using System.Security.Claims;
using Microsoft.AspNetCore.Identity;

namespace Nexus.Server.Accounts;

internal enum PasswordChangeOutcome
{
    Changed,

    /// <summary>The current password is wrong (counted like a failed sign-in).</summary>
    WrongPassword,

    /// <summary>The new password is refused (too short, the same as the current one, the confirmation differs).</summary>
    Refused,

    /// <summary>Too many failed sign-ins from the source address.</summary>
    Throttled,

    /// <summary>The account has no password (it signs in through the upstream provider only).</summary>
    NoPassword,
}

/// <summary>
/// A signed-in person changes their own password at /account/password, with their current one (OWASP Authentication
/// Cheat Sheet: "Require re-authentication for sensitive features"). A password someone else chose (an administrator's
/// reset, the temporary password <c>users create</c> generates) must be changed before anything else: the account
/// carries <see cref="NexusUser.PasswordChangeRequired"/>, <see cref="SessionValidator"/> turns it into
/// <see cref="ClaimType"/> on the session, and the session policies send that session here instead of to the page it
/// asked for (NIST SP 800-63B §5.1.1.2: a secret chosen by someone else is to be replaced at first use).
/// <para>
/// A change replaces the security stamp: every other session of the account ends, and this one gets a new cookie.
/// A wrong current password counts like a failed sign-in, per source address and per account, so a session left open
/// on someone else's screen cannot be used to guess the password.
/// </para>
/// </summary>
internal sealed class PasswordChange(UserManager<NexusUser> users, SignInManager<NexusUser> signIn, SessionValidator sessions, SignInLimiter limiter, TimeProvider time,
    UserStore store)
{
    public const string Path = "/account/password";

    /// <summary>Set by <see cref="SessionValidator"/> while the account's password must be changed.</summary>
    public const string ClaimType = "nexus:password_change_required";

    /// <summary>The authentication method <see cref="UpstreamSignIn"/> signs in with: its sessions never used the password.</summary>
    public const string UpstreamMethod = "oidc";

    public static bool IsRequired(ClaimsPrincipal user) => user.Identity?.IsAuthenticated == true && user.HasClaim(ClaimType, "true");

    /// <summary>Where a session that owes a password change goes, coming back to <paramref name="returnUrl"/> afterwards.</summary>
    public static string PageFor(string returnUrl) => $"{Path}?returnUrl={Uri.EscapeDataString(returnUrl)}";

    public async Task<(PasswordChangeOutcome Outcome, IReadOnlyList<string> Errors, TimeSpan RetryAfter)> ChangeAsync(HttpContext context, string userId,
        string current, string next, string confirmation)
    {
        // Counted before the current password is checked and given back unless it was wrong, as at sign-in: attempts
        // sent at once cannot all pass the limit.
        var (outcome, wait) = await limiter.AttemptAsync(SignInLimiter.AddressOf(context), () => ChangeCheckedAsync(context, userId, current, next, confirmation),
            changed => changed.Outcome == PasswordChangeOutcome.WrongPassword);
        return wait is { } retryAfter ? (PasswordChangeOutcome.Throttled, [], retryAfter) : outcome;
    }

    private async Task<(PasswordChangeOutcome Outcome, IReadOnlyList<string> Errors, TimeSpan RetryAfter)> ChangeCheckedAsync(HttpContext context, string userId,
        string current, string next, string confirmation)
    {
        if (await users.FindByIdAsync(userId) is not { PasswordHash: not null } user)
        {
            return (PasswordChangeOutcome.NoPassword, [], TimeSpan.Zero);
        }

        // Locked after failed sign-ins (or failed attempts here): no password is checked until the lockout ends, as at sign-in.
        if (await users.IsLockedOutAsync(user))
        {
            var end = await users.GetLockoutEndDateAsync(user) ?? time.GetUtcNow();
            return (PasswordChangeOutcome.Throttled, [], end - time.GetUtcNow());
        }

        if (next != confirmation)
        {
            return (PasswordChangeOutcome.Refused, ["The new password and its confirmation differ."], TimeSpan.Zero);
        }

        // Compared only after the current password was verified below would tell nothing more; compared here it saves a
        // hash. A different password is the point of a required change, and of any change.
        if (next == current)
        {
            return (PasswordChangeOutcome.Refused, ["Choose a password different from the current one."], TimeSpan.Zero);
        }

        // Counted against the account before the current password is checked, as a sign-in is
        // (UserStore.ReserveFailedPasswordAsync): attempts sent at once cannot all be checked past the lockout.
        if (!await store.ReserveFailedPasswordAsync(user.Id, CancellationToken.None))
        {
            return (PasswordChangeOutcome.Throttled, [], signIn.Options.Lockout.DefaultLockoutTimeSpan);
        }

        var required = user.PasswordChangeRequired;
        user.PasswordChangeRequired = false;
        // Identity verifies the current password, validates the new one (PasswordOptions: 10 characters or more), stores
        // its hash and replaces the security stamp, in one update of the row.
        var result = await users.ChangePasswordAsync(user, current, next);
        if (!result.Succeeded)
        {
            user.PasswordChangeRequired = required;
            if (result.Errors.Any(e => e.Code == nameof(IdentityErrorDescriber.PasswordMismatch)))
            {
                // The reservation stands: a wrong current password counts as a failed sign-in.
                return (PasswordChangeOutcome.WrongPassword, [], TimeSpan.Zero);
            }

            // The current password was right (Identity checks it before the new one): not a failure.
            await store.ClearFailedPasswordsAsync(user.Id, CancellationToken.None);

            return (PasswordChangeOutcome.Refused, result.Errors.Select(e => e.Description).ToList(), TimeSpan.Zero);
        }

        // Every other session ends first: the password has changed whatever happens next.
        sessions.Invalidate(user.Id);
        await store.ClearFailedPasswordsAsync(user.Id, CancellationToken.None);
        // The old cookie carries the old stamp: this device gets a new session, every other one is signed out.
        await signIn.SignInAsync(user, isPersistent: false);
        return (PasswordChangeOutcome.Changed, [], TimeSpan.Zero);
    }
}
