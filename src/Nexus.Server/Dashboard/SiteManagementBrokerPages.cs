using System.Text;
using Dapper;
using Nexus.Server.ApiKeys;
using Nexus.Server.Audit;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Notifications;
using Nexus.Server.Providers;
using static Nexus.Server.Dashboard.AdminPages;
using static Nexus.Server.Dashboard.SiteManagementPages;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Dashboard;

/// <summary>Site Management for the broker: Providers, API keys, Webhooks, Audit log, and the connection health view.</summary>
internal static class SiteManagementBrokerPages
{
    public static void MapSiteManagementBroker(this IEndpointRouteBuilder app)
    {
        // Every page and form below is for the system administrator (NexusPolicies.SiteAdmin, Accounts/SessionPolicies.cs).
        var admin = app.MapGroup("").RequireAuthorization(NexusPolicies.SiteAdmin);
        admin.MapGet("/admin/providers", (HttpContext context, ProviderRegistry registry, ProviderCatalog catalog, CancellationToken ct) => ProvidersAsync(context, registry, catalog, null, null, false, ct)).ExcludeFromDescription();
        admin.MapPost("/admin/providers", (HttpContext context, ProviderRegistry registry, ProviderCatalog catalog, ProviderRegistration registration, CancellationToken ct) =>
            CreateProviderAsync(context, registry, catalog, registration, custom: false, ct)).ExcludeFromDescription().RequireProtectedForm();
        // Two segments: "/admin/providers/custom" was the edit form's address of a provider named custom.
        admin.MapPost("/admin/providers/custom/new", (HttpContext context, ProviderRegistry registry, ProviderCatalog catalog, ProviderRegistration registration, CancellationToken ct) =>
            CreateProviderAsync(context, registry, catalog, registration, custom: true, ct)).ExcludeFromDescription().RequireProtectedForm();
        // Two segments, as the custom form above, so that no provider name (a single segment) is shadowed by this form's address.
        admin.MapPost("/admin/providers/mcp/new", CreateMcpProviderAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/providers/{name}", (HttpContext context, string name, ProviderRegistry registry, CancellationToken ct) => EditProviderPageAsync(context, name, registry, null, null, ct)).ExcludeFromDescription();
        admin.MapPost("/admin/providers/{name}", UpdateProviderAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/providers/{name}/delete", (HttpContext context, string name) =>
            Confirm(context, "/admin/providers", $"Delete the provider {name}?", $"/admin/providers/{Uri.EscapeDataString(name)}/delete", "Delete provider",
                "Apps and people can no longer connect it. Nexus refuses while connections still use it: revoke those first.")).ExcludeFromDescription();
        admin.MapPost("/admin/providers/{name}/delete", DeleteProviderAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/api-keys", (HttpContext context, ApiKeyStore store, CancellationToken ct) => ApiKeysAsync(context, store, null, null, null, ct)).ExcludeFromDescription();
        admin.MapPost("/admin/api-keys", CreateApiKeyAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/api-keys/{id}/revoke", (HttpContext context, string id) =>
            Confirm(context, "/admin/api-keys", "Revoke this API key?", $"/admin/api-keys/{Uri.EscapeDataString(id)}/revoke", "Revoke key",
                "Every app using it loses access at once. It stays listed under Revoked.")).ExcludeFromDescription();
        admin.MapPost("/admin/api-keys/{id}/revoke", RevokeApiKeyAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/webhooks", (HttpContext context, WebhookStore store, string? sent, string? webhook, string? delivery, CancellationToken ct) =>
            WebhooksAsync(context, store, null, null, null, ct, sent: sent, sentWebhook: webhook, sentDelivery: delivery)).ExcludeFromDescription();
        admin.MapPost("/admin/webhooks", CreateWebhookAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/webhooks/{id}/delete", (HttpContext context, string id) =>
            Confirm(context, "/admin/webhooks", "Delete this webhook?", $"/admin/webhooks/{Uri.EscapeDataString(id)}/delete", "Delete webhook",
                "Nexus stops sending events to it at once; its delivery log goes with it.")).ExcludeFromDescription();
        admin.MapPost("/admin/webhooks/{id}/delete", DeleteWebhookAsync).ExcludeFromDescription().RequireProtectedForm();
        // The same service as POST /v1/admin/webhooks/{id}/test and …/deliveries/{deliveryId}/retry (WebhookDeliveryService).
        admin.MapPost("/admin/webhooks/{id}/test", SendTestEventAsync).ExcludeFromDescription().RequireProtectedForm();
        // The same service as PATCH /v1/admin/webhooks/{id} and POST /v1/admin/webhooks/{id}/secret (WebhookRegistration).
        admin.MapPost("/admin/webhooks/{id}/pause", (HttpContext context, string id, WebhookRegistration registration, CancellationToken ct) =>
            PauseWebhookAsync(context, id, true, registration, ct)).ExcludeFromDescription().RequireProtectedForm();
        admin.MapPost("/admin/webhooks/{id}/resume", (HttpContext context, string id, WebhookRegistration registration, CancellationToken ct) =>
            PauseWebhookAsync(context, id, false, registration, ct)).ExcludeFromDescription().RequireProtectedForm();
        admin.MapPost("/admin/webhooks/{id}/secret", RotateWebhookSecretAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapPost("/admin/webhooks/{id}/deliveries/{deliveryId}/retry", SendAgainAsync).ExcludeFromDescription().RequireProtectedForm();
        admin.MapGet("/admin/audit", AuditAsync).ExcludeFromDescription();
    }

    // ---- Providers ----------------------------------------------------------------------------------------------

    /// <summary>Where the "Add an MCP server by its URL" form posts.</summary>
    public const string McpFormPath = "/admin/providers/mcp/new";

    private static async Task<IResult> ProvidersAsync(HttpContext context, ProviderRegistry registry, ProviderCatalog catalog, Dictionary<string, string[]>? errors, IFormCollection? form,
        bool custom, CancellationToken ct, int status = 200, bool mcp = false)
    {
        var options = context.RequestServices.GetRequiredService<NexusOptions>();
        var rows = (await registry.ListAsync(ct)).Select(p => $"""
            <tr><td>{ProviderLogos.Avatar(p, p.DisplayName)} <strong>{E(p.DisplayName)}</strong><br><code>{E(p.Name)}</code></td><td>{E(p.CatalogKey ?? "custom")}</td><td>{E(p.AuthMode)}</td>
            <td>{(AuthModes.IsOAuth(p.AuthMode) ? $"<code>{E(p.ClientId)}</code>" : "<span class=\"muted\">users bring credentials</span>")}</td><td>{string.Join(" ", p.Scopes.Select(s => $"<code>{E(s)}</code>"))}</td>
            <td><a class="button secondary" href="/admin/providers/{E(Uri.EscapeDataString(p.Name))}" aria-label="Edit {E(p.DisplayName)}">Edit</a> <a class="button secondary" href="/admin/providers/{E(Uri.EscapeDataString(p.Name))}/delete" aria-label="Delete {E(p.DisplayName)}">Delete</a></td></tr>
            """);
        var catalogForm = custom || mcp ? null : form;
        var customForm = custom ? form : null;
        var mcpForm = mcp ? form : null;
        var entries = string.Concat(catalog.Entries.OrderBy(e => e.Value.DisplayName).Select(e => $"<option value=\"{E(e.Key)}\"{Selected(catalogForm, "catalog", e.Key)}>{E(e.Value.DisplayName)} ({E(e.Value.AuthMode)})</option>"));
        var modes = string.Concat(new[] { (AuthModes.OAuth2, "OAuth 2.0 (users approve at the service)"), (AuthModes.ApiKey, "API key (users paste their key)"),
            (AuthModes.BasicAuth, "Basic auth (username and password)"), (AuthModes.AwsSigV4, "AWS Signature Version 4 (access keys)") }
            .Select(m => $"<option value=\"{m.Item1}\"{Selected(customForm, "auth_mode", m.Item1, m.Item1 == AuthModes.OAuth2)}>{E(m.Item2)}</option>"));
        return Render(context, "/admin/providers", "Providers", $"""
            <section class="card"><h2>Configured providers</h2>{Table(["Provider", "Catalog", "Mode", "Client ID", "Default scopes", "Actions"], rows, "No providers yet.")}
            <p class="muted">OAuth providers redirect to <code>{E(options.Issuer)}/auth/callback</code>: register that redirect URI with the provider.</p></section>
            <section class="card"><h2>Add a provider from the catalog</h2>{(custom || mcp ? "" : Errors(errors))}
            <form method="post" action="/admin/providers">{AntiforgeryField(context)}
            <label for="catalog">Catalog entry</label><select id="catalog" name="catalog">{entries}</select>
            <label for="name">Name <span class="muted">(how apps refer to it, e.g. google)</span></label><input id="name" name="name" type="text" required pattern="[a-z0-9][a-z0-9_\-]*" maxlength="63"{Value(catalogForm, "name")}>
            <label for="client_id">OAuth client ID <span class="muted">(OAuth providers only)</span></label><input id="client_id" name="client_id" type="text" autocomplete="off"{Value(catalogForm, "client_id")}>
            <label for="client_secret">OAuth client secret <span class="muted">(stored encrypted, never shown again)</span></label><input id="client_secret" name="client_secret" type="password" autocomplete="off">
            <label for="scopes">Default scopes <span class="muted">(optional, separated by spaces)</span></label><input id="scopes" name="scopes" type="text"{Value(catalogForm, "scopes")}>
            <div class="actions"><button type="submit">Add provider</button></div></form>
            </section>
            <section class="card"><h2>Add a custom provider</h2>{(custom ? Errors(errors) : "")}
            <p class="muted">Any OAuth 2.0 server (its OpenID Connect issuer, or its authorization and token URLs), or an API that takes an API key, Basic auth or AWS signatures. The same checks as <code>POST /v1/providers</code> apply.</p>
            <form method="post" action="/admin/providers/custom/new" data-modes>{AntiforgeryField(context)}
            <label for="auth_mode">Authentication</label><select id="auth_mode" name="auth_mode">{modes}</select>
            <label for="custom_name">Name</label><input id="custom_name" name="name" type="text" required pattern="[a-z0-9][a-z0-9_\-]*" maxlength="63"{Value(customForm, "name")}>
            <label for="display_name">Display name</label><input id="display_name" name="display_name" type="text" maxlength="200"{Value(customForm, "display_name")}>
            <label for="api_base_url">API base URL <span class="muted">(for the Bridge; required unless OAuth)</span></label><input id="api_base_url" name="api_base_url" type="url"{Value(customForm, "api_base_url")}>
            <fieldset data-mode="{AuthModes.OAuth2}"><legend>OAuth 2.0</legend>
            <label for="issuer">OpenID Connect issuer <span class="muted">(or the two URLs below)</span></label><input id="issuer" name="issuer" type="url"{Value(customForm, "issuer")}>
            <label for="authorization_url">Authorization URL</label><input id="authorization_url" name="authorization_url" type="url"{Value(customForm, "authorization_url")}>
            <label for="token_url">Token URL</label><input id="token_url" name="token_url" type="url"{Value(customForm, "token_url")}>
            <label for="revocation_url">Revocation URL <span class="muted">(optional, RFC 7009)</span></label><input id="revocation_url" name="revocation_url" type="url"{Value(customForm, "revocation_url")}>
            <label for="custom_client_id">Client ID</label><input id="custom_client_id" name="client_id" type="text" autocomplete="off"{Value(customForm, "client_id")}>
            <label for="custom_client_secret">Client secret <span class="muted">(stored encrypted, never shown again)</span></label><input id="custom_client_secret" name="client_secret" type="password" autocomplete="off">
            <label for="custom_scopes">Default scopes</label><input id="custom_scopes" name="scopes" type="text"{Value(customForm, "scopes")}>
            <div class="check"><input type="checkbox" id="pkce" name="pkce" value="true"{Checked(customForm, "pkce", "true", true)}><label for="pkce">Use PKCE (S256)</label></div></fieldset>
            <fieldset data-mode="{AuthModes.ApiKey}"><legend>API key</legend>
            <label for="api_key_in">Send the key in</label><select id="api_key_in" name="api_key_in"><option value="header"{Selected(customForm, "api_key_in", "header", true)}>a header</option><option value="query"{Selected(customForm, "api_key_in", "query")}>a query parameter</option></select>
            <label for="api_key_name">Header or parameter name</label><input id="api_key_name" name="api_key_name" type="text" placeholder="Authorization"{Value(customForm, "api_key_name")}>
            <label for="api_key_prefix">Prefix <span class="muted">(optional, e.g. "Bearer ")</span></label><input id="api_key_prefix" name="api_key_prefix" type="text"{Value(customForm, "api_key_prefix")}></fieldset>
            <fieldset data-mode="{AuthModes.AwsSigV4}"><legend>AWS Signature Version 4</legend>
            <label for="aws_service">Service <span class="muted">(signing name: s3, execute-api, …)</span></label><input id="aws_service" name="aws_service" type="text"{Value(customForm, "aws_service")}>
            <label for="aws_region">Region</label><input id="aws_region" name="aws_region" type="text" placeholder="us-east-1"{Value(customForm, "aws_region")}>
            <label for="aws_role_arn">Role ARN <span class="muted">(optional: connections assume this role)</span></label><input id="aws_role_arn" name="aws_role_arn" type="text"{Value(customForm, "aws_role_arn")}></fieldset>
            <fieldset data-mode="{AuthModes.ApiKey} {AuthModes.BasicAuth} {AuthModes.AwsSigV4}"><legend>What users enter</legend>
            <label for="credential_schema">Credential schema <span class="muted">(optional JSON Schema; empty for the mode's standard fields)</span></label>
            <textarea id="credential_schema" name="credential_schema" spellcheck="false">{Text(customForm, "credential_schema")}</textarea></fieldset>
            <div class="actions"><button type="submit">Add custom provider</button></div></form></section>
            <section class="card"><h2>Add an MCP server by its URL</h2>{(mcp ? Errors(errors) : "")}
            <p class="muted">Any MCP server protected by OAuth: Nexus discovers its authorization server, registers itself there (or uses the client you give), and people then connect it like any service. The same checks as <code>POST /v1/providers</code> with <code>auth_mode "mcp_oauth2"</code> apply.</p>
            <form method="post" action="{McpFormPath}">{AntiforgeryField(context)}
            <label for="mcp_url">MCP server URL <span class="muted">(its Streamable HTTP endpoint, https)</span></label><input id="mcp_url" name="mcp_url" type="url" required placeholder="https://mcp.example.com/mcp"{Value(mcpForm, "mcp_url")}>
            <label for="mcp_name">Name</label><input id="mcp_name" name="name" type="text" required pattern="[a-z0-9][a-z0-9_\-]*" maxlength="63"{Value(mcpForm, "name")}>
            <label for="mcp_display_name">Display name <span class="muted">(optional; the server's host name when empty)</span></label><input id="mcp_display_name" name="display_name" type="text" maxlength="200"{Value(mcpForm, "display_name")}>
            <label for="mcp_scopes">Scopes <span class="muted">(optional, separated by spaces; what the server asks for when empty)</span></label><input id="mcp_scopes" name="scopes" type="text"{Value(mcpForm, "scopes")}>
            <div class="check"><input type="checkbox" id="mcp_send_resource" name="send_resource" value="true"{Checked(mcpForm, "send_resource", "true", true)}><label for="mcp_send_resource">Send the resource indicator (RFC 8707; some authorization servers, Microsoft Entra ID among them, refuse it)</label></div>
            <fieldset><legend>Client registered beforehand <span class="muted">(optional: Nexus registers itself when empty)</span></legend>
            <label for="mcp_client_id">Client ID</label><input id="mcp_client_id" name="client_id" type="text" autocomplete="off"{Value(mcpForm, "client_id")}>
            <label for="mcp_client_secret">Client secret <span class="muted">(stored encrypted, never shown again)</span></label><input id="mcp_client_secret" name="client_secret" type="password" autocomplete="off">
            <div class="check"><input type="checkbox" id="mcp_machine" name="grant_type" value="{McpGrantTypes.ClientCredentials}"{Checked(mcpForm, "grant_type", McpGrantTypes.ClientCredentials, false)}><label for="mcp_machine">Machine-to-machine (client credentials grant): no person consents; needs the client ID with its secret or its private key</label></div>
            <label for="mcp_private_key_pem">Private key <span class="muted">(machine-to-machine with private_key_jwt: an ES256 key in PEM instead of a secret; stored encrypted)</span></label>
            <textarea id="mcp_private_key_pem" name="private_key_pem" spellcheck="false" autocomplete="off"></textarea></fieldset>
            <div class="actions"><button type="submit">Add MCP server</button></div></form></section>
            """, status);
    }

    private static readonly ProviderRequest EmptyRequest = new(null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null);

    /// <summary>
    /// The form's fields as the API's request: only those of the chosen authentication mode, so the same validation
    /// (<see cref="ProviderRegistration.RegisterAsync"/>) judges them. Null when the credential schema is not JSON.
    /// </summary>
    private static ProviderRequest? CustomRequest(IFormCollection form, Dictionary<string, string[]> errors)
    {
        var mode = form["auth_mode"].ToString();
        var request = EmptyRequest with { Name = form["name"], DisplayName = NullIfEmpty(form["display_name"]), AuthMode = mode, ApiBaseUrl = NullIfEmpty(form["api_base_url"]) };
        if (mode == AuthModes.OAuth2)
        {
            return request with
            {
                Issuer = NullIfEmpty(form["issuer"]), AuthorizationUrl = NullIfEmpty(form["authorization_url"]), TokenUrl = NullIfEmpty(form["token_url"]),
                RevocationUrl = NullIfEmpty(form["revocation_url"]), ClientId = NullIfEmpty(form["client_id"]), ClientSecret = NullIfEmpty(form["client_secret"]),
                Scopes = Words(form["scopes"]), Pkce = System.Text.Json.JsonSerializer.SerializeToElement(form["pkce"] == "true"),
            };
        }

        if (NullIfEmpty(form["credential_schema"]) is { } schemaText)
        {
            try
            {
                using var document = System.Text.Json.JsonDocument.Parse(schemaText);
                request = request with { CredentialSchema = document.RootElement.Clone() };
            }
            catch (System.Text.Json.JsonException)
            {
                errors["credential_schema"] = ["credential_schema is not valid JSON."];
                return null;
            }
        }

        return mode switch
        {
            AuthModes.ApiKey => request with { ApiKey = new CatalogApiKey { In = form["api_key_in"].ToString(), Name = form["api_key_name"].ToString().Trim(), Prefix = form["api_key_prefix"].ToString() is { Length: > 0 } prefix ? prefix : null } },
            AuthModes.AwsSigV4 => request with { Aws = AwsFields(form, null) },
            _ => request,
        };
    }

    /// <summary>The aws block from the form; settings the form does not show (external_id, sts_endpoint, …) are kept from <paramref name="current"/>.</summary>
    private static Dictionary<string, string> AwsFields(IFormCollection form, IReadOnlyDictionary<string, string>? current)
    {
        var aws = new Dictionary<string, string>(current ?? new Dictionary<string, string>(), StringComparer.Ordinal)
        {
            ["service"] = form["aws_service"].ToString().Trim(),
            ["region"] = form["aws_region"].ToString().Trim(),
        };
        if (NullIfEmpty(form["aws_role_arn"]) is { } role)
        {
            aws["role_arn"] = role;
        }
        else
        {
            aws.Remove("role_arn");
        }

        return aws;
    }

    private static async Task<IResult> CreateProviderAsync(HttpContext context, ProviderRegistry registry, ProviderCatalog catalog, ProviderRegistration registration,
        bool custom, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        var formErrors = new Dictionary<string, string[]>();
        var scopes = Words(form["scopes"]);
        var request = custom
            ? CustomRequest(form, formErrors)
            : EmptyRequest with { Name = form["name"], Catalog = NullIfEmpty(form["catalog"]), ClientId = NullIfEmpty(form["client_id"]), ClientSecret = NullIfEmpty(form["client_secret"]), Scopes = scopes.Length == 0 ? null : scopes };
        if (request is null)
        {
            return await ProvidersAsync(context, registry, catalog, formErrors, form, custom, ct, 400);
        }

        var (provider, failure, errors) = await registration.RegisterAsync(request, ct);
        if (provider is null)
        {
            return await ProvidersAsync(context, registry, catalog, errors.Count > 0 ? errors : FailureErrors(failure), form, custom, ct, 400);
        }

        return Results.Redirect("/admin/providers");
    }

    /// <summary>A failure without field errors (OpenID Connect discovery did not answer) in words for the page.</summary>
    private static Dictionary<string, string[]> FailureErrors(IResult? failure) =>
        new() { ["provider"] = [failure is Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult { ProblemDetails.Detail: { } detail } ? $"The provider could not be saved: {detail}" : "The provider could not be saved (its OpenID Connect discovery failed?)."] };

    /// <summary>
    /// Registers an MCP server by its URL from the form, through the same service as POST /v1/providers with
    /// <c>auth_mode "mcp_oauth2"</c> (<see cref="ProviderRegistration"/>): its validation and its discovery failures come
    /// back onto the form, with what was typed (secrets aside, as in every form here).
    /// </summary>
    private static async Task<IResult> CreateMcpProviderAsync(HttpContext context, ProviderRegistry registry, ProviderCatalog catalog,
        ProviderRegistration registration, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        var scopes = Words(form["scopes"]);
        var request = EmptyRequest with
        {
            Name = form["name"].ToString().Trim(),
            DisplayName = NullIfEmpty(form["display_name"]),
            AuthMode = AuthModes.McpOAuth2,
            McpUrl = NullIfEmpty(form["mcp_url"]),
            ClientId = NullIfEmpty(form["client_id"]),
            ClientSecret = NullIfEmpty(form["client_secret"]),
            Scopes = scopes.Length == 0 ? null : scopes,
            // An unchecked checkbox sends nothing: unchecked means "do not send resource".
            SendResource = form["send_resource"] == "true",
            GrantType = form["grant_type"] == McpGrantTypes.ClientCredentials ? McpGrantTypes.ClientCredentials : null,
            PrivateKeyPem = NullIfEmpty(form["private_key_pem"]),
        };
        var (provider, failure, _) = await registration.RegisterAsync(request, ct);
        return provider is not null ? Results.Redirect("/admin/providers")
            : await ProvidersAsync(context, registry, catalog, ProblemErrors(failure, "The MCP server could not be added"), form, custom: false, ct, 400, mcp: true);
    }

    /// <summary>A problem answer in words for the page: its field errors (validation_failed), else its detail.</summary>
    private static Dictionary<string, string[]> ProblemErrors(IResult? failure, string lead) => failure switch
    {
        Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult { ProblemDetails: var problem } when problem.Extensions.TryGetValue("errors", out var value)
            && value is IDictionary<string, string[]> errors && errors.Count > 0 => new(errors),
        Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult { ProblemDetails: { Detail: { } detail } } => new() { ["provider"] = [$"{lead}: {detail}"] },
        Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult { ProblemDetails: { Title: { } title } } => new() { ["provider"] = [$"{lead}: {title}"] },
        _ => new() { ["provider"] = [lead + "."] },
    };

    private static async Task<IResult> EditProviderPageAsync(HttpContext context, string name, ProviderRegistry registry, Dictionary<string, string[]>? errors, IFormCollection? form,
        CancellationToken ct, int status = 200)
    {
        if (await registry.FindAsync(name, ct) is not { } p)
        {
            return Error(context, "Not found", "There is no such provider.", StatusCodes.Status404NotFound);
        }

        var c = p.Config;
        var custom = p.CatalogKey is null;
        var fields = new StringBuilder();
        fields.Append($"<label for=\"display_name\">Display name</label><input id=\"display_name\" name=\"display_name\" type=\"text\" required maxlength=\"200\"{Value(form, "display_name", p.DisplayName)}>");
        if (p.AuthMode == AuthModes.McpOAuth2 && c.Mcp is { } mcp)
        {
            // What PATCH /v1/providers/{name} may change on an MCP server; its endpoints were discovered and stay.
            fields.Append($"""
                <p class="muted">MCP server <code>{E(mcp.Url)}</code>, authorization server <code>{E(c.Issuer)}</code> ({E(mcp.Registration.Replace('_', ' '))} client). Another server is a new provider.</p>
                <label for="scopes">Scopes <span class="muted">(separated by spaces)</span></label><input id="scopes" name="scopes" type="text"{Value(form, "scopes", string.Join(' ', p.Scopes))}>
                <div class="check"><input type="checkbox" id="send_resource" name="send_resource" value="true"{Checked(form, "send_resource", "true", mcp.SendResource)}><label for="send_resource">Send the resource indicator (RFC 8707)</label></div>
                """);
            if (mcp.IsClientCredentials)
            {
                fields.Append($"""
                    <fieldset><legend>Machine-to-machine client <span class="muted">(rotate its secret or key here)</span></legend>
                    <label for="client_id">Client ID</label><input id="client_id" name="client_id" type="text" required autocomplete="off"{Value(form, "client_id", p.ClientId)}>
                    <label for="client_secret">New client secret <span class="muted">(leave empty to keep the current {(c.TokenEndpointAuth == ClientAuthMethods.PrivateKeyJwt ? "key" : "secret")})</span></label><input id="client_secret" name="client_secret" type="password" autocomplete="off">
                    <label for="private_key_pem">New private key <span class="muted">(ES256 in PEM, instead of a secret; leave empty to keep the current one)</span></label>
                    <textarea id="private_key_pem" name="private_key_pem" spellcheck="false" autocomplete="off"></textarea></fieldset>
                    """);
            }
        }
        else if (p.AuthMode == AuthModes.OAuth2)
        {
            if (custom)
            {
                fields.Append($"""
                    <label for="authorization_url">Authorization URL</label><input id="authorization_url" name="authorization_url" type="url"{Value(form, "authorization_url", c.AuthorizationUrl)}>
                    <label for="token_url">Token URL</label><input id="token_url" name="token_url" type="url"{Value(form, "token_url", c.TokenUrl)}>
                    <label for="revocation_url">Revocation URL <span class="muted">(optional, RFC 7009)</span></label><input id="revocation_url" name="revocation_url" type="url"{Value(form, "revocation_url", c.RevocationUrl)}>
                    <label for="api_base_url">API base URL</label><input id="api_base_url" name="api_base_url" type="url"{Value(form, "api_base_url", c.ApiBaseUrl)}>
                    """);
            }

            fields.Append($"""
                <label for="client_id">Client ID</label><input id="client_id" name="client_id" type="text" required autocomplete="off"{Value(form, "client_id", p.ClientId)}>
                <label for="client_secret">Client secret <span class="muted">(leave empty to keep the current one)</span></label><input id="client_secret" name="client_secret" type="password" autocomplete="off">
                <label for="scopes">Default scopes <span class="muted">(separated by spaces)</span></label><input id="scopes" name="scopes" type="text"{Value(form, "scopes", string.Join(' ', p.Scopes))}>
                """);
        }
        else if (custom)
        {
            fields.Append($"<label for=\"api_base_url\">API base URL</label><input id=\"api_base_url\" name=\"api_base_url\" type=\"url\" required{Value(form, "api_base_url", c.ApiBaseUrl)}>");
            if (p.AuthMode == AuthModes.ApiKey)
            {
                fields.Append($"""
                    <label for="api_key_in">Send the key in</label><select id="api_key_in" name="api_key_in"><option value="header"{Selected(form, "api_key_in", "header", c.ApiKey?.In != "query")}>a header</option><option value="query"{Selected(form, "api_key_in", "query", c.ApiKey?.In == "query")}>a query parameter</option></select>
                    <label for="api_key_name">Header or parameter name</label><input id="api_key_name" name="api_key_name" type="text" required{Value(form, "api_key_name", c.ApiKey?.Name)}>
                    <label for="api_key_prefix">Prefix <span class="muted">(optional)</span></label><input id="api_key_prefix" name="api_key_prefix" type="text"{Value(form, "api_key_prefix", c.ApiKey?.Prefix ?? "")}>
                    """);
            }
            else if (p.AuthMode == AuthModes.AwsSigV4)
            {
                fields.Append($"""
                    <label for="aws_service">Service</label><input id="aws_service" name="aws_service" type="text" required{Value(form, "aws_service", c.Aws?.GetValueOrDefault("service"))}>
                    <label for="aws_region">Region</label><input id="aws_region" name="aws_region" type="text" required{Value(form, "aws_region", c.Aws?.GetValueOrDefault("region"))}>
                    <label for="aws_role_arn">Role ARN <span class="muted">(optional)</span></label><input id="aws_role_arn" name="aws_role_arn" type="text"{Value(form, "aws_role_arn", c.Aws?.GetValueOrDefault("role_arn") ?? "")}>
                    """);
            }
        }

        return Render(context, "/admin/providers", "Edit " + p.DisplayName, $"""
            <section class="card"><h2>{ProviderLogos.Avatar(p, p.DisplayName)} Edit {E(p.DisplayName)} <code>{E(p.Name)}</code></h2>{Errors(errors)}
            <p class="muted">{E(p.CatalogKey is null ? $"Custom {p.AuthMode} provider." : $"From the catalog entry {p.CatalogKey} ({p.AuthMode}); its endpoints come from the catalog.")} The name cannot change: connections refer to it.</p>
            <form method="post" action="/admin/providers/{E(Uri.EscapeDataString(p.Name))}">{AntiforgeryField(context)}{fields}
            <div class="actions"><button type="submit">Save changes</button><a class="button secondary" href="/admin/providers">Cancel</a></div></form></section>
            """, status);
    }

    private static async Task<IResult> UpdateProviderAsync(HttpContext context, string name, ProviderRegistry registry, ProviderRegistration registration,
        CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        if (await registry.FindAsync(name, ct) is not { } p)
        {
            return Error(context, "Not found", "There is no such provider.", StatusCodes.Status404NotFound);
        }

        // Only what the edit form shows for this provider; everything else keeps its value (PATCH /v1/providers/{name}).
        var request = EmptyRequest with { DisplayName = form["display_name"].ToString().Trim() };
        if (p.AuthMode == AuthModes.McpOAuth2)
        {
            request = request with { Scopes = Words(form["scopes"]), SendResource = form["send_resource"] == "true" };
            if (p.Config.Mcp?.IsClientCredentials == true)
            {
                var clientId = NullIfEmpty(form["client_id"]);
                request = request with
                {
                    ClientId = clientId == p.ClientId ? null : clientId ?? "",
                    ClientSecret = NullIfEmpty(form["client_secret"]),
                    PrivateKeyPem = NullIfEmpty(form["private_key_pem"]),
                };
            }

            // The same code as PATCH /v1/providers/{name} for this mode (ProviderRegistration hands it to McpProviders.UpdateAsync).
            var (changed, problem, _) = await registration.UpdateAsync(name, request, ct);
            return changed is not null ? Results.Redirect("/admin/providers")
                : await EditProviderPageAsync(context, name, registry, ProblemErrors(problem, "The MCP server could not be changed"), form, ct, 400);
        }

        if (p.AuthMode == AuthModes.OAuth2)
        {
            request = request with { ClientId = form["client_id"].ToString(), ClientSecret = NullIfEmpty(form["client_secret"]), Scopes = Words(form["scopes"]) };
            if (p.CatalogKey is null)
            {
                request = request with
                {
                    AuthorizationUrl = NullIfEmpty(form["authorization_url"]), TokenUrl = NullIfEmpty(form["token_url"]), RevocationUrl = NullIfEmpty(form["revocation_url"]),
                    ApiBaseUrl = NullIfEmpty(form["api_base_url"]),
                };
            }
        }
        else if (p.CatalogKey is null)
        {
            request = request with { ApiBaseUrl = NullIfEmpty(form["api_base_url"]) };
            if (p.AuthMode == AuthModes.ApiKey)
            {
                request = request with { ApiKey = new CatalogApiKey { In = form["api_key_in"].ToString(), Name = form["api_key_name"].ToString().Trim(), Prefix = NullIfEmpty(form["api_key_prefix"]) } };
            }
            else if (p.AuthMode == AuthModes.AwsSigV4)
            {
                request = request with { Aws = AwsFields(form, p.Config.Aws) };
            }
        }

        var (updated, failure, errors) = await registration.UpdateAsync(name, request, ct);
        return updated is not null ? Results.Redirect("/admin/providers")
            : await EditProviderPageAsync(context, name, registry, errors.Count > 0 ? errors : FailureErrors(failure), form, ct, 400);
    }

    private static async Task<IResult> DeleteProviderAsync(HttpContext context, string name, ProviderRegistry registry, CancellationToken ct)
    {
        return await registry.DeleteAsync(name, ct) switch
        {
            null => Error(context, "Not found", "There is no such provider.", StatusCodes.Status404NotFound),
            false => Error(context, "Provider in use", "Connections still use this provider. Revoke them first (that also revokes their tokens at the provider), then delete it.", StatusCodes.Status409Conflict),
            true => Results.Redirect("/admin/providers"),
        };
    }

    // ---- API keys -----------------------------------------------------------------------------------------------

    private static async Task<IResult> ApiKeysAsync(HttpContext context, ApiKeyStore store, string? created, Dictionary<string, string[]>? errors, IFormCollection? form, CancellationToken ct, int status = 200)
    {
        var rows = (await store.ListAsync(ct)).OrderByDescending(k => k.CreatedAt).Select(k => (k.IsRevoked, $"""
            <tr><td><strong>{E(k.Name)}</strong><br><code>{E(k.Id)}</code></td><td>{string.Join(", ", k.Workspaces.Select(w => $"<code>{E(w)}</code>"))}</td>
            <td>{(k.CanReadCredentials ? "read credentials + Bridge" : "Bridge only")}</td><td>{Status(k.IsRevoked)}</td>
            <td>{(k.IsRevoked ? "" : $"<a class=\"button secondary\" href=\"/admin/api-keys/{E(Uri.EscapeDataString(k.Id))}/revoke\">Revoke</a>")}</td></tr>
            """));
        return Render(context, "/admin/api-keys", "API keys", $"""
            {created}<section class="card"><h2>Gateway API keys</h2>{ActiveAndRevoked(["Key", "Workspaces", "May", "Status", "Actions"], rows, "No API keys yet.")}</section>
            <section class="card"><h2>Create an API key</h2>{Errors(errors)}
            <form method="post" action="/admin/api-keys">{AntiforgeryField(context)}
            <label for="name">Name</label><input id="name" name="name" type="text" required maxlength="200"{Value(form, "name")}>
            <label for="workspaces">Workspaces <span class="muted">(ids separated by spaces, or * for every workspace)</span></label><input id="workspaces" name="workspaces" type="text" required{Value(form, "workspaces")}>
            <div class="check"><input type="checkbox" id="bridge_only" name="bridge_only" value="true"{Checked(form, "bridge_only", "true", false)}><label for="bridge_only">Bridge only: may call APIs through the Bridge but never read a credential</label></div>
            <div class="actions"><button type="submit">Create key</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> CreateApiKeyAsync(HttpContext context, ApiKeyStore store, ApiKeyService apiKeys, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        var (key, secret, errors) = await apiKeys.CreateAsync(new ApiKeyRequest(form["name"], Words(form["workspaces"]), form["bridge_only"] != "true"), ct);
        if (key is null)
        {
            return await ApiKeysAsync(context, store, null, errors, form, ct, 400);
        }

        return await ApiKeysAsync(context, store, $"<section class=\"card\" aria-live=\"polite\"><h2>API key {E(key.Name)}</h2>{SecretBox("API key", "new-api-key", secret!)}</section>", null, null, ct);
    }

    private static async Task<IResult> RevokeApiKeyAsync(HttpContext context, string id, ApiKeyService apiKeys, CancellationToken ct)
    {
        switch (await apiKeys.FindAsync(id, ct))
        {
            case null:
                // Never "done" for nothing done: the administrator would believe it revoked.
                return Error(context, "Not found", "There is no such API key; nothing was revoked.", StatusCodes.Status404NotFound);
            case { IsRevoked: false } key:
                await apiKeys.RevokeAsync(key, ct);
                break;
        }

        return Results.Redirect("/admin/api-keys");
    }

    // ---- Webhooks -----------------------------------------------------------------------------------------------

    /// <summary>The deliveries the page shows per webhook, newest first (GET /v1/admin/webhooks/{id}/deliveries has the last 100).</summary>
    public const int DeliveriesShown = 5;

    /// <summary>
    /// The Webhooks tab. <paramref name="sent"/> (<c>test</c> or <c>again</c>, with the webhook and delivery it was
    /// about) is where a button's POST redirected to: the page says what was done, in words of its own (nothing from the
    /// query is shown but the ids of a webhook and delivery that exist).
    /// </summary>
    private static async Task<IResult> WebhooksAsync(HttpContext context, WebhookStore store, string? created, Dictionary<string, string[]>? errors, IFormCollection? form, CancellationToken ct,
        int status = 200, string? sent = null, string? sentWebhook = null, string? sentDelivery = null)
    {
        var rows = new List<string>();
        var hooks = await store.ListAsync(ct);
        foreach (var hook in hooks)
        {
            var id = E(Uri.EscapeDataString(hook.Id));
            var deliveries = await store.DeliveriesAsync(hook.Id, DeliveriesShown, ct);
            var log = deliveries.Count == 0 ? "<span class=\"muted\">none yet</span>" : string.Join("<br>", deliveries.Select(d =>
                $"<span class=\"delivery\" data-delivery=\"{E(d.Id)}\"><code>{E(d.Event)}</code> <span class=\"status {(d.Status == DeliveryStatus.Delivered ? "active" : d.Status == DeliveryStatus.Failed ? "failed" : "pending")}\">{E(d.Status)}</span> "
                + $"{d.Attempts} {(d.Attempts == 1 ? "attempt" : "attempts")}{(d.LastError is { } error ? $", last error <code>{E(error)}</code>" : d.LastStatusCode is { } code ? $", HTTP {code}" : "")}"
                + (d.Status == DeliveryStatus.Failed
                    ? " " + PostButton(context, $"/admin/webhooks/{id}/deliveries/{E(Uri.EscapeDataString(d.Id))}/retry", "Send again", $"Send {d.Event} delivery {d.Id} again")
                    : "")
                + "</span>"));
            rows.Add($"""
                <tr><td><code>{E(hook.Url)}</code><br><span class="muted">{E(hook.Id)}</span>{(hook.DisabledAt is { } paused ? $"<br><span class=\"status pending\">paused</span> <span class=\"muted\">since <time datetime=\"{paused:O}\">{paused:yyyy-MM-dd HH:mm}</time> UTC</span>" : "")}{(hook.PreviousSecretUntil is { } until ? $"<br><span class=\"muted\">the previous secret signs too until <time datetime=\"{until:O}\">{until:yyyy-MM-dd HH:mm}</time> UTC</span>" : "")}</td><td>{string.Join(" ", hook.Events.Select(e => $"<code>{E(e)}</code>"))}</td>
                <td>{E(hook.WorkspaceId ?? "all workspaces")}</td><td>{log}</td>
                <td>{(hook.DisabledAt is null
                    ? PostButton(context, $"/admin/webhooks/{id}/test", "Send test event", $"Send a test event to {hook.Url}") + " " + PostButton(context, $"/admin/webhooks/{id}/pause", "Pause", $"Pause {hook.Url}")
                    : PostButton(context, $"/admin/webhooks/{id}/resume", "Resume", $"Resume {hook.Url}"))} {PostButton(context, $"/admin/webhooks/{id}/secret", "New secret", $"Give {hook.Url} a new signing secret")} <a class="button secondary" href="/admin/webhooks/{id}/delete">Delete</a></td></tr>
                """);
        }

        var target = hooks.FirstOrDefault(h => h.Id == sentWebhook);
        // Said only of a delivery that exists: a crafted link (?sent=test&webhook=…) does not announce a test nobody sent.
        var named = target is not null && sentDelivery is not null ? await store.FindDeliveryAsync(target.Id, sentDelivery, ct) : null;
        var resent = sent == "again" ? named : null;
        var outcome = target is null ? "" : sent switch
        {
            "test" when named?.Event == WebhookEvents.Test => $"""
                <section class="card" role="status" id="webhook-outcome"><h2>Test event queued</h2><p>A <code>{E(WebhookEvents.Test)}</code> event is on its way to <code>{E(target.Url)}</code> (to no other webhook).
                Nexus sends it in the background; reload this page to see its delivery below.</p></section>
                """,
            "again" when resent is not null => $"""
                <section class="card" role="status" id="webhook-outcome"><h2>Delivery sent again</h2><p>The <code>{E(resent.Event)}</code> delivery <code>{E(resent.Id)}</code> is due now at <code>{E(target.Url)}</code>
                (a failed one with a new retry schedule). Its attempts keep counting, so the log shows every attempt made; reload this page to see how it went.</p></section>
                """,
            _ => "",
        };
        var events = string.Concat(WebhookEvents.All.Where(e => e != WebhookEvents.Test).Select((e, i) =>
            $"<div class=\"check\"><input type=\"checkbox\" id=\"event-{i}\" name=\"events\" value=\"{E(e)}\"{Checked(form, "events", e, true)}><label for=\"event-{i}\"><code>{E(e)}</code></label></div>"));
        return Render(context, "/admin/webhooks", "Webhooks", $"""
            {outcome}{created}<section class="card"><h2>Webhooks</h2>{Table(["Endpoint", "Events", "Scope", "Recent deliveries", "Actions"], rows, "No webhooks yet.")}</section>
            <section class="card"><h2>Add a webhook</h2>{Errors(errors)}
            <form method="post" action="/admin/webhooks">{AntiforgeryField(context)}
            <label for="url">Endpoint URL</label><input id="url" name="url" type="url" required placeholder="https://app.example.com/hooks/nexus"{Value(form, "url")}>
            <label for="workspace_id">Workspace <span class="muted">(optional; empty for every workspace)</span></label><input id="workspace_id" name="workspace_id" type="text"{Value(form, "workspace_id")}>
            <fieldset><legend>Events</legend>{events}</fieldset>
            <div class="actions"><button type="submit">Add webhook</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> CreateWebhookAsync(HttpContext context, WebhookStore store, WebhookRegistration registration, CancellationToken ct)
    {
        var form = ProtectedForm.Of(context);

        var request = new WebhookRequest(form["url"], form["events"].Where(e => !string.IsNullOrEmpty(e)).Select(e => e!).ToArray(), NullIfEmpty(form["workspace_id"]));
        var (webhook, secret, errors) = await registration.CreateAsync(request, ct);
        if (webhook is null)
        {
            return await WebhooksAsync(context, store, null, errors, form, ct, 400);
        }

        return await WebhooksAsync(context, store, $"<section class=\"card\" aria-live=\"polite\"><h2>Webhook added</h2>{SecretBox("Signing secret", "new-webhook-secret", secret!, WebhookSecretHelp)}</section>", null, null, ct);
    }

    private const string WebhookSecretHelp = "Copy it now: Nexus keeps it encrypted to sign deliveries and will not show it again.";

    private static async Task<IResult> PauseWebhookAsync(HttpContext context, string id, bool pause, WebhookRegistration registration, CancellationToken ct) =>
        (await registration.UpdateAsync(id, new WebhookUpdate(null, null, pause), ct)).Webhook is null
            ? Error(context, "Not found", "There is no such webhook.", StatusCodes.Status404NotFound)
            : Results.Redirect("/admin/webhooks");

    /// <summary>A new signing secret, shown once; the replaced one signs beside it for a day (WebhookRegistration.DefaultOverlap).</summary>
    private static async Task<IResult> RotateWebhookSecretAsync(HttpContext context, string id, WebhookStore store, WebhookRegistration registration, CancellationToken ct)
    {
        var (webhook, secret, _) = await registration.RotateSecretAsync(id, new WebhookSecretRotation(null), ct);
        if (webhook is null)
        {
            return Error(context, "Not found", "There is no such webhook.", StatusCodes.Status404NotFound);
        }

        return await WebhooksAsync(context, store, $"""
            <section class="card" aria-live="polite"><h2>New signing secret</h2><p>For <code>{E(webhook.Url)}</code>. Until
            <time datetime="{webhook.PreviousSecretUntil:O}">{webhook.PreviousSecretUntil:yyyy-MM-dd HH:mm}</time> UTC each delivery is signed with both this secret and the previous one, so the receiver can switch to it without missing one.</p>
            {SecretBox("Signing secret", "new-webhook-secret", secret!, WebhookSecretHelp)}</section>
            """, null, null, ct);
    }

    private static async Task<IResult> DeleteWebhookAsync(HttpContext context, string id, WebhookStore store, CancellationToken ct)
    {
        return await store.DeleteAsync(id, ct)
            ? Results.Redirect("/admin/webhooks")
            : Error(context, "Not found", "There is no such webhook; nothing was deleted.", StatusCodes.Status404NotFound);
    }

    private static async Task<IResult> SendTestEventAsync(HttpContext context, string id, WebhookDeliveryService deliveries, CancellationToken ct) =>
        await deliveries.SendTestAsync(id, ct) switch
        {
            (ResendOutcome.Queued, { } delivery) => Results.Redirect($"/admin/webhooks?sent=test&webhook={Uri.EscapeDataString(id)}&delivery={Uri.EscapeDataString(delivery)}"),
            (ResendOutcome.Paused, _) => Error(context, "Webhook paused", "This webhook is paused: nothing is sent to it. Resume it first.", StatusCodes.Status409Conflict),
            _ => Error(context, "Not found", "There is no such webhook.", StatusCodes.Status404NotFound),
        };

    private static async Task<IResult> SendAgainAsync(HttpContext context, string id, string deliveryId, WebhookDeliveryService deliveries, CancellationToken ct)
    {
        var resend = await deliveries.ResendAsync(id, deliveryId, ct);
        return resend.Outcome switch
        {
            ResendOutcome.Queued => Results.Redirect($"/admin/webhooks?sent=again&webhook={Uri.EscapeDataString(id)}&delivery={Uri.EscapeDataString(deliveryId)}"),
            ResendOutcome.AlreadyDelivered => Error(context, "Already delivered", "This delivery reached its receiver already; Nexus does not send it twice.", StatusCodes.Status409Conflict),
            ResendOutcome.Paused => Error(context, "Webhook paused", "This webhook is paused: nothing is sent to it. Resume it first.", StatusCodes.Status409Conflict),
            _ => Error(context, "Not found", "This webhook has no such delivery.", StatusCodes.Status404NotFound),
        };
    }

    // ---- Audit log ----------------------------------------------------------------------------------------------

    private static async Task<IResult> AuditAsync(HttpContext context, string? workspace_id, string? connection_id, string? @event, AuditLog audit, CancellationToken ct)
    {
        var events = await audit.QueryAsync(NullIfEmpty(workspace_id), NullIfEmpty(connection_id), NullIfEmpty(@event), 200, ct);
        var rows = events.Select(e => $"""
            <tr class="has-detail"><td><time datetime="{e.At:O}">{e.At:yyyy-MM-dd HH:mm:ss}</time></td><td><code>{E(e.Event)}</code></td><td>{E(e.Actor)}</td>
            <td>{E(e.WorkspaceId)}</td><td><code>{E(e.ConnectionId)}</code></td></tr>
            <tr class="detail-row"><td colspan="5"><span class="muted">Detail</span> <code class="detail">{E(e.Detail.ToString())}</code></td></tr>
            """);
        var options = string.Concat(AuditEvents.All.Prepend("").Select(e => $"<option value=\"{E(e)}\"{(e == @event ? " selected" : "")}>{(e.Length == 0 ? "any event" : E(e))}</option>"));
        return Render(context, "/admin/audit", "Audit log", $"""
            <section class="card"><h2>Audit log</h2>
            <form method="get" action="/admin/audit" class="filters">
            <label for="workspace_id">Workspace</label><input id="workspace_id" name="workspace_id" type="text" value="{E(workspace_id)}">
            <label for="connection_id">Connection</label><input id="connection_id" name="connection_id" type="text" value="{E(connection_id)}">
            <label for="event">Event</label><select id="event" name="event">{options}</select>
            <div class="actions"><button type="submit">Filter</button><a class="button secondary" href="/admin/audit">Clear</a></div></form>
            {Table(["When", "Event", "Actor", "Workspace", "Connection"], rows, "No events match.", "audit")}</section>
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
