using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Connections;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Dashboard;

/// <summary>
/// "My connections": the services a signed-in person connected, what each may do in plain words, and Connect,
/// Revoke and Reconnect. A person's connections live in the workspace named by their user id, so the gateway API
/// (with a key for that workspace) sees exactly what the dashboard shows.
/// </summary>
internal static class ConnectionsPages
{
    public const string Path = "/dashboard";

    public static void MapConnectionsPages(this IEndpointRouteBuilder app)
    {
        // Every page and form below is for a signed-in person (NexusPolicies.SignedIn, Accounts/SessionPolicies.cs).
        var dashboard = app.MapGroup("").RequireAuthorization(NexusPolicies.SignedIn);
        dashboard.MapGet("/dashboard", ListAsync).ExcludeFromDescription();
        dashboard.MapGet("/dashboard/connect/{provider}", ChooseAsync).ExcludeFromDescription();
        dashboard.MapPost("/dashboard/connect/{provider}", ConnectAsync).ExcludeFromDescription().RequireProtectedForm();
        dashboard.MapGet("/dashboard/connections/{connectionId}/revoke", ConfirmRevokeAsync).ExcludeFromDescription();
        dashboard.MapPost("/dashboard/connections/{connectionId}/revoke", RevokeAsync).ExcludeFromDescription().RequireProtectedForm();
        dashboard.MapGet("/dashboard/connections/{connectionId}/reconnect", ChooseReconnectAsync).ExcludeFromDescription();
        dashboard.MapPost("/dashboard/connections/{connectionId}/reconnect", ReconnectAsync).ExcludeFromDescription().RequireProtectedForm();
        dashboard.MapGet("/dashboard/returned", ReturnedAsync).ExcludeFromDescription();
    }

    /// <summary>A person's connections live in the workspace named by their user id.</summary>
    private static string Workspace(HttpContext context) => UserAccounts.SignedInUserId(context);

    private static async Task<IResult> ListAsync(HttpContext context, ConnectionStore store, ProviderRegistry providers, ProviderCatalog catalog, CancellationToken ct)
    {
        var workspace = Workspace(context);

        var connections = await store.ListAsync([workspace], null, null, null, 200, ct);
        var accounts = await store.AccountsAsync(workspace, ct);
        var registered = await providers.ListAsync(ct);
        var attention = connections.Where(c => c.Status == ConnectionStatus.AttentionRequired).ToList();
        var banner = attention.Count == 0 ? "" : $"""
            <div class="banner" role="alert"><strong>{attention.Count} connection{(attention.Count == 1 ? " needs" : "s need")} to be re-established.</strong>
            {string.Join(", ", attention.Select(c => E(Display(registered, c.ProviderName))))} stopped working (the service refused to renew access). Use <em>Reconnect</em> below.</div>
            """;
        var listed = connections.Where(c => c.Status != ConnectionStatus.Failed || c.Error != ConnectionStore.ExpiredError).ToList();
        // Health (last refreshed, next refresh, failures) only means something for OAuth connections whose provider renews
        // tokens; a key or a password is never refreshed. The column is there only when a listed connection refreshes or
        // has an error to explain; other rows leave the cell empty.
        bool Refreshes(Connection c) => registered.FirstOrDefault(p => p.Name == c.ProviderName) is { Config.RefreshSupported: true } p && AuthModes.IsOAuth(p.AuthMode);
        var healthColumn = listed.Any(c => Refreshes(c) || ConnectionResponse.From(c).LastError is not null);
        var rows = listed.Select(c =>
        {
            var provider = registered.FirstOrDefault(p => p.Name == c.ProviderName);
            var name = Display(registered, c.ProviderName);
            var permissions = c.ScopeList.Count == 0 ? "<span class=\"muted\">No extra permissions</span>"
                : "<ul class=\"scopes\">" + string.Concat(c.ScopeList.Select(s => $"<li>{E(Describe(catalog, provider, s))}</li>")) + "</ul>";
            // OAuth connections reconnect in place (same connection id, ConnectionService.ReconnectAsync, like the API);
            // credential connections get a new connection that replaces the old one once it is active.
            var reconnect = provider is null ? ""
                : $"<a class=\"button secondary\" href=\"{(AuthModes.IsOAuth(provider.AuthMode) ? $"{Path}/connections/{E(c.Id)}/reconnect" : $"{Path}/connect/{E(provider.Name)}?replaces={E(c.Id)}")}\" aria-label=\"Reconnect {E(name)}\">{(c.Status == ConnectionStatus.Active ? "Re-authorize" : "Reconnect")}</a>";
            var health = !healthColumn ? "" : $"<td data-label=\"Health\">{Health(c, name, Refreshes(c))}</td>";
            return $"""
                <tr><td data-label="Service">{ProviderLogos.Avatar(provider, name)} <strong>{E(name)}</strong>{(accounts.TryGetValue(c.Id, out var account) ? $"<br><span class=\"account\">{E(account)}</span>" : "")}<br><code class="muted">{E(c.Id)}</code></td>
                <td data-label="Permissions">{permissions}</td><td data-label="Status"><span class="status {E(c.Status)}">{E(c.Status.Replace('_', ' '))}</span></td>
                <td data-label="Connected">{Time(c.CreatedAt)}</td>{health}
                <td data-label="Actions">{reconnect} <a class="button secondary" href="{Path}/connections/{E(c.Id)}/revoke" aria-label="Revoke {E(name)}">Revoke</a></td></tr>
                """;
        });
        var table = SiteManagementPages.Table(healthColumn ? ["Service", "Permissions", "Status", "Connected", "Health", "Actions"] : ["Service", "Permissions", "Status", "Connected", "Actions"], rows, "You have not connected any service yet.", "stack");
        var connect = registered.Count == 0
            ? "<p class=\"muted\">No services are configured on this Nexus yet; an administrator adds them under Site management › Providers.</p>"
            : "<ul class=\"connect-list\">" + string.Concat(registered.OrderBy(p => p.DisplayName).Select(p =>
                $"<li><a class=\"button secondary\" href=\"{Path}/connect/{E(p.Name)}\">{ProviderLogos.Avatar(p, p.DisplayName)} {E(p.DisplayName)}</a></li>")) + "</ul>";
        return Page(context, "My connections", $"""
            {banner}<section class="card"><h1>My connections</h1>{table}</section>
            <section class="card"><h2>Connect a service</h2>{connect}</section>
            """);
    }

