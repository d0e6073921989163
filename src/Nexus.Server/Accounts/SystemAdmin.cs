using System.Security.Claims;

namespace Nexus.Server.Accounts;

/// <summary>
/// Whether the signed-in person administers the deployment. The claim is added on each request by
/// <see cref="SessionValidator"/> from the account's stored role (see <see cref="Administrators"/>); an email
/// address, SUPERUSER_EMAIL included, never makes anyone an administrator.
/// </summary>
internal static class SystemAdmin
{
    public const string ClaimType = "nexus:system_admin";

    public static bool IsSystemAdmin(this ClaimsPrincipal user) =>
        user.Identity?.IsAuthenticated == true && user.HasClaim(ClaimType, "true");
}
