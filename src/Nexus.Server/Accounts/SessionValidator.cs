using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Dapper;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using Nexus.Server.Data;
using Nexus.Server.Hosting;

namespace Nexus.Server.Accounts;

/// <summary>
/// Checks every session cookie against its account on each request: the cookie carries the account's security
/// stamp, and signing out (or a password change) replaces the stamp, so a copy of the cookie taken before is refused
/// afterwards (OWASP session management: invalidate the session server-side at logout). The same read tells whether
/// the account is a system administrator now, so granting or withdrawing the role applies to open sessions, and
/// whether its password must be changed first (<see cref="PasswordChange"/>).
/// <para>
/// The row is cached per instance for Nexus:SessionCheckSeconds (default 5). Changes on this instance drop the
/// entry at once, so a sign-out is immediate here; another instance of a cluster refuses the old cookie within
/// that bound. A cookie whose stamp differs from the cached one is checked against the row again before it is refused,
/// so a session that another instance just renewed (a password change, a sign-in after a sign-out) is not ended.
/// </para>
/// </summary>
internal sealed class SessionValidator(NexusDatabase db, NexusOptions options, TimeProvider time, IOptions<IdentityOptions> identity)
{
    private sealed record SessionState(string SecurityStamp, bool IsAdmin, bool PasswordChangeRequired);

    private sealed class Row
    {
        public string SecurityStamp { get; init; } = "";

        public long IsAdmin { get; init; }

        public long PasswordChangeRequired { get; init; }
    }

    private readonly ShortLivedCache<SessionState> cache = new(time, () => options.SessionCheckSeconds);

    public void Invalidate(string userId) => cache.Invalidate(userId);

    public async Task ValidateAsync(CookieValidatePrincipalContext context)
    {
        var principal = context.Principal;
        // An absolute lifetime: sliding expiration alone would keep a session that is used every few hours for ever.
        if (SignInTime.Outlived(context, TimeSpan.FromHours(options.SessionMaxHours), time.GetUtcNow()))
        {
            context.RejectPrincipal();
            await context.HttpContext.SignOutAsync(IdentityConstants.ApplicationScheme);
            return;
        }

        var userId = principal?.FindFirstValue(ClaimTypes.NameIdentifier);
        var stamp = principal?.FindFirstValue(identity.Value.ClaimsIdentity.SecurityStampClaimType);
        var state = userId is null || stamp is null ? null : await cache.GetAsync(userId, LoadAsync);
        if (state is not null && !Matches(stamp!, state))
        {
            // The cached stamp may be older than the cookie: another instance changed it (a sign-in after a sign-out, a
            // password change) within SessionCheckSeconds. Read the row again before refusing a cookie that is newer.
            cache.Invalidate(userId!);
            state = await cache.GetAsync(userId!, LoadAsync);
        }

        if (state is null || !Matches(stamp!, state))
        {
            context.RejectPrincipal();
            await context.HttpContext.SignOutAsync(IdentityConstants.ApplicationScheme);
            return;
        }

        // The role, and the password change still owed, come from the database on every request, never from the cookie.
        var current = principal!.Identities.First();
        var rebuilt = new ClaimsIdentity(current.Claims.Where(c => c.Type is not (SystemAdmin.ClaimType or PasswordChange.ClaimType)),
            current.AuthenticationType, current.NameClaimType, current.RoleClaimType);
        if (state.IsAdmin)
        {
            rebuilt.AddClaim(new Claim(SystemAdmin.ClaimType, "true"));
        }

        // A session from the upstream identity provider never used the password: only a password sign-in owes the change.
        if (state.PasswordChangeRequired && principal.FindFirstValue(ClaimTypes.AuthenticationMethod) != PasswordChange.UpstreamMethod)
        {
            rebuilt.AddClaim(new Claim(PasswordChange.ClaimType, "true"));
        }

        context.ReplacePrincipal(new ClaimsPrincipal(rebuilt));
    }

    private static bool Matches(string stamp, SessionState state) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(stamp), Encoding.UTF8.GetBytes(state.SecurityStamp));

    private async Task<SessionState?> LoadAsync(string userId)
    {
        await using var connection = await db.OpenAsync();
        var row = await connection.QuerySingleOrDefaultAsync<Row>("SELECT security_stamp, is_admin, password_change_required FROM users WHERE id = @userId", new { userId });
        return row is null ? null : new SessionState(row.SecurityStamp, row.IsAdmin != 0, row.PasswordChangeRequired != 0);
    }
}
