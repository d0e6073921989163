using System.Security.Claims;
using Microsoft.AspNetCore.Identity;
using Nexus.Server.Vault;

namespace Nexus.Server.Accounts;

/// <summary>What creating an account gave: the account, or Identity's errors and whether the address is taken.</summary>
internal sealed record AccountCreation(NexusUser? User, IReadOnlyList<string> Errors, bool EmailTaken);

internal static class UserAccounts
{
    public static string? CurrentUserId(HttpContext context) =>
        context.User.Identity?.IsAuthenticated == true ? context.User.FindFirstValue(ClaimTypes.NameIdentifier) : null;

    /// <summary>
    /// The signed-in person's id on a route that requires <see cref="Hosting.NexusPolicies.SignedIn"/> (or SiteAdmin):
    /// the policy already sent anyone else to the sign-in page, so a route mapped without it fails loudly here.
    /// </summary>
    public static string SignedInUserId(HttpContext context) =>
        CurrentUserId(context) ?? throw new InvalidOperationException($"{context.Request.Path} does not require the SignedIn policy.");

    /// <summary>
    /// The session's account id on a route that requires <see cref="Hosting.NexusPolicies.Session"/>: any session, one
    /// that still owes a password change included.
    /// </summary>
    public static string SessionUserId(HttpContext context) =>
        CurrentUserId(context) ?? throw new InvalidOperationException($"{context.Request.Path} does not require the Session policy.");

    /// <summary>
    /// Creates a local account; the errors are Identity's, fit to show the person signing up. EmailTaken says the
    /// address belongs to an account already, by Identity's error code (<c>DuplicateEmail</c>, or
    /// <c>DuplicateUserName</c>: the user name is the address), never by the wording of a message, which an
    /// <see cref="IdentityErrorDescriber"/> may translate or rephrase.
    /// </summary>
    /// <param name="password">Null for accounts that sign in only through an upstream provider.</param>
    /// <param name="passwordChangeRequired">The password was chosen by someone else (<see cref="PasswordChange"/>); stored with the row.</param>
    public static async Task<AccountCreation> CreateAsync(UserManager<NexusUser> users, string email, string? password, bool emailConfirmed = false,
        bool passwordChangeRequired = false)
    {
        email = email.Trim();
        if (email.Length is 0 or > 254 || !System.Net.Mail.MailAddress.TryCreate(email, out var parsed) || parsed.Address != email)
        {
            return new(null, ["Enter a valid email address."], false);
        }

        var user = new NexusUser { Id = SecretGenerator.Id("usr_", 20), Email = email, EmailConfirmed = emailConfirmed, PasswordChangeRequired = passwordChangeRequired };
        var result = password is null ? await users.CreateAsync(user) : await users.CreateAsync(user, password);
        return result.Succeeded ? new(user, [], false)
            : new(null, result.Errors.Select(e => e.Description).ToList(), result.Errors.Any(e => e.Code is DuplicateEmail or DuplicateUserName));
    }

    /// <summary>The <see cref="IdentityError.Code"/>s of an address or user name that is taken (<see cref="IdentityErrorDescriber"/>'s method names).</summary>
    public const string DuplicateEmail = nameof(IdentityErrorDescriber.DuplicateEmail);

    /// <inheritdoc cref="DuplicateEmail"/>
    public const string DuplicateUserName = nameof(IdentityErrorDescriber.DuplicateUserName);
}
