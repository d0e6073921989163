using Microsoft.AspNetCore.Identity;
using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer.Applications;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Data;
using Nexus.Server.Vault;
using static Nexus.Server.Dashboard.AdminPages;
using static Nexus.Server.Hosting.Html;
using Nexus.Server.Hosting;

namespace Nexus.Server.Dashboard;

/// <summary>Site Management for system administrators: OAuth Applications, App Clients, Users and Status.</summary>
internal static class SiteManagementPages
{
    public static void MapSiteManagement(this IEndpointRouteBuilder app)
    {
        // Every page and form below is for the system administrator (NexusPolicies.SiteAdmin, Accounts/SessionPolicies.cs).
        var admin = app.MapGroup("").RequireAuthorization(NexusPolicies.SiteAdmin);
        admin.MapGet("/admin", (HttpContext context) => Results.Redirect("/admin/applications")).ExcludeFromDescription();
        admin.MapGet("/admin/applications", (HttpContext context, ClientRegistry registry, CancellationToken ct) => ApplicationsAsync(context, registry, null, null, null, ct)).ExcludeFromDescription();
        admin.MapPost("/admin/applications", CreateApplicationAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/applications/{clientId}/delete", (HttpContext context, string clientId) =>
            Confirm(context, "/admin/applications", "Revoke this application?", $"/admin/applications/{Uri.EscapeDataString(RawRouteValue.Get(context, "clientId", clientId))}/delete", "Revoke application",
                "Its secret and every token issued to it stop working at once. It stays listed under Revoked.")).ExcludeFromDescription();
        admin.MapGet("/admin/applications/{clientId}/secret", (HttpContext context, string clientId) =>
            Confirm(context, "/admin/applications", "Generate a new secret for this application?", $"/admin/applications/{Uri.EscapeDataString(RawRouteValue.Get(context, "clientId", clientId))}/secret", "Generate new secret",
                "The current secret stops working at once; the application fails until it is given the new one.")).ExcludeFromDescription();
        admin.MapPost("/admin/applications/{clientId}/delete", (HttpContext context, string clientId, ApplicationService applications) => RevokeAsync(context, clientId, applications, "/admin/applications")).ExcludeFromDescription().RequireProtectedForm();
        admin.MapPost("/admin/applications/{clientId}/secret", (HttpContext context, string clientId, ClientRegistry registry, ApplicationService applications) => RotateAsync(context, clientId, registry, applications, "/admin/applications")).ExcludeFromDescription().RequireProtectedForm();

        admin.MapGet("/admin/clients", (HttpContext context, ClientRegistry registry, CancellationToken ct) => ClientsAsync(context, registry, null, null, null, ct)).ExcludeFromDescription();
        admin.MapPost("/admin/clients", CreateClientAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/clients/{clientId}/delete", (HttpContext context, string clientId) =>
            Confirm(context, "/admin/clients", "Revoke this App Client?", $"/admin/clients/{Uri.EscapeDataString(clientId)}/delete", "Revoke App Client",
                "Its secret and every token issued to it stop working at once. It stays listed under Revoked.")).ExcludeFromDescription();
        admin.MapGet("/admin/clients/{clientId}/secret", (HttpContext context, string clientId) =>
            Confirm(context, "/admin/clients", "Generate a new secret for this App Client?", $"/admin/clients/{Uri.EscapeDataString(clientId)}/secret", "Generate new secret",
                "The current secret stops working at once; the client fails until it is given the new one.")).ExcludeFromDescription();
        admin.MapPost("/admin/clients/{clientId}/delete", (HttpContext context, string clientId, AppClientService clients) => RevokeAsync(context, clientId, clients, "/admin/clients")).ExcludeFromDescription().RequireProtectedForm();
        admin.MapPost("/admin/clients/{clientId}/secret", (HttpContext context, string clientId, ClientRegistry registry, AppClientService clients) => RotateAsync(context, clientId, registry, clients, "/admin/clients")).ExcludeFromDescription().RequireProtectedForm();

        admin.MapGet("/admin/users", (HttpContext context, UserStore users, DeploymentSettings settings, CancellationToken ct) => UsersAsync(context, users, settings, null, null, null, ct)).ExcludeFromDescription();
        admin.MapPost("/admin/users", CreateUserAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/users/{id}/disable", (HttpContext context, string id) =>
            Confirm(context, "/admin/users", "Disable this user?", $"/admin/users/{Uri.EscapeDataString(id)}/disable", "Disable user",
                "They are signed out everywhere at once and cannot sign in until you enable the account again. The applications and assistants they authorized lose access at once: their tokens stop working, and enabling the account does not bring them back (the person authorizes them again). Their connections stay.")).ExcludeFromDescription();
        admin.MapPost("/admin/users/{id}/disable", (HttpContext context, string id, UserStore users, SessionValidator sessions, IAccountGrants grants) =>
            ChangeUserAsync(context, id, users, sessions, grants, UserAdministration.Action.Disable)).ExcludeFromDescription().RequireProtectedForm();
        admin.MapPost("/admin/users/{id}/enable", (HttpContext context, string id, UserStore users, SessionValidator sessions, IAccountGrants grants) =>
            ChangeUserAsync(context, id, users, sessions, grants, UserAdministration.Action.Enable)).ExcludeFromDescription().RequireProtectedForm();
        admin.MapPost("/admin/users/{id}/unlock", (HttpContext context, string id, UserStore users, SessionValidator sessions, IAccountGrants grants) =>
            ChangeUserAsync(context, id, users, sessions, grants, UserAdministration.Action.Unlock)).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/users/{id}/reset", (HttpContext context, string id) =>
            Confirm(context, "/admin/users", "Reset this user's password?", $"/admin/users/{Uri.EscapeDataString(id)}/reset", "Reset password",
                "Their current password stops working, they are signed out everywhere, and the applications and assistants they authorized lose access (their tokens stop working; the person authorizes them again). You get a temporary password, shown once, to pass on to them; at their next sign-in they choose their own.")).ExcludeFromDescription();
        admin.MapPost("/admin/users/{id}/reset", ResetPasswordAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapPost("/admin/settings/sign-up", ToggleSignUpAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/status", StatusAsync).ExcludeFromDescription();
    }

    // ---- OAuth Applications -------------------------------------------------------------------------------------

    private static async Task<IResult> ApplicationsAsync(HttpContext context, ClientRegistry registry, string? created, Dictionary<string, string[]>? errors, IFormCollection? form, CancellationToken ct, int status = 200)
    {
        var rows = (await registry.ListAsync(ClientKinds.Application, ct)).OrderByDescending(a => a.CreatedAt).Select(a => (a.IsRevoked, $"""
            <tr><td><strong>{E(a.Name)}</strong><br><code>{E(a.ClientId)}</code><br><span class="muted">{E(a.ClientType)}</span>{SelfRegistered(a)}</td>
            <td>{string.Join("<br>", a.RedirectUriList.Select(u => $"<code>{E(u)}</code>"))}</td>
            <td>{E(a.OwnerEmail)}<br><span class="muted">{E(a.BaseUrl)}</span></td><td>{Status(a.IsRevoked)}</td>
            <td>{(a.IsRevoked ? "" : (a.IsPublic ? "" : $"<a class=\"button secondary\" href=\"/admin/applications/{E(Uri.EscapeDataString(a.ClientId))}/secret\">Generate new secret</a> ") + $"<a class=\"button secondary\" href=\"/admin/applications/{E(Uri.EscapeDataString(a.ClientId))}/delete\">Revoke</a>")}</td></tr>
            """));
        var table = ActiveAndRevoked(["Application", "Redirect URIs", "Owner", "Status", "Actions"], rows, "No applications are registered yet.");
        return Render(context, "/admin/applications", "OAuth Applications", $"""
            {created}
            <section class="card"><h2>Registered applications</h2>{table}</section>
            <section class="card"><h2>Register an application</h2>{Errors(errors)}
            <form method="post" action="/admin/applications">{AntiforgeryField(context)}
            <label for="name">Application name</label><input id="name" name="name" type="text" required maxlength="200"{Value(form, "name")}>
            <label for="redirect_uris">Redirect URIs <span class="muted">(one per line; must match exactly)</span></label>
            <textarea id="redirect_uris" name="redirect_uris" required placeholder="https://yourapp.com/oauth/callback">{Text(form, "redirect_uris")}</textarea>
            <label for="description">Description <span class="muted">(optional)</span></label><input id="description" name="description" type="text" maxlength="2000"{Value(form, "description")}>
            <label for="base_url">Base URL <span class="muted">(optional)</span></label><input id="base_url" name="base_url" type="url"{Value(form, "base_url")}>
            <label for="owner_email">Owner email <span class="muted">(optional)</span></label><input id="owner_email" name="owner_email" type="email"{Value(form, "owner_email")}>
            <label for="type">Type</label><select id="type" name="type"><option value="confidential"{Selected(form, "type", "confidential", true)}>Confidential (server; gets a secret)</option><option value="public"{Selected(form, "type", "public")}>Public (SPA, mobile, CLI; PKCE, no secret)</option></select>
            <div class="actions"><button type="submit">Register application</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> CreateApplicationAsync(HttpContext context, ClientRegistry registry, ApplicationService applications, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        var request = new ApplicationRequest(form["name"], Lines(form["redirect_uris"]), NullIfEmpty(form["description"]), NullIfEmpty(form["base_url"]),
            NullIfEmpty(form["owner_email"]), NullIfEmpty(form["type"]), null, null, null);
        var (app, secret, errors) = await applications.CreateAsync(request, ct);
        if (app is null)
        {
            return await ApplicationsAsync(context, registry, null, errors, form, ct, 400);
        }

        var shown = $"""
            <section class="card" aria-live="polite"><h2>Registered {E(app.Name)}</h2>
            <label for="new-client-id">Client ID</label><div class="row"><input id="new-client-id" type="text" readonly value="{E(app.ClientId)}"><button type="button" data-copy="new-client-id">Copy</button></div>
            {(secret is null ? "<p>Public application: no secret; it must use PKCE.</p>" : SecretBox("Client secret", "new-client-secret", secret))}</section>
            """;
        return await ApplicationsAsync(context, registry, shown, null, null, ct);
    }

    /// <summary>Clients that registered themselves (MCP assistants) are marked, so an administrator can tell them apart and revoke them.</summary>
    private static string SelfRegistered(OAuthClient client) => client.Registration switch
    {
        ClientRegistrations.Dynamic => " <span class=\"status\" title=\"Registered itself through dynamic client registration (RFC 7591)\">self-registered</span>",
        ClientRegistrations.MetadataDocument => " <span class=\"status\" title=\"Identified by its client ID metadata document\">self-registered (metadata document)</span>",
        _ => "",
    };

    // ---- App Clients --------------------------------------------------------------------------------------------

    private static async Task<IResult> ClientsAsync(HttpContext context, ClientRegistry registry, string? created, Dictionary<string, string[]>? errors, IFormCollection? form, CancellationToken ct, int status = 200)
    {
        var rows = (await registry.ListAsync(ClientKinds.AppClient, ct)).OrderByDescending(c => c.CreatedAt).Select(c => (c.IsRevoked, $"""
            <tr><td><strong>{E(c.Name)}</strong><br><code>{E(c.ClientId)}</code></td>
            <td>{string.Join(" ", c.Scopes.Select(s => $"<code>{E(s)}</code>"))}</td><td>{string.Join(", ", c.GrantTypes)}</td>
            <td>{c.AccessTokenLifetimeSeconds} s</td><td>{Status(c.IsRevoked)}</td>
            <td>{(c.IsRevoked ? "" : $"<a class=\"button secondary\" href=\"/admin/clients/{E(Uri.EscapeDataString(c.ClientId))}/secret\">Generate new secret</a> <a class=\"button secondary\" href=\"/admin/clients/{E(Uri.EscapeDataString(c.ClientId))}/delete\">Revoke</a>")}</td></tr>
            """));
        var table = ActiveAndRevoked(["App Client", "Scopes", "Grants", "Token lifetime", "Status", "Actions"], rows, "No App Clients yet.");
        return Render(context, "/admin/clients", "App Clients", $"""
            {created}
            <section class="card"><h2>App Clients</h2><p class="muted">Machine credentials for the client credentials flow at <code>/nexus/oauth2/token</code>.</p>{table}</section>
            <section class="card"><h2>Create an App Client</h2>{Errors(errors)}
            <form method="post" action="/admin/clients">{AntiforgeryField(context)}
            <label for="name">Name</label><input id="name" name="name" type="text" required maxlength="200"{Value(form, "name")}>
            <label for="scopes">Scopes <span class="muted">(separated by spaces)</span></label><input id="scopes" name="scopes" type="text" placeholder="invoices:read invoices:write"{Value(form, "scopes")}>
            <label for="lifetime">Access token lifetime (seconds)</label><input id="lifetime" name="access_token_lifetime_seconds" type="text" inputmode="numeric"{Value(form, "access_token_lifetime_seconds", "3600")}>
            <div class="actions"><button type="submit">Create and generate credentials</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> CreateClientAsync(HttpContext context, ClientRegistry registry, AppClientService clients, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        int? lifetime = int.TryParse(form["access_token_lifetime_seconds"], out var l) ? l : null;
        if (lifetime is null && !string.IsNullOrWhiteSpace(form["access_token_lifetime_seconds"]))
        {
            return await ClientsAsync(context, registry, null, new() { ["access_token_lifetime_seconds"] = ["The lifetime is a whole number of seconds."] }, form, ct, 400);
        }

        var (client, secret, errors) = await clients.CreateAsync(new AppClientRequest(form["name"], Words(form["scopes"]), null, lifetime), ct);
        if (client is null)
        {
            return await ClientsAsync(context, registry, null, errors, form, ct, 400);
        }

        return await ClientsAsync(context, registry, Credentials(client, secret!), null, null, ct);
    }

    private static string Credentials(OAuthClient client, string secret) => $"""
        <section class="card" aria-live="polite"><h2>Credentials for {E(client.Name)}</h2>
        <label for="new-client-id">Client ID</label><div class="row"><input id="new-client-id" type="text" readonly value="{E(client.ClientId)}"><button type="button" data-copy="new-client-id">Copy</button></div>
        {SecretBox("Client secret", "new-client-secret", secret)}</section>
        """;

    // ---- shared actions -----------------------------------------------------------------------------------------

    private static async Task<IResult> RevokeAsync(HttpContext context, string clientId, ClientService clients, string back)
    {
        // A metadata-document client's id is a URL, percent-encoded in the route: read as sent (Hosting/RawRouteValue).
        if (await clients.FindAsync(RawRouteValue.Get(context, "clientId", clientId), context.RequestAborted) is not { } client)
        {
            // Never "done" for nothing done: the administrator would believe it revoked.
            return Error(context, "Not found", "There is no such client; nothing was revoked.", StatusCodes.Status404NotFound);
        }

        await clients.RevokeAsync(client, context.RequestAborted);
        return Results.Redirect(back);
    }

    private static async Task<IResult> RotateAsync(HttpContext context, string clientId, ClientRegistry registry, ClientService clients, string back)
    {
        var ct = context.RequestAborted;
        var client = await clients.FindAsync(RawRouteValue.Get(context, "clientId", clientId), ct);
        var secret = client is null ? null : (await clients.RotateSecretAsync(client, ct))?.Secret;
        if (client is null || secret is null)
        {
            return Error(context, "Cannot rotate", "This client does not exist, has no secret, or was revoked.", StatusCodes.Status409Conflict);
        }

        var shown = Credentials(client, secret);
        return back == "/admin/clients" ? await ClientsAsync(context, registry, shown, null, null, ct) : await ApplicationsAsync(context, registry, shown, null, null, ct);
    }

    // ---- Users --------------------------------------------------------------------------------------------------

    private static async Task<IResult> UsersAsync(HttpContext context, UserStore users, DeploymentSettings settings, IEnumerable<string>? errors, IFormCollection? form, string? shown,
        CancellationToken ct, int status = 200)
    {
        var now = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
        var me = UserAccounts.CurrentUserId(context);
        var rows = (await users.ListAsync(ct)).Select(u =>
        {
            var id = E(Uri.EscapeDataString(u.Id));
            var state = UserAdministration.StateOf(u, now);
            var badge = state switch
            {
                UserAdministration.State.Disabled => "<span class=\"status revoked\">disabled</span>",
                UserAdministration.State.LockedOut => $"<span class=\"status failed\" title=\"Too many failed sign-ins\">locked until {u.LockoutEnd:HH:mm} UTC</span>",
                _ => "<span class=\"status active\">active</span>",
            } + (u.PasswordChangeRequired ? " <span class=\"status pending\" title=\"Chooses their own password at the next sign-in\">temporary password</span>" : "");
            var actions = new List<string>();
            if (state == UserAdministration.State.LockedOut)
            {
                actions.Add(PostButton(context, $"/admin/users/{id}/unlock", "Unlock", $"Unlock {u.Email}"));
            }

            if (state == UserAdministration.State.Disabled)
            {
                actions.Add(PostButton(context, $"/admin/users/{id}/enable", "Enable", $"Enable {u.Email}"));
            }
            else if (u.Id != me)
            {
                actions.Add($"<a class=\"button secondary\" href=\"/admin/users/{id}/disable\" aria-label=\"Disable {E(u.Email)}\">Disable</a>");
            }

            actions.Add($"<a class=\"button secondary\" href=\"/admin/users/{id}/reset\" aria-label=\"Reset the password of {E(u.Email)}\">Reset password</a>");
            return $"""
                <tr><td>{E(u.Email)}{(u.IsSystemAdmin ? " <span class=\"status active\">admin</span>" : "")}</td>
                <td>{E(u.DisplayName)}</td><td>{u.CreatedAt:yyyy-MM-dd}</td><td>{badge}</td><td>{string.Join(" ", actions)}</td></tr>
                """;
        });
        var signUp = await settings.IsSignUpEnabledAsync(ct);
        var message = errors is null ? "" : $"<ul class=\"error\" role=\"alert\">{string.Concat(errors.Select(e => $"<li>{E(e)}</li>"))}</ul>";
        return Render(context, "/admin/users", "Users", $"""
            {shown}<section class="card"><h2>Users</h2>{Table(["Email", "Name", "Created", "State", "Actions"], rows, "No users yet.")}</section>
            <section class="card"><h2>Create a user</h2>{message}
            <form method="post" action="/admin/users">{AntiforgeryField(context)}
            <label for="email">Email</label><input id="email" name="email" type="email" required{Value(form, "email")}>
            <label for="password">Initial password</label><input id="password" name="password" type="password" minlength="10" required autocomplete="new-password">
            <div class="check"><input type="checkbox" id="password_change_required" name="password_change_required" value="true"{Checked(form, "password_change_required", "true", true)}><label for="password_change_required">Ask them to choose their own password when they first sign in</label></div>
            <div class="actions"><button type="submit">Create user</button></div></form></section>
            <section class="card"><h2>Sign-up</h2><p>Self-service sign-up is <strong>{(signUp ? "open" : "closed")}</strong>.</p>
            <form method="post" action="/admin/settings/sign-up">{AntiforgeryField(context)}<input type="hidden" name="enabled" value="{(signUp ? "false" : "true")}">
            <button type="submit" class="secondary">{(signUp ? "Close sign-up" : "Open sign-up")}</button></form></section>
            """, status);
    }

    /// <summary>A one-button form for an action that needs no confirmation (it undoes nothing a person relies on).</summary>
    /// <summary>A one-button POST form with its antiforgery token, for a table row's action; <paramref name="action"/> is put in the attribute as given (escape it first).</summary>
    internal static string PostButton(HttpContext context, string action, string label, string ariaLabel) =>
        $"<form method=\"post\" action=\"{action}\" class=\"inline\">{AntiforgeryField(context)}<button type=\"submit\" class=\"secondary\" aria-label=\"{E(ariaLabel)}\">{E(label)}</button></form>";

    private static async Task<IResult> CreateUserAsync(HttpContext context, UserManager<NexusUser> userManager, UserStore users, DeploymentSettings settings, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        var (user, errors, _) = await UserAccounts.CreateAsync(userManager, form["email"].ToString(), form["password"].ToString(), emailConfirmed: true,
            passwordChangeRequired: form["password_change_required"] == "true");
        return user is null ? await UsersAsync(context, users, settings, errors, form, null, ct, 400) : Results.Redirect("/admin/users");
    }

    private static async Task<IResult> ChangeUserAsync(HttpContext context, string id, UserStore users, SessionValidator sessions, IAccountGrants grants, UserAdministration.Action action)
    {
        if (action == UserAdministration.Action.Disable && id == UserAccounts.CurrentUserId(context))
        {
            return Error(context, "Not your own account", "You cannot disable the account you are signed in with.", StatusCodes.Status409Conflict);
        }

        return await UserAdministration.ApplyAsync(users, sessions, grants, id, action) ? Results.Redirect("/admin/users")
            : Error(context, "Not found", "There is no such user.", StatusCodes.Status404NotFound);
    }

    private static async Task<IResult> ResetPasswordAsync(HttpContext context, string id, UserManager<NexusUser> userManager, SessionValidator sessions, IAccountGrants grants, UserStore users,
        DeploymentSettings settings, CancellationToken ct)
    {
        var (user, temporary) = await UserAdministration.ResetPasswordAsync(userManager, sessions, grants, id, context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow());
        if (user is null)
        {
            return Error(context, "Not found", "There is no such user.", StatusCodes.Status404NotFound);
        }

        if (temporary is null)
        {
            return Error(context, "Password not reset", "The account changed while its password was being reset. Reset it again.", StatusCodes.Status409Conflict);
        }

        var shown = $"""
            <section class="card" aria-live="polite"><h2>Temporary password for {E(user.Email)}</h2>
            <div class="secret" role="status"><label for="temporary-password">Temporary password</label>
            <div class="row"><input id="temporary-password" type="text" readonly value="{E(temporary)}"><button type="button" data-copy="temporary-password">Copy</button></div>
            <p>Give it to them over a channel you trust; they sign in with it and then choose their own password before anything else. Nexus stores only its hash and will not show it again.</p></div></section>
            """;
        return await UsersAsync(context, users, settings, null, null, shown, ct);
    }

    private static async Task<IResult> ToggleSignUpAsync(HttpContext context, DeploymentSettings settings, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        await settings.SetAsync(DeploymentSettings.SignUpEnabled, form["enabled"] == "true" ? "true" : "false", ct);
        return Results.Redirect("/admin/users");
    }

    // ---- Status -------------------------------------------------------------------------------------------------

    private static async Task<IResult> StatusAsync(HttpContext context, ClientRegistry registry, UserStore users, SigningKeys keys, KeyRing keyRing, NexusDatabase db, TimeProvider time, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var apps = await registry.ListAsync(ClientKinds.Application, ct);
        var clients = await registry.ListAsync(ClientKinds.AppClient, ct);
        var userCount = (await users.ListAsync(ct)).Count;
        var keyRows = keys.Published.OrderBy(k => k.CreatedAt).Select(k => $"""
            <tr><td><code>{E(k.Kid[..12])}…</code></td><td>{E(k.Alg)}</td><td>{(k.RetiredAt is null ? "<span class=\"status active\">signing</span>" : "<span class=\"status\">retired</span>")}</td>
            <td>{Age(now - k.CreatedAt)}</td><td>{(k.ExpiresAt is { } e ? $"{e:yyyy-MM-dd HH:mm} UTC" : "")}</td></tr>
            """);
        var encryptionAge = keyRing.ActiveKeyCreatedAt is { } created ? Age(now - created) : "unknown (set through ENCRYPTION_KEY)";
        return Render(context, "/admin/status", "Status", $"""
            <div class="grid">
            <section class="card"><h2>Applications</h2><p class="stat">{apps.Count(a => !a.IsRevoked)}</p><p class="muted">{apps.Count(a => a.IsRevoked)} revoked</p></section>
            <section class="card"><h2>App Clients</h2><p class="stat">{clients.Count(c => !c.IsRevoked)}</p><p class="muted">{clients.Count(c => c.IsRevoked)} revoked</p></section>
            <section class="card"><h2>Users</h2><p class="stat">{userCount}</p></section>
            </div>
            <section class="card"><h2>Signing keys</h2>{Table(["Key id", "Algorithm", "State", "Age", "Published until"], keyRows, "No keys.")}</section>
            <section class="card"><h2>Encryption key</h2>{(keyRing.IsDevelopmentKey ? $"<p class=\"notice\" role=\"alert\" id=\"development-key\"><strong>The development key is in use.</strong> ENCRYPTION_KEY is not set, so stored secrets are encrypted with the generated key in {E(keyRing.Source["development key file ".Length..])}; anyone with that file can decrypt them. Set ENCRYPTION_KEY (<code>openssl rand -base64 32</code>) and run <code>keys reencrypt</code> with this key in PREVIOUS_ENCRYPTION_KEYS before storing real credentials.</p>" : "")}<p>Active key <code>{keyRing.ActiveKeyId:x8}</code>, age {E(encryptionAge)}; {keyRing.KeyCount - 1} older key(s) still configured for decryption.</p>
            <p class="muted">Key source: {E(keyRing.Source)}. Environment: {E(context.RequestServices.GetRequiredService<IHostEnvironment>().EnvironmentName)}. Database: {E(db.Description)}</p></section>
            {await SiteManagementBrokerPages.ConnectionHealthAsync(db, time, ct)}
            """);
    }

    private static string Age(TimeSpan age) => age.TotalDays >= 1 ? $"{(int)age.TotalDays} d" : age.TotalHours >= 1 ? $"{(int)age.TotalHours} h" : $"{Math.Max(0, (int)age.TotalMinutes)} min";

    /// <summary>A table; <paramref name="cssClass"/> "stack" turns rows into cards on narrow screens (cells need data-label), "wrap" wraps long cells.</summary>
    public static string Table(string[] headers, IEnumerable<string> rows, string empty, string? cssClass = null)
    {
        var body = string.Concat(rows);
        return body.Length == 0
            ? $"<p class=\"muted\">{E(empty)}</p>"
            : $"<table{(cssClass is null ? "" : $" class=\"{cssClass}\"")}><thead><tr>{string.Concat(headers.Select(h => $"<th scope=\"col\">{E(h)}</th>"))}</tr></thead><tbody>{body}</tbody></table>";
    }
}
