using Microsoft.AspNetCore.Identity;

namespace Nexus.Server.Accounts;

/// <summary>
/// Signs the person out for good: a new security stamp ends the session on the server, so a copy of the cookie
/// taken before is refused from now on (<see cref="SessionValidator"/>), on every device this account is signed in
/// on (OWASP session management: invalidate the session server-side at logout). Used by /account/signout and by
/// RP-initiated logout (/oauth2/logout, AuthorizationServer), so both end a session the same way.
/// </summary>
internal sealed class AccountSignOut(SignInManager<NexusUser> signIn, UserManager<NexusUser> users, SessionValidator sessions)
{
    public async Task EndSessionAsync(HttpContext context)
    {
        if (UserAccounts.CurrentUserId(context) is { } userId && await users.FindByIdAsync(userId) is { } user)
        {
            if (!(await users.UpdateSecurityStampAsync(user)).Succeeded && await users.FindByIdAsync(userId) is { } fresh)
            {
                await users.UpdateSecurityStampAsync(fresh);
            }

            sessions.Invalidate(userId);
        }

        await signIn.SignOutAsync();
        // The rest of this request is a signed-out one: a page it renders (RP-initiated logout's "You are signed out")
        // no longer shows the person's email, menu and a sign-out form in its header.
        context.User = new System.Security.Claims.ClaimsPrincipal(new System.Security.Claims.ClaimsIdentity());
    }
}
