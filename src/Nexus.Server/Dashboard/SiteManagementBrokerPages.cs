using System.Text;
using Dapper;
using Nexus.Server.Accounts;
using Nexus.Server.ApiKeys;
using Nexus.Server.Audit;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Notifications;
using Nexus.Server.Providers;
using Nexus.Server.Vault;
using static Nexus.Server.Dashboard.AdminPages;
using static Nexus.Server.Dashboard.SiteManagementPages;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Dashboard;

/// <summary>Site Management for the broker: Providers, API keys, Webhooks, Audit log, and the connection health view.</summary>
internal static class SiteManagementBrokerPages
{
    public static void MapSiteManagementBroker(this IEndpointRouteBuilder app)
    {
        app.MapGet("/admin/providers", (HttpContext context, ProviderRegistry registry, ProviderCatalog catalog, CancellationToken ct) => ProvidersAsync(context, registry, catalog, null, ct)).ExcludeFromDescription();
        app.MapPost("/admin/providers", (HttpContext context, ProviderRegistry registry, ProviderCatalog catalog, OidcDiscovery discovery, UpstreamPolicy policy, TimeProvider time, CancellationToken ct) =>
            CreateProviderAsync(context, registry, catalog, discovery, policy, time, custom: false, ct)).ExcludeFromDescription().DisableAntiforgery();
        app.MapPost("/admin/providers/custom", (HttpContext context, ProviderRegistry registry, ProviderCatalog catalog, OidcDiscovery discovery, UpstreamPolicy policy, TimeProvider time, CancellationToken ct) =>
            CreateProviderAsync(context, registry, catalog, discovery, policy, time, custom: true, ct)).ExcludeFromDescription().DisableAntiforgery();
        app.MapGet("/admin/api-keys", (HttpContext context, ApiKeyStore store, CancellationToken ct) => ApiKeysAsync(context, store, null, null, ct)).ExcludeFromDescription();
        app.MapPost("/admin/api-keys", CreateApiKeyAsync).ExcludeFromDescription().DisableAntiforgery();
        app.MapGet("/admin/api-keys/{id}/revoke", (HttpContext context, string id) =>
            Guard(context) ?? Confirm(context, "/admin/api-keys", "Revoke this API key? Every app using it loses access at once.", $"/admin/api-keys/{id}/revoke", "Revoke key")).ExcludeFromDescription();
        app.MapPost("/admin/api-keys/{id}/revoke", RevokeApiKeyAsync).ExcludeFromDescription().DisableAntiforgery();
        app.MapGet("/admin/webhooks", (HttpContext context, WebhookStore store, CancellationToken ct) => WebhooksAsync(context, store, null, null, ct)).ExcludeFromDescription();
        app.MapPost("/admin/webhooks", CreateWebhookAsync).ExcludeFromDescription().DisableAntiforgery();
        app.MapPost("/admin/webhooks/{id}/delete", DeleteWebhookAsync).ExcludeFromDescription().DisableAntiforgery();
        app.MapGet("/admin/audit", AuditAsync).ExcludeFromDescription();
    }

    // ---- Providers ----------------------------------------------------------------------------------------------

