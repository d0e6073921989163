using System.Security.Cryptography;
using Microsoft.AspNetCore.Identity;

namespace Nexus.Server.Accounts;

/// <summary>
/// What an administrator can do to an account from Site management › Users: disable and enable it, lift a sign-in
/// lockout, and reset its password to a temporary one. A disabled account is an Identity lockout without end
/// (LockoutEnd = DateTimeOffset.MaxValue), so every sign-in path that refuses a locked account (password and
/// upstream sign-in) refuses it too, with no schema change; a lockout after failed sign-ins has a near end instead.
/// Disabling and resetting replace the security stamp, which ends the account's sessions on every device
/// (<see cref="SessionValidator"/>).
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

    public static async Task<bool> ApplyAsync(UserManager<NexusUser> users, SessionValidator sessions, string id, Action action)
    {
        if (id.Length > 64 || await users.FindByIdAsync(id) is not { } user)
        {
            return false;
        }

        if (action == Action.Disable)
        {
            await users.SetLockoutEnabledAsync(user, true);
            await users.SetLockoutEndDateAsync(user, DateTimeOffset.MaxValue);
            await users.UpdateSecurityStampAsync(user);
        }
        else
        {
            // Enable and Unlock both lift the lockout; the failed-attempt count starts again from zero.
            await users.SetLockoutEndDateAsync(user, null);
            await users.ResetAccessFailedCountAsync(user);
        }

        sessions.Invalidate(user.Id);
        return true;
    }

    /// <summary>
    /// Replaces the password with a random temporary one (120 bits, shown once to the administrator; only its hash is
    /// stored) and ends the account's sessions. A temporary lockout is lifted; a disabled account stays disabled. The
    /// next password sign-in must choose a new password before anything else (<see cref="PasswordChange"/>).
    /// </summary>
    public static async Task<(NexusUser? User, string? Temporary)> ResetPasswordAsync(UserManager<NexusUser> users, SessionValidator sessions, string id, DateTimeOffset now)
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
        sessions.Invalidate(user.Id);
        return (user, temporary);
    }

    private static string Base64UrlEncode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
