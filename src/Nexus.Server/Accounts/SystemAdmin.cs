using System.Security.Claims;
using Nexus.Server.Hosting;

namespace Nexus.Server.Accounts;

/// <summary>The account whose email equals SUPERUSER_EMAIL administers the deployment.</summary>
internal static class SystemAdmin
{
    public static bool IsSystemAdmin(this ClaimsPrincipal user, NexusOptions options) =>
        user.Identity?.IsAuthenticated == true
        && !string.IsNullOrWhiteSpace(options.SuperuserEmail)
        && string.Equals(user.FindFirstValue(ClaimTypes.Email), options.SuperuserEmail.Trim(), StringComparison.OrdinalIgnoreCase);
}
