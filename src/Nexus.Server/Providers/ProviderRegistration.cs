using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Hosting;

namespace Nexus.Server.Providers;

/// <summary>A provider as stored after a registration or change; on failure, the problem to answer and the field errors (for a form).</summary>
internal sealed record ProviderChange(Provider? Provider, ProblemHttpResult? Failure, Dictionary<string, string[]> Errors);

/// <summary>
/// Registering and changing providers, whoever asks: POST and PATCH /v1/providers, the dashboard's Site management ›
/// Providers and <c>providers import</c> all call this (issue 13: domain services out of endpoint classes). What
/// every registration shares (name, client, scopes, display name, refresh margin) is checked here; a catalog entry
/// is resolved by <see cref="CatalogProviders"/>, a custom provider by the <see cref="IProviderModeValidator"/> of
/// its auth mode, and a provider a component discovers (mcp_oauth2) by that component's <see cref="IProviderModeHandler"/>.
/// </summary>
internal sealed class ProviderRegistration(ProviderRegistry registry, ProviderCatalog catalog, CatalogProviders catalogProviders,
    IEnumerable<IProviderModeValidator> validators, IEnumerable<IProviderModeHandler> handlers, TimeProvider time)
{

    /// <summary>Whether a component owns providers of this auth mode (they are found out rather than described).</summary>
    public bool IsDiscovered(Provider provider) => Handler(provider.AuthMode) is not null;

    /// <summary>Validates and registers a provider.</summary>
    public async Task<ProviderChange> RegisterAsync(ProviderRequest body, CancellationToken ct)
    {
        if (Handler(body.AuthMode) is { } handler)
        {
            // E.g. an MCP server given by URL alone: discovered and registered by RemoteMcp, not described here.
            var (found, foundFailure) = await handler.RegisterAsync(body, ct);
            return new(found, foundFailure, []);
        }

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

        var resolved = await ResolveAsync(body, null, errors, ct);
        if (resolved.Error is not null)
        {
            return new(null, resolved.Error, errors);
        }

        if (errors.Count > 0)
        {
            return new(null, Problems.TypedValidation(errors), errors);
        }

        var now = time.GetUtcNow();
        var provider = new Provider(body.Name!, body.Catalog, resolved.DisplayName!, resolved.AuthMode!, resolved.Config!, resolved.Placeholders!,
            body.ClientId?.Trim() ?? "", string.IsNullOrEmpty(body.ClientSecret) ? null : registry.EncryptSecret(body.Name!, body.ClientSecret), resolved.Scopes!, now, now);
        if (!await registry.CreateAsync(provider, ct))
        {
            errors["name"] = [$"A provider named '{body.Name}' already exists."];
            return new(null, Problems.Typed(ProblemCatalog.ProviderExists,
                "Choose another name, or change the existing provider with PATCH /v1/providers/{name}.", title: $"A provider named '{body.Name}' already exists."), errors);
        }

        return new(provider, null, errors);
    }

    /// <summary>Validates and applies a change to a provider (the PATCH semantics: absent fields keep their value).</summary>
    public async Task<ProviderChange> UpdateAsync(string name, ProviderRequest body, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        var existing = await registry.FindAsync(name, ct);
        if (existing is null)
        {
            return new(null, Problems.TypedNotFound("Provider"), errors);
        }

        if (Handler(existing.AuthMode) is { } handler)
        {
            var (changed, failure) = await handler.UpdateAsync(existing, body, ct);
            return new(changed, failure, errors);
        }

        if (existing.AuthMode == AuthModes.McpOAuth2)
        {
            errors["auth_mode"] = ["An MCP server provider is changed with PATCH /v1/providers/{name} (display_name, scopes, send_resource)."];
            return new(null, Problems.TypedValidation(errors), errors);
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
        var resolved = await ResolveAsync(merged, existing, errors, ct);
        if (resolved.Error is not null)
        {
            return new(null, resolved.Error, errors);
        }

        if (errors.Count > 0)
        {
            return new(null, Problems.TypedValidation(errors), errors);
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
        return new((await registry.FindAsync(name, ct))!, null, errors);
    }

    private async Task<ProviderResolution> ResolveAsync(ProviderRequest body, Provider? existing, Dictionary<string, string[]> errors, CancellationToken ct)
    {
        string[]? scopes = null;
        if (body.Scopes is not null)
        {
            if (!ScopeSyntax.IsValidList(body.Scopes))
            {
                errors["scopes"] = [ScopeSyntax.ListRule];
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
            ? catalogProviders.Resolve(body, scopes, errors)
            : await ResolveCustomAsync(body, existing, scopes, errors, ct);
        // The refresh margin is this deployment's choice, not the provider's protocol, so catalog providers take it too.
        return resolved.Config is null ? resolved
            : resolved with { Config = resolved.Config with { RefreshMarginSeconds = body.RefreshMarginSeconds ?? existing?.Config.RefreshMarginSeconds } };
    }

    /// <summary>A custom provider (without 'catalog'): the validator of its auth mode resolves it.</summary>
    private Task<ProviderResolution> ResolveCustomAsync(ProviderRequest body, Provider? existing, string[]? scopes, Dictionary<string, string[]> errors, CancellationToken ct)
    {
        if (body.AuthMode is not null && !AuthModes.All.Contains(body.AuthMode))
        {
            errors["auth_mode"] = [$"auth_mode is one of {string.Join(", ", AuthModes.All)} or {AuthModes.McpOAuth2}."];
            return Task.FromResult(ProviderResolution.None);
        }

        var mode = body.AuthMode ?? existing?.AuthMode ?? AuthModes.OAuth2;
        return validators.First(v => v.AuthMode == mode).ResolveAsync(body, existing, scopes, errors, ct);
    }

    private IProviderModeHandler? Handler(string? authMode) => handlers.FirstOrDefault(h => h.AuthMode == authMode);

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
