using System.Security.Cryptography;
using Microsoft.AspNetCore.Identity;

namespace Nexus.Server.Accounts;

/// <summary>
/// What an administrator can do to an account from Site management › Users: disable and enable it, lift a sign-in
/// lockout, and reset its password to a temporary one. A disabled account is an Identity lockout without end
/// (LockoutEnd = DateTimeOffset.MaxValue), so every sign-in path that refuses a locked account (password and
/// upstream sign-in) refuses it too, with no schema change; a lockout after failed sign-ins has a near end instead.
/// Disabling and resetting replace the security stamp, which ends the account's sessions on every device
/// (<see cref="SessionValidator"/>), and revoke every OAuth grant of the account (<see cref="IAccountGrants"/>), so
/// that the applications and assistants it authorized lose their refresh tokens and the access tokens issued under
/// them at once (RFC 9700 §4.14.2). Consents stay: re-enabling the account restores no grant, and an application gets
/// tokens again only through a new authorization, which needs the person to sign in.
/// </summary>
internal static class UserAdministration
{
    public enum Action
    {
        Disable,
        Enable,
        Unlock,
    }

    public enum State
    {
        Active,
        LockedOut,
        Disabled,
    }

    /// <summary>The revoked_reason of the grants a disable revokes (and of a grant refused because its account is disabled).</summary>
    public const string DisabledReason = "account_disabled";

    /// <summary>The revoked_reason of the grants an administrator's password reset revokes.</summary>
    public const string PasswordResetReason = "password_reset";

    /// <summary>
    /// The revoked_reason of a grant refused at its code's redemption because the session that approved the code has
    /// ended since (the account's security stamp changed: a password reset, a sign-out).
    /// </summary>
    public const string SessionEndedReason = "session_ended";

    /// <summary>
    /// Creates an account an administrator vouches for (so its address counts as verified), with a password of at
    /// least 10 characters; shared by POST /v1/admin/users and <c>users create</c>. Exists is true when the address is taken.
    /// </summary>
    /// <param name="temporary">The password was generated for the administrator to pass on: its owner must change it at the first sign-in.</param>
    public static async Task<(NexusUser? User, bool Exists, Dictionary<string, string[]> Errors)> CreateAsync(UserManager<NexusUser> users, string? email, string? password,
        string? displayName, bool temporary = false)
    {
        if (string.IsNullOrEmpty(password))
        {
            return (null, false, new() { ["password"] = ["A password of at least 10 characters is required."] });
        }

        var (user, errors, taken) = await UserAccounts.CreateAsync(users, email ?? "", password, emailConfirmed: true, passwordChangeRequired: temporary);
        if (user is null)
        {
            return (null, taken, new() { ["user"] = [.. errors] });
        }

        if (!string.IsNullOrWhiteSpace(displayName))
        {
            user.DisplayName = displayName.Trim();
            await users.UpdateAsync(user);
        }

        return (user, false, []);
    }

    /// <summary>Anything locked for more than 100 years was disabled by an administrator, not by failed sign-ins.</summary>
    public static State StateOf(NexusUser user, DateTimeOffset now) =>
        user.LockoutEnd is not { } end || end <= now ? State.Active
        : end > now.AddYears(100) ? State.Disabled
        : State.LockedOut;

    /// <summary>The state's name in the API and the CLI: active, locked_out or disabled.</summary>
    public static string Name(State state) => state switch
    {
        State.LockedOut => "locked_out",
        State.Disabled => "disabled",
        _ => "active",
    };

    /// <summary>
    /// Whether an administrator disabled the account. A lockout after failed sign-ins is not: it guards the password, and
    /// counting it here would let anyone who knows the address cut the person's applications off by failing sign-ins.
    /// </summary>
    public static bool IsDisabled(NexusUser user, DateTimeOffset now) => StateOf(user, now) == State.Disabled;

    /// <summary>
    /// Disables, enables or unlocks an account; false when there is none. One write, whatever else changed the account
    /// since it was read (<see cref="UserStore.SetDisabledAsync"/>): through the user manager, three compare-and-set
    /// updates all failed when a failed sign-in counted meanwhile, and the account stayed enabled with its sessions.
    /// </summary>
    public static async Task<bool> ApplyAsync(UserStore users, SessionValidator sessions, IAccountGrants grants, string id, Action action)
    {
        if (id.Length > 64 || !await (action == Action.Unlock ? users.UnlockAsync(id, CancellationToken.None) : users.SetDisabledAsync(id, action == Action.Disable, CancellationToken.None)))
        {
            return false;
        }

        if (action == Action.Disable)
        {
            // After the lockout is stored: a token request that read the account before it is refused at its next
            // use, since its grant is revoked here; one that reads it after finds it disabled (the token grants).
            // Not cancelled with the administrator's request: the account is already changed, and its grants must follow.
            await grants.RevokeUserGrantsAsync(id, DisabledReason, CancellationToken.None);
        }

        sessions.Invalidate(id);
        return true;
    }

    /// <summary>
    /// Replaces the password with a random temporary one (120 bits, shown once to the administrator; only its hash is
    /// stored), ends the account's sessions and revokes its OAuth grants: a reset means the account may be in someone
    /// else's hands, and so may the tokens issued while it was. A temporary lockout is lifted; a disabled account stays
    /// disabled. The next password sign-in must choose a new password before anything else (<see cref="PasswordChange"/>).
    /// </summary>
    public static async Task<(NexusUser? User, string? Temporary)> ResetPasswordAsync(UserManager<NexusUser> users, SessionValidator sessions, IAccountGrants grants, string id,
        DateTimeOffset now)
    {
        if (id.Length > 64 || await users.FindByIdAsync(id) is not { } user)
        {
            return (null, null);
        }

        var temporary = Base64UrlEncode(RandomNumberGenerator.GetBytes(15));
        // Stored by the first update below (RemovePasswordAsync's, or AddPasswordAsync's), with the account's other columns.
        user.PasswordChangeRequired = true;
        if (await users.HasPasswordAsync(user))
        {
            await users.RemovePasswordAsync(user);
        }

        var added = await users.AddPasswordAsync(user, temporary);
        if (!added.Succeeded)
        {
            return (user, null);
        }

        if (StateOf(user, now) == State.LockedOut)
        {
            await users.SetLockoutEndDateAsync(user, null);
        }

        await users.ResetAccessFailedCountAsync(user);
        await users.UpdateSecurityStampAsync(user);
        // Not cancelled with the administrator's request: the password is already replaced, and the grants must follow.
        await grants.RevokeUserGrantsAsync(user.Id, PasswordResetReason, CancellationToken.None);
        sessions.Invalidate(user.Id);
        return (user, temporary);
    }

    private static string Base64UrlEncode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>
/// The OAuth grants of an account, as Accounts needs them: the authorization server (a component above this one)
/// implements it with the revocation that /oauth2/revoke and Authorized applications use, so that a revoked grant's
/// refresh tokens are refused and its access tokens fail introspection and every bearer check, on every instance.
/// </summary>
internal interface IAccountGrants
{
    /// <summary>Revokes every grant of the account not yet revoked, recording <paramref name="reason"/>; returns how many.</summary>
    Task<int> RevokeUserGrantsAsync(string userId, string reason, CancellationToken ct);
}
