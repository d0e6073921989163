using Microsoft.AspNetCore.Identity;
using Nexus.Server.Hosting;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Accounts;

/// <summary>Sign-in, sign-up and sign-out (the applications a user has authorized: AuthorizationServer/AuthorizedApplicationsPages.cs).</summary>
internal static class AccountEndpoints
{
    public const string SignInPath = "/account/signin";

    public static void MapAccountPages(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", HomeAsync).ExcludeFromDescription();
        app.MapGet("/account/signin", (HttpContext context, string? returnUrl, string? prompt, string? max_age, DeploymentSettings settings, UpstreamSignIn upstream, CancellationToken ct) =>
            SignInPageAsync(context, returnUrl, SignInDemand.Parse(prompt, max_age), null, settings, upstream, ct)).ExcludeFromDescription();
        app.MapPost("/account/signin", SignInAsync).ExcludeFromDescription().RequireProtectedForm();
        app.MapGet("/account/signup", SignUpPageAsync).ExcludeFromDescription();
        app.MapPost("/account/signup", SignUpAsync).ExcludeFromDescription().RequireProtectedForm();
        app.MapPost("/account/signout", SignOutAsync).ExcludeFromDescription().RequireProtectedForm();
        // Any session, the one that owes a password change included (NexusPolicies.Session; SignedIn refuses that one).
        app.MapGet("/account/password", PasswordPageAsync).ExcludeFromDescription().RequireAuthorization(NexusPolicies.Session);
        app.MapPost("/account/password", ChangePasswordAsync).ExcludeFromDescription().RequireAuthorization(NexusPolicies.Session).RequireProtectedForm();
    }

    private static async Task<IResult> HomeAsync(HttpContext context, UserManager<NexusUser> users)
    {
        if (context.User.Identity?.IsAuthenticated != true)
        {
            return Page(context, "Welcome", $"""
                <section class="card narrow"><h1>Nexus</h1><p>Connect your accounts and authorize applications.</p>
                <div class="actions"><a class="button" href="{SignInPath}">Sign in</a><a class="button secondary" href="/account/signup">Create an account</a></div></section>
                """);
        }

        if (PasswordChange.IsRequired(context.User))
        {
            return Results.Redirect(PasswordChange.PageFor("/"));
        }

        var admin = context.User.IsSystemAdmin()
            ? "<p>You are a <strong>system administrator</strong> of this deployment.</p>"
            : "";
        // An account that signs in only through the upstream identity provider has no password to change here.
        var password = await HasPasswordAsync(context, users)
            ? $"""<a class="button secondary" href="{PasswordChange.Path}">Change password</a>"""
            : "";
        return Page(context, "Home", $"""
            <section class="card"><h1>Welcome</h1><p>You are signed in as <strong>{E(context.User.Identity.Name)}</strong>.</p>{admin}
            <div class="actions"><a class="button" href="/dashboard">My connections</a><a class="button secondary" href="/account/applications">Authorized applications</a>{password}</div></section>
            """);
    }

    private static async Task<IResult> SignInPageAsync(HttpContext context, string? returnUrl, SignInDemand demand, string? error, DeploymentSettings settings, UpstreamSignIn upstream,
        CancellationToken ct, int status = 200, string? email = null)
    {
        returnUrl = LocalUrlOrHome(returnUrl);
        var signUp = await settings.IsSignUpEnabledAsync(ct) ? $"""<p class="muted">New here? <a href="/account/signup?returnUrl={E(Uri.EscapeDataString(returnUrl!))}">Create an account</a></p>""" : "";
        var external = upstream.IsConfigured
            ? $"""<p><a class="button secondary" href="{UpstreamSignIn.StartPath}?returnUrl={E(Uri.EscapeDataString(returnUrl!) + demand.ToQuery())}">Sign in with {E(upstream.DisplayName)}</a></p>"""
            : "";
        var message = error is null ? "" : $"""<p class="error" role="alert">{E(error)}</p>""";
        return Page(context, "Sign in", $"""
            <section class="card narrow"><h1>Sign in to Nexus</h1>{message}
            <form method="post" action="{SignInPath}">{AntiforgeryField(context)}
            <input type="hidden" name="returnUrl" value="{E(returnUrl)}">{DemandFields(demand)}
            <label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required autofocus{(email is null ? "" : $" value=\"{E(email)}\"")}>
            <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
            <div class="actions"><button type="submit">Sign in</button></div></form>{external}{signUp}</section>
            """, status);
    }

