using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Connections;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.RemoteMcp;

/// <summary>
/// Registers an OAuth-protected MCP server as a provider from its URL alone (<c>auth_mode: "mcp_oauth2"</c> in
/// POST /v1/providers): discovery, then Nexus's client registration, then one provider row whose OAuth configuration
/// is what was discovered. From there on it is a provider like any other: the broker runs the person's consent
/// (signed single-use state, PKCE S256, resource, RFC 9207 iss), stores and refreshes the tokens, and the Bridge
/// forwards MCP traffic to the server with the token injected. Nothing is stored when discovery fails.
/// </summary>
internal sealed class McpProviders(McpDiscovery discovery, McpClientRegistrar registrar, ProviderRegistry registry, TimeProvider time, ILogger<McpProviders> logger)
    : IProviderModeHandler
{

    public string AuthMode => AuthModes.McpOAuth2;

    public async Task<(Provider? Provider, ProblemHttpResult? Failure)> RegisterAsync(ProviderRequest body, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (!ProviderNames.IsValid(body.Name))
        {
            errors["name"] = ["Give the provider a name of 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter or digit."];
        }

        if (string.IsNullOrWhiteSpace(body.McpUrl) || !Uri.TryCreate(body.McpUrl, UriKind.Absolute, out _))
        {
            errors["mcp_url"] = ["mcp_url is required: the URL of the MCP server's Streamable HTTP endpoint (https)."];
        }

        foreach (var (field, value) in new (string, object?)[]
        {
            ("catalog", body.Catalog), ("issuer", body.Issuer), ("authorization_url", body.AuthorizationUrl), ("token_url", body.TokenUrl),
            ("revocation_url", body.RevocationUrl), ("userinfo_url", body.UserinfoUrl), ("api_base_url", body.ApiBaseUrl), ("pkce", body.Pkce),
            ("token_endpoint_auth", body.TokenEndpointAuth), ("token_request_format", body.TokenRequestFormat), ("revocation_format", body.RevocationFormat),
            ("scope_separator", body.ScopeSeparator), ("authorization_params", body.AuthorizationParams), ("token_request_headers", body.TokenRequestHeaders),
            ("placeholders", body.Placeholders), ("refresh_supported", body.RefreshSupported), ("api_key", body.ApiKey), ("aws", body.Aws),
            ("credential_schema", body.CredentialSchema), ("verify", body.Verify),
        })
        {
            if (value is not null)
            {
                errors[field] = ["mcp_oauth2 providers are discovered from mcp_url; this field cannot be set."];
            }
        }

        if (body.ClientSecret is not null && string.IsNullOrWhiteSpace(body.ClientId))
        {
            errors["client_secret"] = ["client_secret belongs to a pre-registered client_id; give both, or neither (Nexus then registers itself)."];
        }

        if (ScopeProblem(body.Scopes) is { } scopeProblem)
        {
            errors["scopes"] = [scopeProblem];
        }

        if (body.DisplayName is not null && (string.IsNullOrWhiteSpace(body.DisplayName) || body.DisplayName.Length > 200))
        {
            errors["display_name"] = ["display_name must be 1 to 200 characters."];
        }

        var machine = body.GrantType == McpGrantTypes.ClientCredentials;
        if (body.GrantType is not null && body.GrantType is not (McpGrantTypes.ClientCredentials or McpGrantTypes.AuthorizationCode))
        {
            errors["grant_type"] = ["grant_type is \"authorization_code\" (a person consents; the default) or \"client_credentials\" (a machine-to-machine server)."];
        }
        else if (machine && (string.IsNullOrWhiteSpace(body.ClientId) || (body.ClientSecret is null) == (body.PrivateKeyPem is null)))
        {
            // SEP-1046: the client is registered at the authorization server beforehand, with a secret or a key.
            errors["client_id"] = ["A client_credentials server needs the client_id registered for Nexus and either its client_secret or its private_key_pem (not both)."];
        }
        else if (!machine && body.PrivateKeyPem is not null)
        {
            errors["private_key_pem"] = ["private_key_pem is for grant_type \"client_credentials\" (private_key_jwt client authentication)."];
        }
        else if (body.PrivateKeyPem is not null && ClientAssertions.KeyProblem(body.PrivateKeyPem) is { } keyProblem)
        {
            errors["private_key_pem"] = [keyProblem];
        }

        if (errors.Count > 0)
        {
            return (null, Problems.TypedValidation(errors));
        }

        if (await registry.FindAsync(body.Name!, ct) is not null)
        {
            return (null, Exists(body.Name!));
        }

        McpDiscovered found;
        McpClientIdentity client;
        try
        {
            found = await discovery.DiscoverAsync(body.McpUrl!, ct);
            // The scopes the server suggests (its challenge, its scopes_supported) are held to the rule an administrator's
            // are, before anything is registered: a hostile list would make every authorization URL too long to work.
            // Checked as stored, offline_access included where the authorization server lists it.
            if (!ScopeSyntax.IsValidList(body.Scopes is { } given ? McpDiscovery.WithOfflineAccess(given, found.Server) : found.Scopes))
            {
                if (body.Scopes is not null)
                {
                    return (null, Problems.TypedValidation(new Dictionary<string, string[]>
                    {
                        ["scopes"] = [OfflineAccessRule],
                    }));
                }

                throw new McpDiscoveryException($"The scopes the MCP server asks for ({found.Scopes.Length}) are not acceptable: {ScopeSyntax.ListRule} " +
                    "Give the provider's scopes in the request (scopes).");
            }

            client = machine ? MachineClient(found.Server, body.ClientId!, body.ClientSecret, body.PrivateKeyPem)
                : await registrar.IdentifyAsync(found.Server, body.ClientId, body.ClientSecret, ct);
        }
        catch (McpDiscoveryException e)
        {
            return (null, Problems.Typed(ProblemCatalog.McpDiscoveryFailed, e.Message));
        }

        var sendResource = body.SendResource ?? true;
        var config = new ProviderConfig
        {
            Issuer = found.Server.Issuer,
            AuthorizationUrl = found.Server.AuthorizationEndpoint,
            TokenUrl = found.Server.TokenEndpoint,
            RevocationUrl = found.Server.RevocationEndpoint,
            ApiBaseUrl = found.McpUrl,
            AuthorizationResponseIss = found.Server.AuthorizationResponseIss,
            // MCP authorization, Authorization Code Protection: PKCE S256 always (discovery refused servers without it).
            Pkce = PkceModes.Required,
            TokenEndpointAuth = client.TokenEndpointAuth,
            RefreshSupported = true,
            // RFC 8707 / MCP authorization, Resource Parameter Implementation: the canonical resource of the server.
            Resource = sendResource ? found.Resource : null,
            Mcp = new McpServerConfig
            {
                Url = found.McpUrl,
                Resource = found.Resource,
                ResourceMetadataUrl = found.ResourceMetadataUrl,
                AuthorizationServerMetadataUrl = found.Server.MetadataUrl,
                Registration = client.Kind,
                SendResource = sendResource,
                AuthorizationServerScopes = found.Server.ScopesSupported,
                RegistrationEndpoint = found.Server.RegistrationEndpoint,
                TokenEndpointAuthMethods = found.Server.TokenEndpointAuthMethods,
                Legacy = found.Legacy,
                GrantType = machine ? McpGrantTypes.ClientCredentials : null,
            },
        };
        var now = time.GetUtcNow();
        var scopes = body.Scopes is { } chosen ? McpDiscovery.WithOfflineAccess(chosen, found.Server) : found.Scopes;
        // The secret column holds the client secret, or for private_key_jwt the private key: encrypted either way.
        var provider = new Provider(body.Name!, null, body.DisplayName ?? new Uri(found.McpUrl).Host, AuthModes.McpOAuth2, config, [], client.ClientId,
            client.ClientSecret is { } secret ? registry.EncryptSecret(body.Name!, secret) : null, scopes, now, now);
        return await registry.CreateAsync(provider, ct) ? (provider, null) : (null, Exists(body.Name!));
    }

    /// <summary>
    /// A machine-to-machine client (SEP-1046, RFC 6749 §4.4): the given id with its secret (client_secret_basic, or
    /// _post where only that is listed) or its ES256 key (private_key_jwt, RFC 7523 §2.2).
    /// </summary>
    private static McpClientIdentity MachineClient(McpAuthorizationServer server, string clientId, string? secret, string? privateKeyPem)
    {
        if (privateKeyPem is not null)
        {
            if (server.TokenEndpointAuthMethods is { } listed && !listed.Contains(ClientAuthMethods.PrivateKeyJwt, StringComparer.Ordinal))
            {
                throw new McpDiscoveryException($"The authorization server {server.Issuer} does not list private_key_jwt in token_endpoint_auth_methods_supported.");
            }

            return new McpClientIdentity(McpRegistrationKinds.PreRegistered, clientId.Trim(), privateKeyPem, ClientAuthMethods.PrivateKeyJwt);
        }

        var method = server.TokenEndpointAuthMethods is { } methods && !methods.Contains(ClientAuthMethods.Basic, StringComparer.Ordinal)
            && methods.Contains(ClientAuthMethods.Post, StringComparer.Ordinal) ? ClientAuthMethods.Post : ClientAuthMethods.Basic;
        return new McpClientIdentity(McpRegistrationKinds.PreRegistered, clientId.Trim(), secret, method);
    }

    /// <summary>
    /// The authorization server answered invalid_client: a dynamic registration it no longer knows (deleted, expired,
    /// its secret rotated) is forgotten and made anew, and the provider takes the new client for the next consent.
    /// Pre-registered and metadata-document clients are the administrator's or the document's business; nothing changes.
    /// </summary>
    public Task ClientRejectedAsync(Provider provider, CancellationToken ct) => RenewRegistrationAsync(provider, ct);

    public async Task RenewRegistrationAsync(Provider provider, CancellationToken ct)
    {
        if (DynamicRegistrationServer(provider) is not { } server)
        {
            return;
        }

        var issuer = server.Issuer;
        try
        {
            var stored = await registrar.CurrentAsync(issuer, ct);
            // Another connection (or instance) may have renewed it already: then the provider only takes that one.
            var client = stored is not null && stored.ClientId != provider.ClientId ? stored
                : await registrar.DynamicAsync(server, renew: true, ct, replacing: provider.ClientId);
            // Only the client changes, on the provider as it is now (an administrator's PATCH of its scopes made since
            // `provider` was read stays), and only while it still has the rejected client: compare-and-set on the row's
            // updated_at, read again when another write came between.
            for (var attempt = 0; attempt < 3; attempt++)
            {
                if (await registry.FindAsync(provider.Name, ct) is not { } current || current.ClientId != provider.ClientId
                    || await registry.UpdateIfUnchangedAsync(current with
                    {
                        ClientId = client.ClientId,
                        ClientSecret = client.ClientSecret is { } secret ? registry.EncryptSecret(provider.Name, secret) : null,
                        Config = current.Config with { TokenEndpointAuth = client.TokenEndpointAuth },
                    }, current.UpdatedAt, ct))
                {
                    // Deleted, renewed by another instance, or renewed now.
                    return;
                }
            }
        }
        catch (McpDiscoveryException e)
        {
            logger.LogWarning("Registering anew at {Issuer} for provider {Provider} failed: {Error}", issuer, provider.Name, e.Message);
        }
    }

    /// <summary>The authorization server a provider's dynamic client registration was made at, as discovered; null for other providers.</summary>
    internal static McpAuthorizationServer? DynamicRegistrationServer(Provider provider) =>
        provider.Config.Mcp is not { Registration: McpRegistrationKinds.Dynamic } mcp || provider.Config.Issuer is not { } issuer ? null
            : new McpAuthorizationServer(issuer, provider.Config.AuthorizationUrl, provider.Config.TokenUrl, mcp.RegistrationEndpoint, provider.Config.RevocationUrl,
                mcp.TokenEndpointAuthMethods, mcp.AuthorizationServerScopes, false, provider.Config.AuthorizationResponseIss, mcp.AuthorizationServerMetadataUrl);

    /// <summary>
    /// PATCH of an mcp_oauth2 provider: display_name, scopes and send_resource; the rest is discovered. A
    /// machine-to-machine server (grant_type client_credentials) also takes a new client_id, client_secret or
    /// private_key_pem: the key or secret is rotated in place (stored encrypted, the old one never sent again).
    /// </summary>
    public async Task<(Provider? Provider, ProblemHttpResult? Failure)> UpdateAsync(Provider existing, ProviderRequest body, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        var machine = existing.Config.Mcp?.GrantType == McpGrantTypes.ClientCredentials;
        if (body.McpUrl is not null && body.McpUrl != existing.Config.Mcp?.Url)
        {
            errors["mcp_url"] = ["The MCP server of a provider cannot be changed; register a new provider instead."];
        }

        if (ScopeProblem(body.Scopes) is { } scopeProblem)
        {
            errors["scopes"] = [scopeProblem];
        }

        if (body.DisplayName is not null && (string.IsNullOrWhiteSpace(body.DisplayName) || body.DisplayName.Length > 200))
        {
            errors["display_name"] = ["display_name must be 1 to 200 characters."];
        }

        foreach (var (field, value) in new (string, object?)[]
        {
            ("client_id", machine ? null : body.ClientId), ("client_secret", machine ? null : body.ClientSecret),
            ("auth_mode", body.AuthMode is AuthModes.McpOAuth2 ? null : body.AuthMode),
            ("grant_type", body.GrantType is null || (machine && body.GrantType == McpGrantTypes.ClientCredentials) ? null : body.GrantType),
            ("private_key_pem", machine ? null : body.PrivateKeyPem),
        })
        {
            if (value is not null)
            {
                errors[field] = [machine
                    ? "This cannot be changed on an mcp_oauth2 provider; register a new provider instead."
                    : "This cannot be changed on an mcp_oauth2 provider; register a new provider instead (only a client_credentials server takes a new client_id, client_secret or private_key_pem)."];
            }
        }

        // Stored as a registration stores them: with offline_access where the authorization server lists it.
        if (body.Scopes is not null && !errors.ContainsKey("scopes")
            && !ScopeSyntax.IsValidList(McpDiscovery.WithOfflineAccess(body.Scopes, existing.Config.Mcp?.AuthorizationServerScopes)))
        {
            errors["scopes"] = [OfflineAccessRule];
        }

        // Compare-and-set on the row as read: a registration renewal (RenewRegistrationAsync) that lands meanwhile is
        // not undone by writing back the client it replaced; the change is applied again to the provider as it is then
        // (a rotated client too, whose authentication method depends on what the row holds).
        for (var attempt = 0; ; attempt++)
        {
            McpClientIdentity? rotated = null;
            if (machine && (body.ClientId is not null || body.ClientSecret is not null || body.PrivateKeyPem is not null))
            {
                rotated = RotatedClient(existing, body, errors);
            }

            if (errors.Count > 0)
            {
                return (null, Problems.TypedValidation(errors));
            }

            // Ten writes in between would be something rewriting the provider without pause: the last attempt simply writes.
            var updated = Patched(existing, body, rotated);
            if (attempt == 9 ? await registry.UpdateAsync(updated, ct) : await registry.UpdateIfUnchangedAsync(updated, existing.UpdatedAt, ct))
            {
                break;
            }

            if (await registry.FindAsync(existing.Name, ct) is not { } current)
            {
                return (null, Problems.TypedNotFound("Provider"));
            }

            existing = current;
        }

        return ((await registry.FindAsync(existing.Name, ct))!, null);
    }

    private Provider Patched(Provider existing, ProviderRequest body, McpClientIdentity? rotated)
    {
        var mcp = existing.Config.Mcp ?? new McpServerConfig();
        var sendResource = body.SendResource ?? mcp.SendResource;
        return existing with
        {
            DisplayName = body.DisplayName ?? existing.DisplayName,
            Scopes = body.Scopes is { } s ? McpDiscovery.WithOfflineAccess(s, mcp.AuthorizationServerScopes) : existing.Scopes,
            Config = existing.Config with
            {
                Resource = sendResource ? mcp.Resource : null,
                Mcp = mcp with { SendResource = sendResource },
                TokenEndpointAuth = rotated?.TokenEndpointAuth ?? existing.Config.TokenEndpointAuth,
            },
            ClientId = rotated?.ClientId ?? existing.ClientId,
            // The secret column holds the client secret or the private key, encrypted; the old one is overwritten.
            ClientSecret = rotated?.ClientSecret is { } secret ? registry.EncryptSecret(existing.Name, secret) : existing.ClientSecret,
        };
    }

    /// <summary>
    /// The new credentials of a client_credentials server (SEP-1046): a client_secret or a private_key_pem (not both),
    /// and/or a client_id. A new secret or key decides the authentication method, checked against what the
    /// authorization server listed at registration; a client_id alone keeps the stored secret or key.
    /// </summary>
    private static McpClientIdentity? RotatedClient(Provider existing, ProviderRequest body, Dictionary<string, string[]> errors)
    {
        if (body.ClientId is not null && string.IsNullOrWhiteSpace(body.ClientId))
        {
            errors["client_id"] = ["client_id may not be empty; leave it out to keep the current one."];
        }

        if (body.ClientSecret is not null && body.PrivateKeyPem is not null)
        {
            errors["client_secret"] = ["Give a new client_secret or a new private_key_pem, not both."];
        }
        else if (body.ClientSecret is not null && string.IsNullOrWhiteSpace(body.ClientSecret))
        {
            errors["client_secret"] = ["client_secret may not be empty; leave it out to keep the current one."];
        }
        else if (body.PrivateKeyPem is not null && ClientAssertions.KeyProblem(body.PrivateKeyPem) is { } keyProblem)
        {
            errors["private_key_pem"] = [keyProblem];
        }

        if (errors.Count > 0)
        {
            return null;
        }

        var clientId = body.ClientId?.Trim() ?? existing.ClientId;
        if (body.ClientSecret is null && body.PrivateKeyPem is null)
        {
            return new McpClientIdentity(McpRegistrationKinds.PreRegistered, clientId, null, existing.Config.TokenEndpointAuth);
        }

        var mcp = existing.Config.Mcp!;
        var server = new McpAuthorizationServer(existing.Config.Issuer ?? "", existing.Config.AuthorizationUrl, existing.Config.TokenUrl, mcp.RegistrationEndpoint,
            existing.Config.RevocationUrl, mcp.TokenEndpointAuthMethods, mcp.AuthorizationServerScopes, false, existing.Config.AuthorizationResponseIss, mcp.AuthorizationServerMetadataUrl);
        try
        {
            return MachineClient(server, clientId, body.ClientSecret, body.PrivateKeyPem);
        }
        catch (McpDiscoveryException e)
        {
            errors[body.PrivateKeyPem is not null ? "private_key_pem" : "client_secret"] = [e.Message];
            return null;
        }
    }

    private static string? ScopeProblem(string[]? scopes) => scopes is not null && !ScopeSyntax.IsValidList(scopes) ? ScopeSyntax.ListRule : null;

    private const string OfflineAccessRule = "With offline_access, which this authorization server lists and Nexus adds, at most 100 scopes.";

    private static ProblemHttpResult Exists(string name) => Problems.Typed(ProblemCatalog.ProviderExists,
        "Choose another name, or change the existing provider with PATCH /v1/providers/{name}.", title: $"A provider named '{name}' already exists.");
}
