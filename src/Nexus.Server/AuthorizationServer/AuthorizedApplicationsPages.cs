using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Grants;
using Nexus.Server.Hosting;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// /account/applications: the applications a person has authorized (their consents, given on the consent page of
/// <see cref="AuthorizeEndpoint"/>), and withdrawing one, which revokes its grants.
/// </summary>
internal static class AuthorizedApplicationsPages
{
    public static void MapAuthorizedApplications(this IEndpointRouteBuilder app)
    {
        // For a signed-in person (NexusPolicies.SignedIn, Accounts/SessionPolicies.cs): anyone else goes to the sign-in page.
        var signedIn = app.MapGroup("").RequireAuthorization(NexusPolicies.SignedIn);
        signedIn.MapGet("/account/applications", ApplicationsAsync).ExcludeFromDescription();
        signedIn.MapGet("/account/applications/{clientId}/withdraw", ConfirmWithdrawAsync).ExcludeFromDescription();
        signedIn.MapPost("/account/applications/{clientId}/withdraw", WithdrawAsync).ExcludeFromDescription().RequireProtectedForm();
    }

    private static async Task<IResult> ApplicationsAsync(HttpContext context, GrantStore grants, ClientRegistry clients, CancellationToken ct)
    {
        var userId = UserAccounts.SignedInUserId(context);

        var rows = new List<string>();
        foreach (var (clientId, scopes, grantedAt) in await grants.ListConsentsAsync(userId, ct))
        {
            var client = await clients.FindAsync(clientId, ct);
            rows.Add($"""
                <tr><td><strong>{E(client?.Name ?? clientId)}</strong><br><span class="muted">{E(client?.BaseUrl ?? "")}{(client?.IsSelfRegistered == true ? (client.BaseUrl is null ? "" : " · ") + "registered itself, not verified by Nexus" : "")}</span></td>
                <td>{string.Join(", ", scopes.Select(s => $"<code>{E(s)}</code>"))}</td><td>{grantedAt:yyyy-MM-dd}</td>
                <td><a class="button secondary" href="/account/applications/{E(Uri.EscapeDataString(clientId))}/withdraw" aria-label="Revoke access for {E(client?.Name ?? clientId)}">Revoke</a></td></tr>
                """);
        }

        var table = rows.Count == 0
            ? "<p class=\"muted\">You have not authorized any application.</p>"
            : $"<table><thead><tr><th scope=\"col\">Application</th><th scope=\"col\">Permissions</th><th scope=\"col\">Since</th><th scope=\"col\"><span class=\"muted\">Action</span></th></tr></thead><tbody>{string.Concat(rows)}</tbody></table>";
        return Page(context, "Authorized applications", $"<section class=\"card\"><h1>Authorized applications</h1>{table}</section>");
    }

    /// <summary>Revoking an application's access asks first, like every destructive action in the dashboard.</summary>
    private static async Task<IResult> ConfirmWithdrawAsync(HttpContext context, string clientId, GrantStore grants, ClientRegistry clients, CancellationToken ct)
    {
        var userId = UserAccounts.SignedInUserId(context);

        // A metadata-document client's id is a URL, percent-encoded in the path: read as sent (Hosting/RawRouteValue).
        clientId = RawRouteValue.Get(context, "clientId", clientId);
        if ((await grants.ListConsentsAsync(userId, ct)).All(c => c.ClientId != clientId))
        {
            return Error(context, "Not found", "You have not authorized this application.", StatusCodes.Status404NotFound);
        }

        var name = (await clients.FindAsync(clientId, ct))?.Name ?? clientId;
        return Page(context, "Revoke " + name, $"""
            <section class="card narrow"><h1>Revoke access for {E(name)}?</h1>
            <p>{E(name)} loses access to your account at once: its tokens stop working, and it has to ask for your permission again.</p>
            <form method="post" action="/account/applications/{E(Uri.EscapeDataString(clientId))}/withdraw">{AntiforgeryField(context)}
            <div class="actions"><button type="submit" class="danger">Revoke access</button><a class="button secondary" href="/account/applications">Cancel</a></div></form></section>
            """);
    }

    private static async Task<IResult> WithdrawAsync(HttpContext context, string clientId, GrantStore grants)
    {
        var userId = UserAccounts.SignedInUserId(context);

        // The form escapes the id (a client ID metadata document client's is a URL): read as sent and decoded once, as on
        // the confirmation page, or a URL's consent is never found and the application keeps its access.
        clientId = RawRouteValue.Get(context, "clientId", clientId);
        if (!await grants.WithdrawConsentAsync(userId, clientId, context.RequestAborted))
        {
            return Error(context, "Not found", "You have not authorized this application.", StatusCodes.Status404NotFound);
        }

        return Results.Redirect("/account/applications");
    }
}
