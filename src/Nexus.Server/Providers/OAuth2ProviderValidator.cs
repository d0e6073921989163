using System.Text.Json;
using Nexus.Server.Hosting;

namespace Nexus.Server.Providers;

/// <summary>Validates a custom <c>oauth2</c> provider (OpenID Connect providers are oauth2 with an <c>issuer</c>).</summary>
internal sealed class OAuth2ProviderValidator(OidcDiscovery discovery, UpstreamPolicy policy) : IProviderModeValidator
{
    public string AuthMode => AuthModes.OAuth2;

    /// <summary>An OAuth 2.0 provider from an issuer (OpenID Connect discovery) and/or explicit endpoints.</summary>
    public async Task<ProviderResolution> ResolveAsync(ProviderRequest body, Provider? existing, string[]? scopes, Dictionary<string, string[]> errors, CancellationToken ct)
    {
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
                return new(Problems.Typed(ProblemCatalog.DiscoveryFailed, problem), null, null, null, null);
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

        if (config.AuthorizationParams.Keys.FirstOrDefault(ProviderRules.ReservedAuthorizationParams.Contains) is { } reserved)
        {
            errors["authorization_params"] = [$"'{reserved}' is set by the broker itself."];
        }

        if (config.TokenRequestHeaders.Keys.FirstOrDefault(ProviderRules.ReservedHeaders.Contains) is { } header)
        {
            errors["token_request_headers"] = [$"'{header}' is set by the broker itself."];
        }

        var displayName = body.DisplayName ?? existing?.DisplayName ?? body.Name ?? "";
        return new(null, config, displayName, [], scopes ?? (existing is null ? [] : [.. existing.Scopes]));
    }
}