    private static async Task<IResult> ProvidersAsync(HttpContext context, ProviderRegistry registry, ProviderCatalog catalog, Dictionary<string, string[]>? errors, CancellationToken ct, int status = 200)
    {
        if (Guard(context) is { } denied)
        {
            return denied;
        }

        var options = context.RequestServices.GetRequiredService<NexusOptions>();
        var rows = (await registry.ListAsync(ct)).Select(p => $"""
            <tr><td><strong>{E(p.DisplayName)}</strong><br><code>{E(p.Name)}</code></td><td>{E(p.CatalogKey ?? "custom")}</td><td>{E(p.AuthMode)}</td>
            <td>{(AuthModes.IsOAuth(p.AuthMode) ? $"<code>{E(p.ClientId)}</code>" : "<span class=\"muted\">users bring credentials</span>")}</td><td>{string.Join(" ", p.Scopes.Select(s => $"<code>{E(s)}</code>"))}</td></tr>
            """);
        var entries = string.Concat(catalog.Entries.OrderBy(e => e.Value.DisplayName).Select(e => $"<option value=\"{E(e.Key)}\">{E(e.Value.DisplayName)} ({E(e.Value.AuthMode)})</option>"));
        return Render(context, "/admin/providers", "Providers", $"""
            <section class="card"><h2>Configured providers</h2>{Table(["Provider", "Catalog", "Mode", "Client ID", "Default scopes"], rows, "No providers yet.")}
            <p class="muted">OAuth providers redirect to <code>{E(options.Issuer)}/auth/callback</code>: register that redirect URI with the provider.</p></section>
            <section class="card"><h2>Add a provider from the catalog</h2>{Errors(errors)}
            <form method="post" action="/admin/providers">{AntiforgeryField(context)}
            <label for="catalog">Catalog entry</label><select id="catalog" name="catalog">{entries}</select>
            <label for="name">Name <span class="muted">(how apps refer to it, e.g. google)</span></label><input id="name" name="name" type="text" required pattern="[a-z0-9][a-z0-9_\-]*" maxlength="63">
            <label for="client_id">OAuth client ID <span class="muted">(OAuth providers only)</span></label><input id="client_id" name="client_id" type="text" autocomplete="off">
            <label for="client_secret">OAuth client secret <span class="muted">(stored encrypted, never shown again)</span></label><input id="client_secret" name="client_secret" type="password" autocomplete="off">
            <label for="scopes">Default scopes <span class="muted">(optional, separated by spaces)</span></label><input id="scopes" name="scopes" type="text">
            <div class="actions"><button type="submit">Add provider</button></div></form>
            </section>
            <section class="card"><h2>Add a custom OAuth provider</h2>
            <p class="muted">Any OAuth 2.0 server: give its OpenID Connect issuer (endpoints are discovered) or its authorization and token URLs. API-key, Basic and AWS services: <code>POST /v1/providers</code>.</p>
            <form method="post" action="/admin/providers/custom">{AntiforgeryField(context)}
            <label for="custom_name">Name</label><input id="custom_name" name="name" type="text" required pattern="[a-z0-9][a-z0-9_\-]*" maxlength="63">
            <label for="display_name">Display name</label><input id="display_name" name="display_name" type="text" maxlength="200">
            <label for="issuer">OpenID Connect issuer <span class="muted">(or the two URLs below)</span></label><input id="issuer" name="issuer" type="url">
            <label for="authorization_url">Authorization URL</label><input id="authorization_url" name="authorization_url" type="url">
            <label for="token_url">Token URL</label><input id="token_url" name="token_url" type="url">
            <label for="revocation_url">Revocation URL <span class="muted">(optional, RFC 7009)</span></label><input id="revocation_url" name="revocation_url" type="url">
            <label for="api_base_url">API base URL <span class="muted">(for the Bridge)</span></label><input id="api_base_url" name="api_base_url" type="url">
            <label for="custom_client_id">Client ID</label><input id="custom_client_id" name="client_id" type="text" required autocomplete="off">
            <label for="custom_client_secret">Client secret</label><input id="custom_client_secret" name="client_secret" type="password" required autocomplete="off">
            <label for="custom_scopes">Default scopes</label><input id="custom_scopes" name="scopes" type="text">
            <div class="check"><input type="checkbox" id="pkce" name="pkce" value="true" checked><label for="pkce">Use PKCE (S256)</label></div>
            <div class="actions"><button type="submit">Add custom provider</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> CreateProviderAsync(HttpContext context, ProviderRegistry registry, ProviderCatalog catalog, OidcDiscovery discovery, UpstreamPolicy policy,
        TimeProvider time, bool custom, CancellationToken ct)
    {
        if (Guard(context) is { } denied)
        {
            return denied;
        }

        if (await AccountEndpoints.ReadProtectedFormAsync(context) is not { } form)
        {
            return AccountEndpoints.CsrfRejected(context);
        }

        var scopes = Words(form["scopes"]);
        var request = custom
            ? new ProviderRequest(form["name"], null, NullIfEmpty(form["display_name"]), AuthModes.OAuth2, NullIfEmpty(form["issuer"]), NullIfEmpty(form["authorization_url"]),
                NullIfEmpty(form["token_url"]), NullIfEmpty(form["revocation_url"]), null, NullIfEmpty(form["api_base_url"]), NullIfEmpty(form["client_id"]),
                NullIfEmpty(form["client_secret"]), scopes, System.Text.Json.JsonSerializer.SerializeToElement(form["pkce"] == "true"), null, null, null, null, null, null, null, null)
            : new ProviderRequest(form["name"], NullIfEmpty(form["catalog"]), null, null, null, null, null, null, null, null,
                NullIfEmpty(form["client_id"]), NullIfEmpty(form["client_secret"]), scopes.Length == 0 ? null : scopes, null, null, null, null, null, null, null, null, null);
        var (provider, failure, errors) = await ProvidersAdminEndpoints.RegisterAsync(request, registry, catalog, discovery, policy, time, ct);
        if (provider is null)
        {
            return await ProvidersAsync(context, registry, catalog, errors.Count > 0 ? errors : new() { ["provider"] = ["The provider could not be added (its OpenID Connect discovery failed?)."] }, ct, 400);
        }

        return Results.Redirect("/admin/providers");
    }

    // ---- API keys -----------------------------------------------------------------------------------------------

    private static async Task<IResult> ApiKeysAsync(HttpContext context, ApiKeyStore store, string? created, Dictionary<string, string[]>? errors, CancellationToken ct, int status = 200)
    {
        if (Guard(context) is { } denied)
        {
            return denied;
        }

        var rows = (await store.ListAsync(ct)).OrderByDescending(k => k.CreatedAt).Select(k => $"""
            <tr><td><strong>{E(k.Name)}</strong><br><code>{E(k.Id)}</code></td><td>{string.Join(", ", k.Workspaces.Select(w => $"<code>{E(w)}</code>"))}</td>
            <td>{(k.CanReadCredentials ? "read credentials + Bridge" : "Bridge only")}</td><td>{Status(k.IsRevoked)}</td>
            <td>{(k.IsRevoked ? "" : $"<a class=\"button secondary\" href=\"/admin/api-keys/{E(k.Id)}/revoke\">Revoke</a>")}</td></tr>
            """);
        return Render(context, "/admin/api-keys", "API keys", $"""
            {created}<section class="card"><h2>Gateway API keys</h2>{Table(["Key", "Workspaces", "May", "Status", "Actions"], rows, "No API keys yet.")}</section>
            <section class="card"><h2>Create an API key</h2>{Errors(errors)}
            <form method="post" action="/admin/api-keys">{AntiforgeryField(context)}
            <label for="name">Name</label><input id="name" name="name" type="text" required maxlength="200">
            <label for="workspaces">Workspaces <span class="muted">(ids separated by spaces, or * for every workspace)</span></label><input id="workspaces" name="workspaces" type="text" required>
            <div class="check"><input type="checkbox" id="bridge_only" name="bridge_only" value="true"><label for="bridge_only">Bridge only: may call APIs through the Bridge but never read a credential</label></div>
            <div class="actions"><button type="submit">Create key</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> CreateApiKeyAsync(HttpContext context, ApiKeyStore store, SecretHasher hasher, TimeProvider time, CancellationToken ct)
    {
        if (Guard(context) is { } denied)
        {
            return denied;
        }

        if (await AccountEndpoints.ReadProtectedFormAsync(context) is not { } form)
        {
            return AccountEndpoints.CsrfRejected(context);
        }

        var (key, secret, errors) = await ApiKeysAdminEndpoints.CreateKeyAsync(new ApiKeyRequest(form["name"], Words(form["workspaces"]), form["bridge_only"] != "true"), store, hasher, time, ct);
        if (key is null)
        {
            return await ApiKeysAsync(context, store, null, errors, ct, 400);
        }

        return await ApiKeysAsync(context, store, $"<section class=\"card\" aria-live=\"polite\"><h2>API key {E(key.Name)}</h2>{SecretBox("API key", "new-api-key", secret!)}</section>", null, ct);
    }

    private static async Task<IResult> RevokeApiKeyAsync(HttpContext context, string id, ApiKeyStore store, CancellationToken ct)
    {
        if (Guard(context) is { } denied)
        {
            return denied;
        }

        if (await AccountEndpoints.ReadProtectedFormAsync(context) is null)
        {
            return AccountEndpoints.CsrfRejected(context);
        }

        if (await store.FindAsync(id, ct) is { IsRevoked: false } key)
        {
            await store.RevokeAsync(key, ct);
        }

        return Results.Redirect("/admin/api-keys");
    }

    // ---- Webhooks -----------------------------------------------------------------------------------------------

    private static async Task<IResult> WebhooksAsync(HttpContext context, WebhookStore store, string? created, Dictionary<string, string[]>? errors, CancellationToken ct, int status = 200)
    {
        if (Guard(context) is { } denied)
        {
            return denied;
        }

        var rows = new List<string>();
        foreach (var hook in await store.ListAsync(ct))
        {
            var deliveries = await store.DeliveriesAsync(hook.Id, 20, ct);
            var log = deliveries.Count == 0 ? "<span class=\"muted\">none yet</span>" : string.Join("<br>", deliveries.Take(5).Select(d =>
                $"<code>{E(d.Event)}</code> <span class=\"status {(d.Status == DeliveryStatus.Delivered ? "active" : d.Status == DeliveryStatus.Failed ? "failed" : "pending")}\">{E(d.Status)}</span> {d.Attempts}×{(d.LastStatusCode is { } code ? $" HTTP {code}" : "")}"));
            rows.Add($"""
                <tr><td><code>{E(hook.Url)}</code><br><span class="muted">{E(hook.Id)}</span></td><td>{string.Join(" ", hook.Events.Select(e => $"<code>{E(e)}</code>"))}</td>
                <td>{E(hook.WorkspaceId ?? "all workspaces")}</td><td>{log}</td>
                <td><form method="post" action="/admin/webhooks/{E(hook.Id)}/delete" class="inline">{AntiforgeryField(context)}<button type="submit" class="secondary">Delete</button></form></td></tr>
                """);
        }

        var events = string.Concat(WebhookEvents.All.Where(e => e != WebhookEvents.Test).Select((e, i) =>
            $"<div class=\"check\"><input type=\"checkbox\" id=\"event-{i}\" name=\"events\" value=\"{E(e)}\" checked><label for=\"event-{i}\"><code>{E(e)}</code></label></div>"));
        return Render(context, "/admin/webhooks", "Webhooks", $"""
            {created}<section class="card"><h2>Webhooks</h2>{Table(["Endpoint", "Events", "Scope", "Recent deliveries", "Actions"], rows, "No webhooks yet.")}</section>
            <section class="card"><h2>Add a webhook</h2>{Errors(errors)}
            <form method="post" action="/admin/webhooks">{AntiforgeryField(context)}
            <label for="url">Endpoint URL</label><input id="url" name="url" type="url" required placeholder="https://app.example.com/hooks/nexus">
            <label for="workspace_id">Workspace <span class="muted">(optional; empty for every workspace)</span></label><input id="workspace_id" name="workspace_id" type="text">
            <fieldset><legend>Events</legend>{events}</fieldset>
            <div class="actions"><button type="submit">Add webhook</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> CreateWebhookAsync(HttpContext context, WebhookStore store, IHostEnvironment environment, CancellationToken ct)
    {
        if (Guard(context) is { } denied)
        {
            return denied;
        }

        if (await AccountEndpoints.ReadProtectedFormAsync(context) is not { } form)
        {
            return AccountEndpoints.CsrfRejected(context);
        }

        var request = new WebhookRequest(form["url"], form["events"].Where(e => !string.IsNullOrEmpty(e)).Select(e => e!).ToArray(), NullIfEmpty(form["workspace_id"]));
        var (url, events, errors) = WebhooksAdminEndpoints.Validate(request, context.RequestServices.GetRequiredService<Providers.UpstreamPolicy>());
        if (errors.Count > 0)
        {
            return await WebhooksAsync(context, store, null, errors, ct, 400);
        }

        var (webhook, secret) = await store.CreateAsync(url!, events, request.WorkspaceId, ct);
        return await WebhooksAsync(context, store, $"<section class=\"card\" aria-live=\"polite\"><h2>Webhook added</h2>{SecretBox("Signing secret", "new-webhook-secret", secret)}</section>", null, ct);
    }

    private static async Task<IResult> DeleteWebhookAsync(HttpContext context, string id, WebhookStore store, CancellationToken ct)
    {
        if (Guard(context) is { } denied)
        {
            return denied;
        }

        if (await AccountEndpoints.ReadProtectedFormAsync(context) is null)
        {
            return AccountEndpoints.CsrfRejected(context);
        }

        await store.DeleteAsync(id, ct);
        return Results.Redirect("/admin/webhooks");
    }

    // ---- Audit log ----------------------------------------------------------------------------------------------

    private static async Task<IResult> AuditAsync(HttpContext context, string? workspace_id, string? connection_id, string? @event, AuditLog audit, CancellationToken ct)
    {
        if (Guard(context) is { } denied)
        {
            return denied;
        }

        var events = await audit.QueryAsync(NullIfEmpty(workspace_id), NullIfEmpty(connection_id), NullIfEmpty(@event), 200, ct);
        var rows = events.Select(e => $"""
            <tr><td><time datetime="{e.At:O}">{e.At:yyyy-MM-dd HH:mm:ss}</time></td><td><code>{E(e.Event)}</code></td><td>{E(e.Actor)}</td>
            <td>{E(e.WorkspaceId)}</td><td><code>{E(e.ConnectionId)}</code></td><td><code>{E(e.Detail.ToString())}</code></td></tr>
            """);
        var options = string.Concat(AuditEvents.All.Prepend("").Select(e => $"<option value=\"{E(e)}\"{(e == @event ? " selected" : "")}>{(e.Length == 0 ? "any event" : E(e))}</option>"));
        return Render(context, "/admin/audit", "Audit log", $"""
            <section class="card"><h2>Audit log</h2>
            <form method="get" action="/admin/audit" class="filters">
            <label for="workspace_id">Workspace</label><input id="workspace_id" name="workspace_id" type="text" value="{E(workspace_id)}">
            <label for="connection_id">Connection</label><input id="connection_id" name="connection_id" type="text" value="{E(connection_id)}">
            <label for="event">Event</label><select id="event" name="event">{options}</select>
            <div class="actions"><button type="submit">Filter</button><a class="button secondary" href="/admin/audit">Clear</a></div></form>
            {Table(["When", "Event", "Actor", "Workspace", "Connection", "Detail"], rows, "No events match.")}</section>
            """);
    }

    // ---- Health -------------------------------------------------------------------------------------------------

    private static readonly string[] Statuses = ["active", "pending", "attention_required", "failed"];

    /// <summary>Connections by status and provider, and failures per day over two weeks as a small SVG chart.</summary>
    public static async Task<string> ConnectionHealthAsync(NexusDatabase db, TimeProvider time, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var counts = (await connection.QueryAsync<(string Provider, string Status, long Count)>(new CommandDefinition(
            "SELECT provider_name, status, COUNT(*) FROM connections GROUP BY provider_name, status ORDER BY provider_name", cancellationToken: ct))).ToList();
        var since = time.GetUtcNow().Date.AddDays(-13);
        var failures = (await connection.QueryAsync<long>(new CommandDefinition(
            "SELECT at FROM audit_events WHERE at >= @since AND event IN ('failed', 'refresh_failed', 'attention_required')",
            new { since = new DateTimeOffset(since, TimeSpan.Zero).ToUnixTimeMilliseconds() }, cancellationToken: ct)))
            .GroupBy(at => DateTimeOffset.FromUnixTimeMilliseconds(at).UtcDateTime.Date).ToDictionary(g => g.Key, g => g.Count());

        var statuses = Statuses;
        var rows = counts.GroupBy(c => c.Provider).Select(g => $"<tr><td>{E(g.Key)}</td>{string.Concat(statuses.Select(s => $"<td>{g.Where(c => c.Status == s).Sum(c => c.Count)}</td>"))}</tr>");
        var totals = string.Concat(statuses.Select(s => $"<section class=\"card\"><h3>{E(s.Replace('_', ' '))}</h3><p class=\"stat\">{counts.Where(c => c.Status == s).Sum(c => c.Count)}</p></section>"));

        var max = Math.Max(1, failures.Values.DefaultIfEmpty(0).Max());
        var bars = new StringBuilder();
        for (var i = 0; i < 14; i++)
        {
            var day = since.AddDays(i);
            var value = failures.GetValueOrDefault(day);
            var height = (int)Math.Round(80.0 * value / max);
            bars.Append($"<rect x=\"{i * 22 + 4}\" y=\"{90 - height}\" width=\"16\" height=\"{Math.Max(height, 1)}\" fill=\"{(value > 0 ? "#e03131" : "#ced4da")}\"><title>{day:yyyy-MM-dd}: {value}</title></rect>");
        }

        return $"""
            <div class="grid">{totals}</div>
            <section class="card"><h2>Connections by provider</h2>{Table(["Provider", .. statuses], rows, "No connections yet.")}</section>
            <section class="card"><h2>Connection failures, last 14 days</h2>
            <svg role="img" aria-label="Failed handshakes and refreshes per day over the last 14 days; {failures.Values.Sum()} in total" viewBox="0 0 312 96" width="100%" height="120">{bars}</svg>
            <p class="muted">{since:MMM d} – {since.AddDays(13):MMM d}: {failures.Values.Sum()} failure(s) (failed handshakes, refresh failures, connections needing attention).</p></section>
            """;
    }
}
