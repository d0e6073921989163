using System.Text.Json;
using System.Text.RegularExpressions;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Hosting;

namespace Nexus.Server.Providers;

/// <summary>
/// Contract of POST and PATCH /v1/providers. Either <c>catalog</c> names a catalog entry (then only name,
/// display_name, client_id, client_secret, scopes and placeholders apply), or the fields define a custom provider:
/// <c>issuer</c> (OpenID Connect discovery) and/or explicit <c>authorization_url</c> + <c>token_url</c>.
/// </summary>
internal sealed record ProviderRequest(
    string? Name,
    string? Catalog,
    string? DisplayName,
    string? AuthMode,
    string? Issuer,
    string? AuthorizationUrl,
    string? TokenUrl,
    string? RevocationUrl,
    string? UserinfoUrl,
    string? ApiBaseUrl,
    string? ClientId,
    string? ClientSecret,
    string[]? Scopes,
    JsonElement? Pkce,
    string? TokenEndpointAuth,
    string? TokenRequestFormat,
    string? RevocationFormat,
    string? ScopeSeparator,
    Dictionary<string, string>? AuthorizationParams,
    Dictionary<string, string>? TokenRequestHeaders,
    Dictionary<string, string>? Placeholders,
    bool? RefreshSupported,
    CatalogApiKey? ApiKey = null,
    Dictionary<string, string>? Aws = null,
    JsonElement? CredentialSchema = null,
    CatalogVerify? Verify = null,
    int? RefreshMarginSeconds = null,
    string? McpUrl = null,
    bool? SendResource = null,
    string? GrantType = null,
    string? PrivateKeyPem = null);

internal sealed record ProviderResponse(
    string Name,
    string? Catalog,
    string DisplayName,
    string AuthMode,
    string? Issuer,
    string AuthorizationUrl,
    string TokenUrl,
    string? RevocationUrl,
    string? UserinfoUrl,
    string? ApiBaseUrl,
    string ClientId,
    bool HasClientSecret,
    IReadOnlyList<string> Scopes,
    string Pkce,
    string TokenEndpointAuth,
    string TokenRequestFormat,
    string RevocationFormat,
    string ScopeSeparator,
    IReadOnlyDictionary<string, string> AuthorizationParams,
    IReadOnlyDictionary<string, string> TokenRequestHeaders,
    IReadOnlyDictionary<string, string> Placeholders,
    bool RefreshSupported,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    CatalogApiKey? ApiKey,
    IReadOnlyDictionary<string, string>? Aws,
    System.Text.Json.Nodes.JsonObject? CredentialSchema,
    int? RefreshMarginSeconds = null,
    McpServerConfig? Mcp = null)
{
    /// <summary>The per-connection values the URLs still need (issue 17): what connection_config takes, or what is captured after consent.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, CatalogPlaceholder>? ConnectionConfigSchema { get; init; }

    /// <summary>Everything but the client secret, which is never returned.</summary>
    public static ProviderResponse From(Provider p) => new(
        p.Name, p.CatalogKey, p.DisplayName, p.AuthMode, p.Config.Issuer, p.Config.AuthorizationUrl, p.Config.TokenUrl, p.Config.RevocationUrl,
        p.Config.UserinfoUrl, p.Config.ApiBaseUrl, p.ClientId, p.ClientSecret is not null, p.Scopes, p.Config.Pkce, p.Config.TokenEndpointAuth,
        p.Config.TokenRequestFormat, p.Config.RevocationFormat, p.Config.ScopeSeparator, p.Config.AuthorizationParams, p.Config.TokenRequestHeaders,
        p.Placeholders, p.Config.RefreshSupported, p.CreatedAt, p.UpdatedAt, p.Config.ApiKey, p.Config.Aws, p.Config.CredentialSchema, p.Config.RefreshMarginSeconds, p.Config.Mcp)
    {
        ConnectionConfigSchema = p.Config.ConnectionPlaceholders,
    };
}

/// <summary>/v1/providers (admin API key): register the OAuth apps Nexus connects users through.</summary>
internal static class ProvidersAdminEndpoints
{
    private const int MaxScopes = 100;

