using Dapper;
using Nexus.Server.Accounts;
using Nexus.Server.Data;

namespace Nexus.Server.Connections;

/// <summary>
/// Who may complete a connection's consent in the browser. A connection in a Nexus account's own workspace (the
/// dashboard's and the MCP tools', whose workspace id is the person's account id, or one an API key made there)
/// belongs to that person: its consent, its credential form and its values form are completed only in a browser
/// signed in as them. Otherwise whoever holds the link could complete it: someone who starts a connection in their
/// own account and passes the provider's consent link on gets the other person's account connected to their own
/// workspace (and to their assistant). Connections an application makes for its own users (any other workspace id)
/// have no Nexus session to check; their limit is in docs/security.md.
/// </summary>
internal sealed class PersonalConsent(NexusDatabase db)
{
    public enum Verdict
    {
        /// <summary>Not a Nexus account's workspace: the signed state alone authorises the consent.</summary>
        Anyone,

        /// <summary>The browser is signed in as the account whose workspace it is.</summary>
        ThisPerson,

        /// <summary>Nobody is signed in: the person signs in first and comes back.</summary>
        SignInFirst,

        /// <summary>Someone else is signed in: refused.</summary>
        AnotherPerson,

        /// <summary>The person, with a temporary password not yet replaced: the password change first, and back.</summary>
        PasswordChangeFirst,
    }

    public async Task<Verdict> CheckAsync(HttpContext context, Connection connection, CancellationToken ct)
    {
        await using (var c = await db.OpenAsync(ct))
        {
            if (await c.ExecuteScalarAsync<long>(new CommandDefinition("SELECT COUNT(*) FROM users WHERE id = @id", new { id = connection.WorkspaceId }, cancellationToken: ct)) == 0)
            {
                return Verdict.Anyone;
            }
        }

        // As the SignedIn policy of every other page: a session that owes a password change acts for nobody yet.
        return UserAccounts.CurrentUserId(context) is not { } signedIn ? Verdict.SignInFirst
            : !string.Equals(signedIn, connection.WorkspaceId, StringComparison.Ordinal) ? Verdict.AnotherPerson
            : PasswordChange.IsRequired(context.User) ? Verdict.PasswordChangeFirst : Verdict.ThisPerson;
    }

    /// <summary>
    /// Where a person who must first sign in (or replace a temporary password) goes, coming back to this very request
    /// (a GET); null when the way back would not fit in the page's return address (a provider's very long code),
    /// and the person is asked to sign in and start again instead.
    /// </summary>
    public static string? DetourUrl(HttpContext context, Verdict verdict)
    {
        var here = context.Request.Path + context.Request.QueryString;
        if (here.Length > MaxReturnLength)
        {
            return null;
        }

        return verdict == Verdict.PasswordChangeFirst ? PasswordChange.PageFor(here) : AccountEndpoints.SignInPath + "?returnUrl=" + Uri.EscapeDataString(here);
    }

    /// <summary>Within the 2,048 characters the sign-in page follows as a return address (Hosting/Html.IsLocalUrl).</summary>
    private const int MaxReturnLength = 2000;

    /// <summary>What a person who must sign in is told when the way back does not fit.</summary>
    public const string SignInAndStartAgainMessage = "Sign in to Nexus as the person who started this connection, then start connecting again.";

    /// <summary>
    /// For Nexus's own pages on the way to a consent (the credential and values forms): null when this browser may go
    /// on; otherwise the sign-in page (back here afterwards, for a GET) or a page that says whose connection it is.
    /// </summary>
    public async Task<IResult?> GatePageAsync(HttpContext context, Connection connection, CancellationToken ct) =>
        await CheckAsync(context, connection, ct) switch
        {
            (Verdict.SignInFirst or Verdict.PasswordChangeFirst) and var verdict when HttpMethods.IsGet(context.Request.Method) && DetourUrl(context, verdict) is { } detour =>
                Results.Redirect(detour),
            Verdict.SignInFirst => Hosting.Html.Error(context, "Sign in to connect", "Sign in to Nexus as the person who started this connection, then open its link again.",
                StatusCodes.Status403Forbidden),
            Verdict.PasswordChangeFirst => Hosting.Html.Error(context, "Change your password to connect", "Replace your temporary password first (Nexus asks for it when you open any page), then open this connection's link again.",
                StatusCodes.Status403Forbidden),
            Verdict.AnotherPerson => Hosting.Html.Error(context, "This connection is not yours", AnotherPersonMessage, StatusCodes.Status403Forbidden),
            _ => null,
        };

    /// <summary>What a page of Nexus tells a person signed in as someone else.</summary>
    public const string AnotherPersonMessage = "This connection belongs to another Nexus account. Sign out and sign in as the person who started it.";
}