    private static async Task<IResult> ChooseAsync(HttpContext context, string provider, string? replaces, ProviderRegistry providers, ProviderCatalog catalog, CancellationToken ct)
    {
        if (await providers.FindAsync(provider, ct) is not { } p)
        {
            return Error(context, "Unknown service", "This service is not configured on this Nexus.", StatusCodes.Status404NotFound);
        }

        return ConnectPage(context, p, catalog, replaces, null, null);
    }

    /// <summary>
    /// Reconnect an OAuth connection in place: the permissions page (the connection's current ones preselected), whose form
    /// posts to <see cref="ReconnectAsync"/>. A credential connection goes through the connect page's replacement instead.
    /// </summary>
    private static async Task<IResult> ChooseReconnectAsync(HttpContext context, string connectionId, ConnectionStore store, ProviderRegistry providers, ProviderCatalog catalog,
        CancellationToken ct)
    {
        var workspace = Workspace(context);

        var connection = await store.FindAsync(connectionId, ct);
        if (connection is null || connection.WorkspaceId != workspace)
        {
            return Error(context, "Not found", "There is no such connection in your account.", StatusCodes.Status404NotFound);
        }

        if (await providers.FindAsync(connection.ProviderName, ct) is not { } p)
        {
            return Error(context, "Unknown service", "This service is no longer configured on this Nexus.", StatusCodes.Status404NotFound);
        }

        if (!AuthModes.IsOAuth(p.AuthMode))
        {
            return Results.Redirect($"{Path}/connect/{Uri.EscapeDataString(p.Name)}?replaces={Uri.EscapeDataString(connection.Id)}");
        }

        return ConnectPage(context, p, catalog, null, connection.ScopeList, null, $"{Path}/connections/{connection.Id}/reconnect",
            p.Config.Mcp?.IsClientCredentials == true
                ? "If the service refuses the new access, a working connection stays as it is."
                : "Until you approve, this connection keeps working as it is; then the new access replaces the old one.");
    }

