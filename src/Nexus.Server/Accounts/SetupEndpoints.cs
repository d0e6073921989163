using Nexus.Server.Hosting;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Accounts;

/// <summary>
/// /setup: while the deployment has no administrator, the signed-in person who enters the one-time setup token
/// (printed by Nexus at start, or SETUP_TOKEN) becomes its administrator. When SUPERUSER_EMAIL is set, only that
/// account may use the token; the address alone grants nothing.
/// </summary>
internal static class SetupEndpoints
{
    public const string Path = "/setup";

    public static void MapSetup(this IEndpointRouteBuilder app)
    {
        // For a signed-in person (NexusPolicies.SignedIn, SessionPolicies): anyone else goes to the sign-in page.
        var signedIn = app.MapGroup("").RequireAuthorization(NexusPolicies.SignedIn);
        signedIn.MapGet("/setup", SetupPageAsync).ExcludeFromDescription();
        signedIn.MapPost("/setup", ClaimAsync).ExcludeFromDescription().RequireProtectedForm();
    }

    private static async Task<IResult> SetupPageAsync(HttpContext context, Administrators administrators, NexusOptions options, CancellationToken ct) =>
        await GuardAsync(context, administrators, options, ct) ?? SetupPage(context, null);

    private static async Task<IResult?> GuardAsync(HttpContext context, Administrators administrators, NexusOptions options, CancellationToken ct)
    {
        if (!await administrators.IsSetupPendingAsync(ct))
        {
            return Error(context, "Nothing to set up", "This deployment already has an administrator. An administrator can grant the role to other accounts.", StatusCodes.Status404NotFound);
        }

        var email = context.User.FindFirst(System.Security.Claims.ClaimTypes.Email)?.Value;
        if (!string.IsNullOrWhiteSpace(options.SuperuserEmail) && !string.Equals(email, options.SuperuserEmail.Trim(), StringComparison.OrdinalIgnoreCase))
        {
            return Error(context, "Another account is expected", "The operator of this deployment named another account to become its administrator (SUPERUSER_EMAIL). Sign in with that account.", StatusCodes.Status403Forbidden);
        }

        return null;
    }

    private static IResult SetupPage(HttpContext context, string? error, int status = 200)
    {
        var message = error is null ? "" : $"""<p class="error" role="alert">{E(error)}</p>""";
        return Page(context, "Set up Nexus", $"""
            <section class="card narrow"><h1>Become the administrator</h1>{message}
            <p>Nexus wrote a one-time setup token to its console when it started (or the operator set <code>SETUP_TOKEN</code>).
            Enter it to make your account, <strong>{E(context.User.Identity?.Name)}</strong>, the administrator of this deployment.</p>
            <form method="post" action="{Path}">{AntiforgeryField(context)}
            <label for="setup-token">Setup token</label><input id="setup-token" name="token" type="password" autocomplete="off" required autofocus>
            <div class="actions"><button type="submit">Become administrator</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> ClaimAsync(HttpContext context, Administrators administrators, SignInLimiter limiter, NexusOptions options, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        if (await GuardAsync(context, administrators, options, ct) is { } denied)
        {
            return denied;
        }

        // Guesses count like failed sign-ins: SETUP_TOKEN is chosen by a person and may be guessable. Each guess is
        // counted before it is checked and given back when right, so guesses sent at once cannot all pass the limit.
        var (claimed, wait) = await limiter.AttemptAsync(SignInLimiter.AddressOf(context),
            () => administrators.ClaimWithSetupTokenAsync(UserAccounts.SignedInUserId(context), form["token"].ToString().Trim(), ct), valid => !valid);
        if (wait is not null)
        {
            return SetupPage(context, "Too many failed attempts from your network. Try again later.", StatusCodes.Status429TooManyRequests);
        }

        return claimed
            ? Results.Redirect("/admin")
            : SetupPage(context, "That setup token is not valid (it may have been used already).", StatusCodes.Status400BadRequest);
    }
}