    /// <summary>Headers Nexus sets itself or that would change the meaning of the token request.</summary>
    private static readonly HashSet<string> ReservedHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Authorization", "Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection", "Cookie",
    };

    /// <summary>Authorization parameters that the broker owns; letting a registration override them would break the flow.</summary>
    private static readonly HashSet<string> ReservedAuthorizationParams = new(StringComparer.Ordinal)
    {
        "response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method",
    };

    public static void MapProvidersAdmin(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/providers").RequireAdminApiKey().WithTags("Providers");
        group.MapPost("", CreateAsync);
        group.MapGet("", ListAsync);
        group.MapGet("/{name}", GetAsync);
        group.MapPatch("/{name}", UpdateAsync);
        group.MapDelete("/{name}", DeleteAsync);
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, ProviderRegistry registry, ProviderCatalog catalog, OidcDiscovery discovery,
        UpstreamPolicy policy, TimeProvider time, IEnumerable<IProviderModeHandler> handlers, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<ProviderRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        if (handlers.FirstOrDefault(h => h.AuthMode == body!.AuthMode) is { } handler)
        {
            // E.g. an MCP server given by URL alone: discovered and registered by RemoteMcp, not described here.
            var (found, foundFailure) = await handler.RegisterAsync(body!, ct);
            return foundFailure ?? TypedResults.Created($"/v1/providers/{found!.Name}", ProviderResponse.From(found));
        }

        var (provider, failure, _) = await RegisterAsync(body!, registry, catalog, discovery, policy, time, ct);
        return failure ?? TypedResults.Created($"/v1/providers/{provider!.Name}", ProviderResponse.From(provider));
    }

    /// <summary>Validates and registers a provider; shared by the admin API and the dashboard. On failure, the problem to answer and the field errors.</summary>
    public static async Task<(Provider? Provider, IResult? Failure, Dictionary<string, string[]> Errors)> RegisterAsync(ProviderRequest body, ProviderRegistry registry,
        ProviderCatalog catalog, OidcDiscovery discovery, UpstreamPolicy policy, TimeProvider time, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (!ProviderNames.IsValid(body.Name))
        {
            errors["name"] = ["Give the provider a name of 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter or digit."];
        }

        if (body.McpUrl is not null || body.SendResource is not null || body.GrantType is not null || body.PrivateKeyPem is not null)
        {
            errors[body.McpUrl is not null ? "mcp_url" : body.SendResource is not null ? "send_resource" : body.GrantType is not null ? "grant_type" : "private_key_pem"] =
                ["mcp_url, send_resource, grant_type and private_key_pem belong to auth_mode \"mcp_oauth2\" (an MCP server registered by its URL)."];
        }

        // Only OAuth providers have a client of Nexus's own; the other modes carry the user's credential instead.
        var mode = body.Catalog is not null ? catalog.Find(body.Catalog)?.AuthMode ?? AuthModes.OAuth2 : body.AuthMode ?? AuthModes.OAuth2;
        if (mode == AuthModes.OAuth2 && string.IsNullOrWhiteSpace(body.ClientId))
        {
            errors["client_id"] = ["client_id is required: the OAuth client id registered at the provider."];
        }

        // A public client (token_endpoint_auth none, RFC 6749 §2.1) has no secret; every other OAuth client has one.
        var isPublic = (body.Catalog is not null ? catalog.Find(body.Catalog)?.TokenEndpointAuth : body.TokenEndpointAuth) == ClientAuthMethods.None;
        if (mode == AuthModes.OAuth2 && !isPublic && string.IsNullOrEmpty(body.ClientSecret))
        {
            errors["client_secret"] = ["client_secret is required: the OAuth client secret registered at the provider (or token_endpoint_auth \"none\" for a public client)."];
        }

        if (isPublic && body.ClientSecret is not null)
        {
            errors["client_secret"] = ["A public client (token_endpoint_auth \"none\") has no client_secret; Nexus uses PKCE S256 and sends only client_id."];
        }

        var resolved = await ResolveAsync(body, null, catalog, discovery, policy, errors, ct);
        if (resolved.Error is not null)
        {
            return (null, resolved.Error, errors);
        }

        if (errors.Count > 0)
        {
            return (null, Problems.Validation(errors), errors);
        }

        var now = time.GetUtcNow();
        var provider = new Provider(body.Name!, body.Catalog, resolved.DisplayName!, resolved.AuthMode!, resolved.Config!, resolved.Placeholders!,
            body.ClientId?.Trim() ?? "", string.IsNullOrEmpty(body.ClientSecret) ? null : registry.EncryptSecret(body.Name!, body.ClientSecret), resolved.Scopes!, now, now);
        if (!await registry.CreateAsync(provider, ct))
        {
            errors["name"] = [$"A provider named '{body.Name}' already exists."];
            return (null, Problems.Create(ProblemCatalog.ProviderExists,
                "Choose another name, or change the existing provider with PATCH /v1/providers/{name}.", title: $"A provider named '{body.Name}' already exists."), errors);
        }

        return (provider, null, errors);
    }

    private static async Task<IResult> ListAsync(ProviderRegistry registry, CancellationToken ct) =>
        TypedResults.Ok(new { providers = (await registry.ListAsync(ct)).Select(ProviderResponse.From) });

    private static async Task<IResult> GetAsync(string name, ProviderRegistry registry, CancellationToken ct) =>
        await registry.FindAsync(name, ct) is { } provider ? TypedResults.Ok(ProviderResponse.From(provider)) : Problems.NotFound("Provider");

    private static async Task<IResult> UpdateAsync(string name, HttpRequest request, ProviderRegistry registry, ProviderCatalog catalog,
        OidcDiscovery discovery, UpstreamPolicy policy, IEnumerable<IProviderModeHandler> handlers, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<ProviderRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        if (await registry.FindAsync(name, ct) is { } found && handlers.FirstOrDefault(h => h.AuthMode == found.AuthMode) is { } handler)
        {
            return await handler.UpdateAsync(found, body!, ct);
        }

        var (updated, failure, _) = await UpdateProviderAsync(name, body!, registry, catalog, discovery, policy, ct);
        return failure ?? TypedResults.Ok(ProviderResponse.From(updated!));
    }

    /// <summary>
    /// Validates and applies a change to a provider (the PATCH semantics: absent fields keep their value); shared by the
    /// admin API and the dashboard. On failure, the problem to answer and the field errors.
    /// </summary>
    public static async Task<(Provider? Provider, IResult? Failure, Dictionary<string, string[]> Errors)> UpdateProviderAsync(string name, ProviderRequest body,
        ProviderRegistry registry, ProviderCatalog catalog, OidcDiscovery discovery, UpstreamPolicy policy, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        var existing = await registry.FindAsync(name, ct);
        if (existing is null)
        {
            return (null, Problems.NotFound("Provider"), errors);
        }

        if (existing.AuthMode == AuthModes.McpOAuth2)
        {
            errors["auth_mode"] = ["An MCP server provider is changed with PATCH /v1/providers/{name} (display_name, scopes, send_resource)."];
            return (null, Problems.Validation(errors), errors);
        }

        if (body.Name is not null && body.Name != name)
        {
            errors["name"] = ["A provider cannot be renamed: connections refer to it by name."];
        }

        if (body.Catalog is not null && body.Catalog != existing.CatalogKey)
        {
            errors["catalog"] = ["The catalog entry of a provider cannot be changed; register a new provider instead."];
        }

        if (body.ClientId is not null && string.IsNullOrWhiteSpace(body.ClientId))
        {
            errors["client_id"] = ["client_id may not be empty."];
        }

        if (body.ClientSecret is { Length: 0 })
        {
            errors["client_secret"] = ["client_secret may not be empty; leave it out to keep the current one."];
        }

        // A PATCH of a catalog provider re-resolves the catalog entry with the merged placeholders.
        var merged = body with
        {
            Catalog = existing.CatalogKey,
            Placeholders = existing.CatalogKey is null ? body.Placeholders : Merge(existing.Placeholders, body.Placeholders),
            DisplayName = body.DisplayName ?? existing.DisplayName,
            Scopes = body.Scopes ?? [.. existing.Scopes],
        };
        var resolved = await ResolveAsync(merged, existing, catalog, discovery, policy, errors, ct);
        if (resolved.Error is not null)
        {
            return (null, resolved.Error, errors);
        }

        if (errors.Count > 0)
        {
            return (null, Problems.Validation(errors), errors);
        }

        var updated = existing with
        {
            DisplayName = resolved.DisplayName!,
            Config = resolved.Config!,
            Placeholders = resolved.Placeholders!,
            Scopes = resolved.Scopes!,
            ClientId = body.ClientId?.Trim() ?? existing.ClientId,
            // A provider made a public client forgets its secret: it is never sent again.
            ClientSecret = resolved.Config!.TokenEndpointAuth == ClientAuthMethods.None ? null
                : body.ClientSecret is { } secret ? registry.EncryptSecret(name, secret) : existing.ClientSecret,
        };
        await registry.UpdateAsync(updated, ct);
        return ((await registry.FindAsync(name, ct))!, null, errors);
    }

    private static async Task<IResult> DeleteAsync(string name, ProviderRegistry registry, CancellationToken ct) =>
        await registry.DeleteAsync(name, ct) switch
        {
            null => Problems.NotFound("Provider"),
            false => Problems.Create(ProblemCatalog.ProviderInUse,
                "Delete its connections first (DELETE /v1/connections/{id}); that also revokes their tokens at the provider."),
            true => TypedResults.NoContent(),
        };

    private sealed record Resolution(IResult? Error, ProviderConfig? Config, string? DisplayName, Dictionary<string, string>? Placeholders, string[]? Scopes, string? AuthMode = AuthModes.OAuth2);

    /// <summary>Turns a request (and, for PATCH, the stored provider) into a resolved configuration, or field errors.</summary>
    private static async Task<Resolution> ResolveAsync(ProviderRequest body, Provider? existing, ProviderCatalog catalog, OidcDiscovery discovery,
        UpstreamPolicy policy, Dictionary<string, string[]> errors, CancellationToken ct)
    {
        string[]? scopes = null;
        if (body.Scopes is not null)
        {
            if (body.Scopes.Length > MaxScopes || body.Scopes.Any(s => s is null || !ScopeSyntax.IsValidToken(s)))
            {
                errors["scopes"] = [$"At most {MaxScopes} scopes, each 1 to 200 printable ASCII characters without spaces, quotes or backslashes (RFC 6749 §3.3)."];
            }
            else
            {
                scopes = body.Scopes.Distinct(StringComparer.Ordinal).ToArray();
            }
        }

        if (body.DisplayName is not null && (string.IsNullOrWhiteSpace(body.DisplayName) || body.DisplayName.Length > 200))
        {
            errors["display_name"] = ["display_name must be 1 to 200 characters."];
        }

        if (body.RefreshMarginSeconds is < 0 or > 86_400)
        {
            errors["refresh_margin_seconds"] = ["refresh_margin_seconds is 0 to 86400: how long before expiry this provider's tokens are refreshed (default Nexus:Refresh:MarginSeconds)."];
        }

        var resolved = body.Catalog is not null
            ? ResolveCatalog(body, catalog, policy, scopes, errors)
            : await ResolveCustomAsync(body, existing, discovery, policy, scopes, errors, ct);
        // The refresh margin is this deployment's choice, not the provider's protocol, so catalog providers take it too.
        return resolved.Config is null ? resolved
            : resolved with { Config = resolved.Config with { RefreshMarginSeconds = body.RefreshMarginSeconds ?? existing?.Config.RefreshMarginSeconds } };
    }

    private static Resolution ResolveCatalog(ProviderRequest body, ProviderCatalog catalog, UpstreamPolicy policy, string[]? scopes, Dictionary<string, string[]> errors)
    {
        var entry = catalog.Find(body.Catalog!);
        if (entry is null)
        {
            errors["catalog"] = [$"'{body.Catalog}' is not in the provider catalog; GET /v1/catalog lists the entries."];
            return new(null, null, null, null, null);
        }

        // The catalog fixes the protocol; a registration may only choose its own app's values.
        foreach (var (field, value) in new (string, object?)[]
        {
            ("auth_mode", body.AuthMode), ("issuer", body.Issuer), ("authorization_url", body.AuthorizationUrl), ("token_url", body.TokenUrl),
            ("revocation_url", body.RevocationUrl), ("userinfo_url", body.UserinfoUrl), ("api_base_url", body.ApiBaseUrl), ("pkce", body.Pkce),
            ("token_endpoint_auth", body.TokenEndpointAuth), ("token_request_format", body.TokenRequestFormat), ("revocation_format", body.RevocationFormat),
            ("scope_separator", body.ScopeSeparator), ("authorization_params", body.AuthorizationParams), ("token_request_headers", body.TokenRequestHeaders),
            ("refresh_supported", body.RefreshSupported), ("api_key", body.ApiKey), ("aws", body.Aws), ("credential_schema", body.CredentialSchema), ("verify", body.Verify),
        })
        {
            if (value is not null)
            {
                errors[field] = ["Catalog providers take this from the catalog; register a custom provider (without 'catalog') to set it."];
            }
        }

        var declared = entry.Placeholders ?? [];
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, placeholder) in declared)
        {
            if (placeholder.Default is not null)
            {
                values[name] = placeholder.Default;
            }
        }

        foreach (var (name, value) in body.Placeholders ?? [])
        {
            if (!declared.TryGetValue(name, out var placeholder))
            {
                errors[$"placeholders.{name}"] = [$"'{body.Catalog}' has no placeholder '{name}'; it has: {(declared.Count == 0 ? "none" : string.Join(", ", declared.Keys))}."];
            }
            else if (value is null || !Regex.IsMatch(value, placeholder.Pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)))
            {
                errors[$"placeholders.{name}"] = [$"Must match {placeholder.Pattern}: {placeholder.Description}"];
            }
            else
            {
                values[name] = value;
            }
        }

        string? Fill(string? template, string field, bool required)
        {
            if (template is null)
            {
                return null;
            }

            var missing = new List<string>();
            var filled = ProviderCatalog.PlaceholderPattern().Replace(template, m =>
            {
                if (values.TryGetValue(m.Groups[1].Value, out var v))
                {
                    // Values already matched the placeholder's anchored pattern, which admits no URL syntax of its own.
                    return v;
                }

                if (m.Value == ProviderCatalog.ReservedClientId && field == "revocation_url")
                {
                    // Filled with the client id when revoking, so a PATCH of client_id needs nothing else.
                    return m.Value;
                }

                missing.Add(m.Groups[1].Value);
                return m.Value;
            });
            if (required && missing.Count > 0)
            {
                // Per-connection values (issue 17) are filled for each connection, not here.
                foreach (var name in missing.Where(n => !declared[n].PerConnection))
                {
                    errors[$"placeholders.{name}"] = [$"{field} needs the placeholder '{name}': {declared[name].Description}"];
                }
            }

            return filled;
        }

        if (entry.AuthMode != AuthModes.OAuth2)
        {
            // A credential provider: the user brings the secret; Nexus needs where the API is and how to apply it.
            foreach (var (field, value) in new (string, string?)[] { ("client_id", body.ClientId), ("client_secret", body.ClientSecret) })
            {
                if (value is not null)
                {
                    errors[field] = [$"'{body.Catalog}' uses {entry.AuthMode}: there is no OAuth client; each user brings their own credential."];
                }
            }

            var apiBase = Fill(entry.ApiBaseUrl, "api_base_url", true);
            var credentialConfig = new ProviderConfig
            {
                ApiBaseUrl = apiBase,
                ApiKey = entry.ApiKey,
                Aws = entry.Aws?.ToDictionary(a => a.Key, a => Fill(a.Value, "aws." + a.Key, true)!),
                CredentialSchema = entry.CredentialSchema is { } schema ? System.Text.Json.Nodes.JsonNode.Parse(schema.GetRawText())!.AsObject() : CredentialSchemas.Default(entry.AuthMode),
                Verify = entry.Verify,
                RefreshSupported = false,
            };
            if (apiBase is not null && !errors.Keys.Any(k => k.StartsWith("placeholders.", StringComparison.Ordinal)) && policy.Check(apiBase) is { } baseProblem)
            {
                errors["api_base_url"] = [$"api_base_url {baseProblem}"];
            }

            if (entry.AuthMode == AuthModes.AwsSigV4 && credentialConfig.Aws is { } filledAws && !errors.Keys.Any(k => k.StartsWith("placeholders.", StringComparison.Ordinal)))
            {
                AddAwsRoleErrors(filledAws, policy, errors);
            }

            return new(null, credentialConfig, body.DisplayName ?? entry.DisplayName, values, scopes ?? [], entry.AuthMode);
        }

        var config = new ProviderConfig
        {
            AuthorizationUrl = Fill(entry.AuthorizationUrl, "authorization_url", true)!,
            TokenUrl = Fill(entry.TokenUrl, "token_url", true)!,
            RevocationUrl = Fill(entry.RevocationUrl, "revocation_url", true),
            UserinfoUrl = Fill(entry.UserinfoUrl, "userinfo_url", true),
            // api_base_url may keep placeholders that come from the token response (Salesforce's instance).
            ApiBaseUrl = Fill(entry.ApiBaseUrl, "api_base_url", false),
            Pkce = entry.Pkce!,
            TokenEndpointAuth = entry.TokenEndpointAuth!,
            TokenRequestFormat = entry.TokenRequestFormat ?? TokenRequestFormats.Form,
            RevocationFormat = entry.RevocationFormat ?? RevocationFormats.Rfc7009,
            RefreshUrl = Fill(entry.RefreshUrl, "refresh_url", true),
            ClientIdParam = entry.ClientIdParam,
            ApiAuthScheme = entry.ApiAuthScheme,
            ApiRequestHeaders = entry.ApiRequestHeaders is null ? null : new Dictionary<string, string>(entry.ApiRequestHeaders),
            ScopeSeparator = entry.ScopeSeparator ?? " ",
            AuthorizationParams = new Dictionary<string, string>(entry.AuthorizationParams ?? []),
            TokenRequestHeaders = new Dictionary<string, string>(entry.TokenRequestHeaders ?? []),
            RefreshSupported = entry.Refresh?.Supported ?? false,
            Metadata = entry.Metadata,
            // Placeholders in a resource's scopes and base URL: the registration's values now, a connection's at use.
            Resources = entry.Resources?.ToDictionary(r => r.Key, r => r.Value with
            {
                Scopes = [.. r.Value.Scopes.Select((scope, i) => Fill(scope, $"resources.{r.Key}.scopes[{i}]", false)!)],
                ApiBaseUrl = Fill(r.Value.ApiBaseUrl, $"resources.{r.Key}.api_base_url", false),
            }),
        };
        var perConnection = declared.Where(d => d.Value.PerConnection && !values.ContainsKey(d.Key)).ToDictionary(d => d.Key, d => d.Value);
        config = config with { ConnectionPlaceholders = perConnection.Count > 0 ? perConnection : null };
        foreach (var (field, url) in new[] { ("authorization_url", config.AuthorizationUrl), ("token_url", config.TokenUrl), ("revocation_url", config.RevocationUrl), ("userinfo_url", config.UserinfoUrl), ("refresh_url", config.RefreshUrl) })
        {
            if (url is not null && !errors.Keys.Any(k => k.StartsWith("placeholders.", StringComparison.Ordinal)) && !url.Contains('{', StringComparison.Ordinal)
                && policy.Check(url) is { } problem)
            {
                errors[field] = [$"{field} {problem}"];
            }
        }

        return new(null, config, body.DisplayName ?? entry.DisplayName, values, scopes ?? entry.DefaultScopes ?? []);
    }

    private static async Task<Resolution> ResolveCustomAsync(ProviderRequest body, Provider? existing, OidcDiscovery discovery, UpstreamPolicy policy,
        string[]? scopes, Dictionary<string, string[]> errors, CancellationToken ct)
    {
        if (body.AuthMode is not null && !AuthModes.All.Contains(body.AuthMode))
        {
            errors["auth_mode"] = [$"auth_mode is one of {string.Join(", ", AuthModes.All)} or {AuthModes.McpOAuth2}."];
            return new(null, null, null, null, null);
        }

        if ((body.AuthMode ?? existing?.AuthMode) is { } credentialMode && credentialMode != AuthModes.OAuth2)
        {
            return ResolveCustomCredentialProvider(body, existing, credentialMode, policy, errors);
        }

        if (body.Placeholders is { Count: > 0 })
        {
            errors["placeholders"] = ["Placeholders belong to catalog providers; write the values into the URLs of a custom provider."];
        }

        var config = existing?.Config ?? new ProviderConfig();
        if (body.Issuer is not null)
        {
            var (endpoints, problem) = await discovery.DiscoverAsync(body.Issuer, ct);
            if (endpoints is null)
            {
                return new(Problems.Create(ProblemCatalog.DiscoveryFailed, problem), null, null, null, null);
            }

            config = config with
            {
                Issuer = body.Issuer.TrimEnd('/'),
                AuthorizationUrl = endpoints.AuthorizationUrl,
                TokenUrl = endpoints.TokenUrl,
                RevocationUrl = endpoints.RevocationUrl,
                UserinfoUrl = endpoints.UserinfoUrl,
                Pkce = endpoints.SupportsS256 ? PkceModes.Supported : PkceModes.Unsupported,
                TokenEndpointAuth = endpoints.TokenEndpointAuth ?? ClientAuthMethods.Basic,
                AuthorizationResponseIss = endpoints.AuthorizationResponseIss,
            };
        }

        string? pkce = null;
        if (body.Pkce is { } p)
        {
            pkce = p.ValueKind switch
            {
                JsonValueKind.True => PkceModes.Supported,
                JsonValueKind.False => PkceModes.Unsupported,
                JsonValueKind.String when p.GetString() is PkceModes.Required or PkceModes.Supported or PkceModes.Unsupported => p.GetString(),
                _ => null,
            };
            if (pkce is null)
            {
                errors["pkce"] = ["pkce is true, false, \"required\", \"supported\" or \"unsupported\"."];
            }
        }

        config = config with
        {
            AuthorizationUrl = body.AuthorizationUrl ?? config.AuthorizationUrl,
            TokenUrl = body.TokenUrl ?? config.TokenUrl,
            RevocationUrl = body.RevocationUrl ?? config.RevocationUrl,
            UserinfoUrl = body.UserinfoUrl ?? config.UserinfoUrl,
            ApiBaseUrl = body.ApiBaseUrl ?? config.ApiBaseUrl,
            Pkce = pkce ?? config.Pkce,
            TokenEndpointAuth = body.TokenEndpointAuth ?? config.TokenEndpointAuth,
            TokenRequestFormat = body.TokenRequestFormat ?? config.TokenRequestFormat,
            RevocationFormat = body.RevocationFormat ?? config.RevocationFormat,
            ScopeSeparator = body.ScopeSeparator ?? config.ScopeSeparator,
            AuthorizationParams = body.AuthorizationParams ?? config.AuthorizationParams,
            TokenRequestHeaders = body.TokenRequestHeaders ?? config.TokenRequestHeaders,
            RefreshSupported = body.RefreshSupported ?? config.RefreshSupported,
        };

        if (string.IsNullOrEmpty(config.AuthorizationUrl) || string.IsNullOrEmpty(config.TokenUrl))
        {
            errors["authorization_url"] = ["A custom provider needs an issuer (OpenID Connect discovery) or authorization_url and token_url."];
        }
        else
        {
            foreach (var (field, url) in new[] { ("authorization_url", config.AuthorizationUrl), ("token_url", config.TokenUrl), ("revocation_url", config.RevocationUrl), ("userinfo_url", config.UserinfoUrl), ("api_base_url", config.ApiBaseUrl) })
            {
                if (url is not null && policy.Check(url) is { } problem)
                {
                    errors[field] = [$"{field} {problem}"];
                }
            }
        }

        if (config.TokenEndpointAuth is not (ClientAuthMethods.Basic or ClientAuthMethods.Post or ClientAuthMethods.None))
        {
            errors["token_endpoint_auth"] = ["token_endpoint_auth must be client_secret_basic, client_secret_post or none (a public client, with PKCE)."];
        }

        if (config.TokenRequestFormat is not (TokenRequestFormats.Form or TokenRequestFormats.Json))
        {
            errors["token_request_format"] = ["token_request_format must be form or json."];
        }

        if (!RevocationFormats.All.Contains(config.RevocationFormat))
        {
            errors["revocation_format"] = [$"revocation_format must be one of {string.Join(", ", RevocationFormats.All)}."];
        }

        if (config.ScopeSeparator is not (" " or ","))
        {
            errors["scope_separator"] = ["scope_separator must be \" \" or \",\"."];
        }

        if (config.AuthorizationParams.Keys.FirstOrDefault(ReservedAuthorizationParams.Contains) is { } reserved)
        {
            errors["authorization_params"] = [$"'{reserved}' is set by the broker itself."];
        }

        if (config.TokenRequestHeaders.Keys.FirstOrDefault(ReservedHeaders.Contains) is { } header)
        {
            errors["token_request_headers"] = [$"'{header}' is set by the broker itself."];
        }

        var displayName = body.DisplayName ?? existing?.DisplayName ?? body.Name ?? "";
        return new(null, config, displayName, [], scopes ?? (existing is null ? [] : [.. existing.Scopes]));
    }

    /// <summary>A custom api_key, basic_auth or aws_sigv4 provider: an API base URL and how to apply the credential.</summary>
    private static Resolution ResolveCustomCredentialProvider(ProviderRequest body, Provider? existing, string mode, UpstreamPolicy policy, Dictionary<string, string[]> errors)
    {
        foreach (var (field, value) in new (string, object?)[]
        {
            ("issuer", body.Issuer), ("authorization_url", body.AuthorizationUrl), ("token_url", body.TokenUrl), ("revocation_url", body.RevocationUrl),
            ("pkce", body.Pkce), ("token_endpoint_auth", body.TokenEndpointAuth), ("authorization_params", body.AuthorizationParams),
            ("client_id", body.ClientId), ("client_secret", body.ClientSecret),
        })
        {
            if (value is not null)
            {
                errors[field] = [$"{mode} providers have no OAuth endpoints or client; the user brings the credential."];
            }
        }

        var config = (existing?.Config ?? new ProviderConfig()) with { RefreshSupported = false };
        config = config with
        {
            ApiBaseUrl = body.ApiBaseUrl ?? config.ApiBaseUrl,
            ApiKey = body.ApiKey ?? config.ApiKey,
            Aws = body.Aws ?? config.Aws,
            Verify = body.Verify ?? config.Verify,
            CredentialSchema = body.CredentialSchema is { } schema ? System.Text.Json.Nodes.JsonNode.Parse(schema.GetRawText()) as System.Text.Json.Nodes.JsonObject : config.CredentialSchema ?? CredentialSchemas.Default(mode),
        };

        if (config.ApiBaseUrl is null)
        {
            errors["api_base_url"] = ["api_base_url is required: the provider's API, which the Bridge forwards to."];
        }
        else if (policy.Check(config.ApiBaseUrl) is { } problem)
        {
            errors["api_base_url"] = [$"api_base_url {problem}"];
        }

        if (mode == AuthModes.ApiKey && (config.ApiKey is null || config.ApiKey.In is not ("header" or "query") || string.IsNullOrWhiteSpace(config.ApiKey.Name)
            || (config.ApiKey.In == "header" && ReservedHeaders.Contains(config.ApiKey.Name) && config.ApiKey.Name != "Authorization")))
        {
            errors["api_key"] = ["api_key is required: {\"in\": \"header\" or \"query\", \"name\": the header or parameter name, \"prefix\": optional, e.g. \"Bearer \"}."];
        }

        if (mode == AuthModes.AwsSigV4 && (config.Aws is null || !config.Aws.TryGetValue("service", out var service) || string.IsNullOrWhiteSpace(service)
            || !config.Aws.TryGetValue("region", out var region) || string.IsNullOrWhiteSpace(region)))
        {
            errors["aws"] = ["aws is required: {\"service\": the signing name (s3, execute-api, …), \"region\": e.g. us-east-1}."];
        }

        if (mode == AuthModes.AwsSigV4 && config.Aws is not null)
        {
            AddAwsRoleErrors(config.Aws, policy, errors);
        }

        var schemaProblem = config.CredentialSchema is null ? "credential_schema must be a JSON Schema object." : CredentialSchemas.Problem(config.CredentialSchema, mode);
        if (schemaProblem is not null)
        {
            errors["credential_schema"] = [schemaProblem];
        }

        if (config.Verify is { } verify && (verify.Method is not ("GET" or "POST" or "HEAD") || !verify.Path.StartsWith('/') || verify.ExpectStatus is < 100 or > 599))
        {
            errors["verify"] = ["verify is {\"method\": GET, POST or HEAD, \"path\": starting with /, \"expect_status\": an HTTP status}."];
        }

        return new(null, config, body.DisplayName ?? existing?.DisplayName ?? body.Name ?? "", [], body.Scopes ?? [], mode);
    }

    /// <summary>The optional role fields of an aws block (role_arn, external_id, session_duration_seconds, sts_endpoint); the STS endpoint follows the upstream policy like every provider URL.</summary>
    private static void AddAwsRoleErrors(Dictionary<string, string> aws, UpstreamPolicy policy, Dictionary<string, string[]> errors)
    {
        foreach (var (field, message) in AwsRoleConfig.Problems(aws, policy.Check))
        {
            errors[field] = [message];
        }
    }

    private static Dictionary<string, string> Merge(Dictionary<string, string> current, Dictionary<string, string>? changes)
    {
        var merged = new Dictionary<string, string>(current, StringComparer.Ordinal);
        foreach (var (key, value) in changes ?? [])
        {
            merged[key] = value;
        }

        return merged;
    }
}