    /// <summary>
    /// Starts the reconnect with the same service as POST /v1/connections/{id}/reconnect and sends the person to the
    /// provider; a machine-to-machine MCP server's connection is given its new token at once, with nobody to send.
    /// </summary>
    private static async Task<IResult> ReconnectAsync(HttpContext context, string connectionId, ConnectionStore store, ConnectionService connections, NexusOptions options,
        CancellationToken ct)
    {
        var workspace = Workspace(context);

        var form = ProtectedForm.Of(context);

        var connection = await store.FindAsync(connectionId, ct);
        if (connection is null || connection.WorkspaceId != workspace)
        {
            return Error(context, "Not found", "There is no such connection in your account.", StatusCodes.Status404NotFound);
        }

        var scopes = form["scope"].Where(s => !string.IsNullOrEmpty(s) && ScopeSyntax.IsValidToken(s!)).Select(s => s!).Distinct().ToArray();
        var started = await connections.ReconnectAsync(connection, scopes, options.Issuer + Path + "/returned", "user:" + workspace, ct);
        return started.Refusal switch
        {
            ReconnectRefusal.None when started.AuthUrl is null => Results.Redirect(Path),
            ReconnectRefusal.None => Results.Redirect(started.AuthUrl),
            ReconnectRefusal.TokenRequestFailed => Error(context, "The connection was not re-established",
                $"The service answered: {started.Error ?? "unknown"}{(started.ErrorDescription is { } d ? $" ({d})" : "")}. " +
                (started.Status == ConnectionStatus.Active ? "The connection keeps working as it was." : "An administrator may need to correct the service's client credentials."),
                StatusCodes.Status502BadGateway),
            ReconnectRefusal.NotOAuth => Results.Redirect($"{Path}/connect/{Uri.EscapeDataString(connection.ProviderName)}?replaces={Uri.EscapeDataString(connection.Id)}"),
            ReconnectRefusal.ProviderMissing => Error(context, "Unknown service", "This service is no longer configured on this Nexus.", StatusCodes.Status404NotFound),
            _ => Error(context, "Not found", "There is no such connection in your account.", StatusCodes.Status404NotFound),
        };
    }

    /// <summary>
    /// The page that shows a service's permissions and sends the person on to it (a POST to
    /// <c>/dashboard/connect/{provider}</c>). <paramref name="chosen"/> preselects permissions (else the provider's
    /// defaults); <paramref name="note"/> says who asked, for links made by an assistant.
    /// </summary>
    internal static IResult ConnectPage(HttpContext context, Provider p, ProviderCatalog catalog, string? replaces, IReadOnlyCollection<string>? chosen, string? note,
        string? action = null, string? reconnectNote = null)
    {
        var offered = Offered(catalog, p);
        if (chosen is not null)
        {
            offered.AddRange(chosen.Where(s => !offered.Contains(s)));
        }

        var choices = offered.Count == 0 ? "<p class=\"muted\">This service asks for no permissions.</p>" : "<fieldset><legend>Permissions to grant</legend>" + string.Concat(offered.Select((s, i) => $"""
            <div class="check"><input type="checkbox" id="scope-{i}" name="scope" value="{E(s)}"{((chosen ?? p.Scopes).Contains(s) ? " checked" : "")}>
            <label for="scope-{i}">{E(Describe(catalog, p, s))} <span class="muted">(<code>{E(s)}</code>)</span></label>{UncheckedHint(s, p.DisplayName)}</div>
            """)) + "</fieldset>";
        var title = (reconnectNote is null ? "Connect " : "Reconnect ") + p.DisplayName;
        // A machine-to-machine MCP server (client_credentials) is given access at once: there is nobody to approve it.
        var machine = p.Config.Mcp?.IsClientCredentials == true;
        var how = machine ? $"Nexus asks {E(p.DisplayName)} for access at once, with the client credentials an administrator registered; nobody approves it."
            : AuthModes.IsOAuth(p.AuthMode) ? $"You will be sent to {E(p.DisplayName)} to approve access, then brought back here."
            : $"You will enter your {E(p.DisplayName)} credentials on the next page; Nexus stores them encrypted.";
        return Page(context, title, $"""
            <section class="card narrow"><h1>{E(title)}</h1>{(note is null ? "" : $"<p class=\"muted\">{E(note)}</p>")}
            <p>{how}</p>{(reconnectNote is null ? "" : $"<p class=\"muted\">{E(reconnectNote)}</p>")}
            <form method="post" action="{E(action ?? $"{Path}/connect/{p.Name}")}">{AntiforgeryField(context)}{(replaces is null ? "" : $"<input type=\"hidden\" name=\"replaces\" value=\"{E(replaces)}\">")}
            {(AuthModes.IsOAuth(p.AuthMode) ? choices : "")}
            <div class="actions"><button type="submit">{(machine ? (reconnectNote is null ? "Connect" : "Reconnect") : "Continue to " + E(p.DisplayName))}</button><a class="button secondary" href="{Path}">Cancel</a></div></form></section>
            """);
    }

