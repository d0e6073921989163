using System.Security.Claims;
using Microsoft.AspNetCore.Identity;
using Nexus.Server.Vault;

namespace Nexus.Server.Accounts;

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

    /// <summary>Creates a local account; the errors are Identity's, fit to show the person signing up.</summary>
    /// <param name="password">Null for accounts that sign in only through an upstream provider.</param>
    public static async Task<(NexusUser? User, IReadOnlyList<string> Errors)> CreateAsync(UserManager<NexusUser> users, string email, string? password, bool emailConfirmed = false)
    {
        email = email.Trim();
        if (email.Length is 0 or > 254 || !System.Net.Mail.MailAddress.TryCreate(email, out var parsed) || parsed.Address != email)
        {
            return (null, ["Enter a valid email address."]);
        }

        var user = new NexusUser { Id = SecretGenerator.Id("usr_", 20), Email = email, EmailConfirmed = emailConfirmed };
        var result = password is null ? await users.CreateAsync(user) : await users.CreateAsync(user, password);
        return result.Succeeded ? (user, []) : (null, result.Errors.Select(e => e.Description).ToList());
    }
}