    private static string DemandFields(SignInDemand demand) => string.Concat(demand.ToParameters()
        .Select(p => $"""<input type="hidden" name="{E(p.Key)}" value="{E(p.Value)}">"""));

    private static async Task<IResult> SignInAsync(HttpContext context, PasswordSignIn signIn, DeploymentSettings settings, UpstreamSignIn upstream, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        string email = form["email"].ToString().Trim(), password = form["password"].ToString(), returnUrl = form["returnUrl"].ToString();
        // Kept for the page shown again after a failed attempt (its upstream link); a password sign-in is a fresh one.
        var demand = SignInDemand.Parse(form[SignInDemand.PromptParameter], form[SignInDemand.MaxAgeParameter]);
        if (email.Length == 0 || password.Length == 0)
        {
            return await SignInPageAsync(context, returnUrl, demand, "Enter your email and password.", settings, upstream, ct, 400, email);
        }

        var (outcome, retryAfter) = await signIn.SignInAsync(context, email, password);
        switch (outcome)
        {
            case PasswordSignInOutcome.SignedIn:
                // Without a return URL, a person lands on My connections (what they came for), not on a page with nothing to do.
                return Results.Redirect(LocalUrlOrDashboard(returnUrl));
            case PasswordSignInOutcome.SignedInPasswordChangeRequired:
                // A temporary password: choose one's own first, then on to where the sign-in was going.
                return Results.Redirect(PasswordChange.PageFor(LocalUrlOrDashboard(returnUrl)));
            case PasswordSignInOutcome.Throttled:
                var minutes = (int)Math.Ceiling(retryAfter.TotalMinutes);
                context.Response.Headers.RetryAfter = ((int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                return await SignInPageAsync(context, returnUrl, demand, $"Too many failed sign-ins from your network. Try again in {minutes} minute{(minutes == 1 ? "" : "s")}.", settings, upstream, ct, 429, email);
            default:
                // A locked account, an unknown email and a wrong password get the same answer (no account enumeration).
                return await SignInPageAsync(context, returnUrl, demand, "Wrong email or password.", settings, upstream, ct, 401, email);
        }
    }

    private static async Task<IResult> SignUpPageAsync(HttpContext context, string? returnUrl, DeploymentSettings settings, CancellationToken ct) =>
        await settings.IsSignUpEnabledAsync(ct) ? SignUpPage(context, returnUrl, null) : SignUpClosed(context);

    private static IResult SignUpClosed(HttpContext context) =>
        Error(context, "Sign-up is closed", "This deployment does not accept new accounts. Ask an administrator to create one for you.", StatusCodes.Status403Forbidden);

    private static IResult SignUpPage(HttpContext context, string? returnUrl, IEnumerable<string>? errors, int status = 200, IFormCollection? form = null)
    {
        var message = errors is null ? "" : $"""<ul class="error" role="alert">{string.Concat(errors.Select(e => $"<li>{E(e)}</li>"))}</ul>""";
        return Page(context, "Create an account", $"""
            <section class="card narrow"><h1>Create your Nexus account</h1>{message}
            <form method="post" action="/account/signup">{AntiforgeryField(context)}
            <input type="hidden" name="returnUrl" value="{E(LocalUrlOrHome(returnUrl))}">
            <label for="email">Email</label><input id="email" name="email" type="email" autocomplete="email" required autofocus{Value(form, "email")}>
            <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="new-password" minlength="10" required aria-describedby="password-help">
            <p id="password-help" class="muted">At least 10 characters.</p>
            <div class="actions"><button type="submit">Create account</button></div></form>
            <p class="muted">Already have one? <a href="{SignInPath}">Sign in</a></p></section>
            """, status);
    }

    private static async Task<IResult> SignUpAsync(HttpContext context, UserManager<NexusUser> users, SignInManager<NexusUser> signIn, DeploymentSettings settings, SignInLimiter limiter, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        if (!await settings.IsSignUpEnabledAsync(ct))
        {
            return SignUpClosed(context);
        }

        var returnUrl = form["returnUrl"].ToString();
        // Without email confirmation, "this address has an account" cannot be hidden from the person signing up; what
        // can be done is to make it useless for harvesting: each such answer counts as a failed sign-in of the source
        // address, so the same per-address limit that stops password guessing stops enumeration through this form.
        // Counted before the check and given back unless the address was taken, so that attempts sent at once cannot
        // all pass the limit (each would read the count before any had been recorded).
        var (created, wait) = await limiter.AttemptAsync(SignInLimiter.AddressOf(context),
            () => UserAccounts.CreateAsync(users, form["email"].ToString(), form["password"].ToString()), attempt => attempt.EmailTaken);
        if (wait is { } retryAfter)
        {
            context.Response.Headers.RetryAfter = ((int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return SignUpPage(context, returnUrl, [$"Too many failed attempts from your network. Try again in {(int)Math.Ceiling(retryAfter.TotalMinutes)} minute(s)."], 429, form);
        }

        if (created!.User is not { } user)
        {
            return SignUpPage(context, returnUrl, created.Errors, 400, form);
        }

        await signIn.SignInAsync(user, isPersistent: false);
        return Results.Redirect(LocalUrlOrHome(returnUrl));
    }

    private static async Task<IResult> PasswordPageAsync(HttpContext context, string? returnUrl, UserManager<NexusUser> users) =>
        await HasPasswordAsync(context, users) ? PasswordPage(context, returnUrl, null) : NoPasswordPage(context);

    /// <summary>Whether the signed-in account has a Nexus password (one that signs in only upstream has none).</summary>
    private static async Task<bool> HasPasswordAsync(HttpContext context, UserManager<NexusUser> users) =>
        await users.FindByIdAsync(UserAccounts.SessionUserId(context)) is { PasswordHash: not null };

    private static IResult NoPasswordPage(HttpContext context) =>
        Error(context, "No password to change", "Your account signs in through your organisation's identity provider; it has no Nexus password.", StatusCodes.Status404NotFound);

    private static IResult PasswordPage(HttpContext context, string? returnUrl, IEnumerable<string>? errors, int status = 200)
    {
        var required = PasswordChange.IsRequired(context.User);
        var intro = required
            ? """<p role="status">You signed in with a temporary password. Choose your own password to continue.</p>"""
            : """<p class="muted">Your other sessions are signed out when the password changes.</p>""";
        var message = errors is null ? "" : $"""<ul class="error" role="alert">{string.Concat(errors.Select(e => $"<li>{E(e)}</li>"))}</ul>""";
        return Page(context, "Change your password", $"""
            <section class="card narrow"><h1>{(required ? "Choose your password" : "Change your password")}</h1>{intro}{message}
            <form method="post" action="{PasswordChange.Path}">{AntiforgeryField(context)}
            <input type="hidden" name="returnUrl" value="{E(LocalUrlOrDashboard(returnUrl))}">
            <input type="hidden" name="username" autocomplete="username" value="{E(context.User.FindFirst(System.Security.Claims.ClaimTypes.Email)?.Value)}">
            <label for="current_password">{(required ? "Temporary password" : "Current password")}</label><input id="current_password" name="current_password" type="password" autocomplete="current-password" required autofocus>
            <label for="new_password">New password</label><input id="new_password" name="new_password" type="password" autocomplete="new-password" minlength="10" required aria-describedby="new-password-help">
            <p id="new-password-help" class="muted">At least 10 characters.</p>
            <label for="confirm_password">New password again</label><input id="confirm_password" name="confirm_password" type="password" autocomplete="new-password" minlength="10" required>
            <div class="actions"><button type="submit">Change password</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> ChangePasswordAsync(HttpContext context, PasswordChange change)
    {
        var form = ProtectedForm.Of(context);
        var returnUrl = form["returnUrl"].ToString();
        var (outcome, errors, retryAfter) = await change.ChangeAsync(context, UserAccounts.SessionUserId(context),
            form["current_password"].ToString(), form["new_password"].ToString(), form["confirm_password"].ToString());
        switch (outcome)
        {
            case PasswordChangeOutcome.Changed:
                return Results.Redirect(LocalUrlOrDashboard(returnUrl));
            case PasswordChangeOutcome.NoPassword:
                return NoPasswordPage(context);
            case PasswordChangeOutcome.Throttled:
                context.Response.Headers.RetryAfter = ((int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                // From the source address (SignInLimiter) or on the account (its lockout): either way, wait.
                return PasswordPage(context, returnUrl, [$"Too many failed attempts. Try again in {(int)Math.Ceiling(retryAfter.TotalMinutes)} minute(s)."], 429);
            case PasswordChangeOutcome.WrongPassword:
                return PasswordPage(context, returnUrl, [PasswordChange.IsRequired(context.User) ? "The temporary password is wrong." : "The current password is wrong."], 401);
            default:
                return PasswordPage(context, returnUrl, errors, 400);
        }
    }

    private static async Task<IResult> SignOutAsync(HttpContext context, AccountSignOut signOut)
    {
        await signOut.EndSessionAsync(context);
        return Results.Redirect("/");
    }
}