    private static async Task<IResult> ConnectAsync(HttpContext context, string provider, ProviderRegistry providers, ConnectionStore store, ConnectionService connections,
        NexusOptions options, CancellationToken ct)
    {
        var workspace = Workspace(context);

        var form = ProtectedForm.Of(context);

        if (await providers.FindAsync(provider, ct) is not { } p)
        {
            return Error(context, "Unknown service", "This service is not configured on this Nexus.", StatusCodes.Status404NotFound);
        }

        var scopes = form["scope"].Where(s => !string.IsNullOrEmpty(s) && ScopeSyntax.IsValidToken(s!)).Select(s => s!).Distinct().ToArray();
        if (p.Config.Mcp?.IsClientCredentials == true)
        {
            // A machine-to-machine MCP server: nobody consents, the connection is active at once (or failed with the
            // authorization server's error, which the returned page shows), as POST /v1/request-connection does.
            var (machineId, result) = await connections.CreateMachineAsync(p, workspace, scopes, options.Issuer + Path + "/returned", "user:" + workspace, ct);
            if (result.Succeeded && await store.FindAsync(machineId, ct) is { } activated)
            {
                await ConnectionReplacement.MarkAsync(store, machineId, workspace, form["replaces"].ToString(), ct);
                await ConnectionReplacement.CompleteAsync(activated, store, connections, ct);
            }

            return Results.Redirect($"{Path}/returned?connection_id={Uri.EscapeDataString(machineId)}");
        }

        var (authUrl, id) = await connections.CreatePendingAsync(p, workspace, AuthModes.IsOAuth(p.AuthMode) ? scopes : null, options.Issuer + Path + "/returned",
            "user:" + workspace, ct);
        // A reconnect: the old connection is revoked by the server once this one is active (never by the return URL).
        await ConnectionReplacement.MarkAsync(store, id, workspace, form["replaces"].ToString(), ct);
        return Results.Redirect(authUrl);
    }

    /// <summary>
    /// Where the broker sends the browser back. It only shows what the database says about the connection: the query's
    /// <c>status</c> is not trusted and nothing changes here (a reconnect's old connection was already retired when the
    /// new one became active, see <see cref="ConnectionReplacement"/>).
    /// </summary>
    private static async Task<IResult> ReturnedAsync(HttpContext context, string? connection_id, ConnectionStore store, ConnectionService connections, CancellationToken ct)
    {
        var workspace = Workspace(context);

        var connection = string.IsNullOrEmpty(connection_id) ? null : await store.FindAsync(connection_id, ct);
        if (connection is null || connection.WorkspaceId != workspace)
        {
            return Results.Redirect(Path);
        }

        connection = await connections.ExpireIfStaleAsync(connection);
        if (connection.Status == ConnectionStatus.Failed)
        {
            return Error(context, "The connection was not completed",
                $"The service answered: {connection.Error ?? "unknown"}. You can try again from My connections.");
        }

        return Results.Redirect(Path);
    }

    private static async Task<IResult> ConfirmRevokeAsync(HttpContext context, string connectionId, ConnectionStore store, ProviderRegistry providers, CancellationToken ct)
    {
        var workspace = Workspace(context);

        var connection = await store.FindAsync(connectionId, ct);
        if (connection is null || connection.WorkspaceId != workspace)
        {
            return Error(context, "Not found", "There is no such connection in your account.", StatusCodes.Status404NotFound);
        }

        var name = Display(await providers.ListAsync(ct), connection.ProviderName);
        return Page(context, "Revoke " + name, $"""
            <section class="card narrow"><h1>Revoke {E(name)}?</h1>
            <p>Applications using this connection stop working with {E(name)} at once. You can connect it again later.</p>
            <form method="post" action="{Path}/connections/{E(connection.Id)}/revoke">{AntiforgeryField(context)}
            <div class="actions"><button type="submit" class="danger">Revoke access</button><a class="button secondary" href="{Path}">Cancel</a></div></form></section>
            """);
    }

    private static async Task<IResult> RevokeAsync(HttpContext context, string connectionId, ConnectionStore store, ConnectionService connections, CancellationToken ct)
    {
        var workspace = Workspace(context);

        var connection = await store.FindAsync(connectionId, ct);
        if (connection is null || connection.WorkspaceId != workspace)
        {
            return Error(context, "Not found", "There is no such connection in your account.", StatusCodes.Status404NotFound);
        }

        await connections.RevokeAsync(connection, "user:" + workspace, ct);
        return Results.Redirect(Path);
    }

