using System.Text.RegularExpressions;
using Nexus.Server.Hosting;

namespace Nexus.Server.Providers;

/// <summary>
/// Resolves a registration of a catalog entry: the catalog fixes the protocol (any auth mode); a registration only
/// chooses its own app's values (client, scopes, placeholders), which fill the entry's URL templates.
/// </summary>
internal sealed class CatalogProviders(ProviderCatalog catalog, UpstreamPolicy policy)
{
    public ProviderResolution Resolve(ProviderRequest body, string[]? scopes, Dictionary<string, string[]> errors)
    {
        var entry = catalog.Find(body.Catalog!);
        if (entry is null)
        {
            errors["catalog"] = [$"'{body.Catalog}' is not in the provider catalog; GET /v1/catalog lists the entries."];
            return ProviderResolution.None;
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
                ProviderRules.AddAwsRoleErrors(filledAws, policy, errors);
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
}