    /// <summary>
    /// What leaving a permission out means, shown (by the stylesheet alone) while its box is unchecked. Only
    /// offline_access needs it: without it there is no refresh token (OpenID Connect Core 1.0 §11), so access ends
    /// when the first access token expires.
    /// </summary>
    private static string UncheckedHint(string scope, string displayName) => scope == "offline_access"
        ? $"<p class=\"when-unchecked\" role=\"note\">Without this, Nexus gets no refresh token: access to {E(displayName)} ends when the first access token expires (often within an hour), and you will have to reconnect.</p>"
        : "";

    /// <summary>
    /// A connection's health in plain words: when access was last renewed and will next be, failed renewals in a row, and
    /// the last error, from the same fields GET /v1/connections shows (<see cref="ConnectionResponse.From"/>).
    /// </summary>
    internal static string Health(Connection c, string service, bool refreshes)
    {
        var view = ConnectionResponse.From(c);
        var lines = new List<string>();
        if (refreshes && c.Status == ConnectionStatus.Active)
        {
            lines.Add($"Last refreshed: {(view.LastRefreshedAt is { } last ? Time(last * 1000) : "not yet")}");
            // While refreshes fail, the next refresh is a retry.
            lines.Add($"{(view.ConsecutiveFailures > 0 ? "Next try" : "Next refresh")}: {(view.NextRefreshAt is { } next ? Time(next * 1000) : "when needed")}");
        }

        if (view.ConsecutiveFailures > 0)
        {
            lines.Add($"<strong>{view.ConsecutiveFailures} failed refresh{(view.ConsecutiveFailures == 1 ? "" : "es")} in a row</strong>");
        }

        if (view.LastError is { } error)
        {
            lines.Add($"<span class=\"health-error\" title=\"{E(error.Code)}: {E(error.Message)}\">{E(PlainWords(error.Code, c.Status, service))}</span>");
        }

        return lines.Count == 0 ? "<span class=\"muted\" aria-label=\"No refresh\">–</span>" : string.Join("<br>", lines);
    }

    /// <summary>What an error code means for the person, without protocol words; the code and the provider's own message stay in the tooltip.</summary>
    internal static string PlainWords(string code, string status, string service) => status switch
    {
        ConnectionStatus.AttentionRequired when code == "token_expired" =>
            $"Access to {service} expired and cannot be renewed. Reconnect to use it again.",
        ConnectionStatus.AttentionRequired => $"{service} no longer accepts this connection (access was withdrawn or has expired). Reconnect to use it again.",
        ConnectionStatus.Failed => $"Connecting to {service} did not complete. You can try again.",
        _ => code switch
        {
            "invalid_client" or "unauthorized_client" =>
                $"{service} did not accept this Nexus's registration, so access could not be renewed. An administrator has to fix it; Nexus keeps trying.",
            "slow_down" or "rate_limited" or "ratelimited" =>
                $"{service} asked Nexus to slow down, so access was not renewed yet. Nexus tries again shortly.",
            _ => $"{service} could not be reached to renew access. Nexus keeps trying; the connection still works until its access expires.",
        },
    };

    private static string Display(IReadOnlyList<Provider> providers, string name) => providers.FirstOrDefault(p => p.Name == name)?.DisplayName ?? name;

    /// <summary>The permissions a person may choose from: the provider's defaults plus the catalog's documented scopes.</summary>
    internal static List<string> Offered(ProviderCatalog catalog, Provider provider)
    {
        var offered = new List<string>(provider.Scopes);
        if (provider.CatalogKey is not null && catalog.Find(provider.CatalogKey)?.Scopes is { } documented)
        {
            offered.AddRange(documented.Keys.Where(k => !offered.Contains(k)));
        }

        return offered;
    }

    /// <summary>A scope in plain words: the catalog's description when it has one, else Nexus's own for OIDC scopes.</summary>
    internal static string Describe(ProviderCatalog catalog, Provider? provider, string scope) =>
        provider?.CatalogKey is not null && catalog.Find(provider.CatalogKey)?.Scopes?.GetValueOrDefault(scope) is { } text ? text : ScopeDescriptions.Describe(scope);

    private static string Time(long unixMs) =>
        $"<time datetime=\"{DateTimeOffset.FromUnixTimeMilliseconds(unixMs):O}\">{DateTimeOffset.FromUnixTimeMilliseconds(unixMs):yyyy-MM-dd HH:mm} UTC</time>";
}
