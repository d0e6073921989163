using System.Text;
using System.Text.Json;
using Dapper;
using Nexus.Server.Connections;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Vault;

namespace Nexus.Server.RemoteMcp;

/// <summary>The client Nexus is at an MCP server's authorization server. The secret is plaintext only in memory.</summary>
internal sealed record McpClientIdentity(string Kind, string ClientId, string? ClientSecret, string TokenEndpointAuth);

/// <summary>
/// MCP authorization, Client Registration Approaches, in the specification's order of preference: credentials the
/// administrator pre-registered; else Nexus's client ID metadata document, when the authorization server advertises
/// client_id_metadata_document_supported; else dynamic client registration (RFC 7591), stored per issuer (the secret
/// encrypted), reused by every server that authorization server protects, and redone when it answers invalid_client.
/// </summary>
internal sealed class McpClientRegistrar(McpMetadataFetcher fetcher, NexusDatabase db, KeyRing keyRing, NexusOptions options, TimeProvider time, ILogger<McpClientRegistrar> logger)
{
    private static readonly string[] GrantTypes = ["authorization_code", "refresh_token"];
    private static readonly string[] ResponseTypes = ["code"];

    public static readonly EncryptedColumn SecretColumn = new("mcp_client_registrations", "issuer", "client_secret", "mcp_client_registrations.client_secret:");

    /// <summary>Where every authorization server sends the person back: the broker's callback.</summary>
    public string RedirectUri => options.Issuer + GatewayEndpoints.CallbackPath;

    /// <summary>Nexus's client_id where client ID metadata documents are supported.</summary>
    public string MetadataDocumentUrl => options.Mcp.ClientMetadataDocumentUrl is { Length: > 0 } url ? url : options.Issuer + ClientMetadataDocumentEndpoint.Path;

    public async Task<McpClientIdentity> IdentifyAsync(McpAuthorizationServer server, string? clientId, string? clientSecret, CancellationToken ct)
    {
        if (!string.IsNullOrWhiteSpace(clientId))
        {
            var method = clientSecret is null ? ClientMetadataMethods.None : ChooseSecretMethod(server.TokenEndpointAuthMethods)
                ?? throw new McpDiscoveryException($"The authorization server {server.Issuer} lists neither client_secret_basic nor client_secret_post, so the given client_secret cannot be used.");
            return new McpClientIdentity(McpRegistrationKinds.PreRegistered, clientId.Trim(), clientSecret, method);
        }

        if (server.ClientIdMetadataDocumentSupported)
        {
            // draft-ietf-oauth-client-id-metadata-document §3: the client_id is the document's URL; a public client (PKCE).
            return new McpClientIdentity(McpRegistrationKinds.MetadataDocument, MetadataDocumentUrl, null, ClientMetadataMethods.None);
        }

        return await DynamicAsync(server, renew: false, ct);
    }

    /// <summary>
    /// RFC 7591 §3.1, or the stored registration for this issuer when it was made for this redirect URI. With
    /// <paramref name="renew"/>, a new registration replaces <paramref name="replacing"/>, the one the server rejected;
    /// when another renewal replaced it first (two refreshes rejected at once, on one instance or two), that one is
    /// kept and returned, so that every provider of the issuer converges on one client.
    /// </summary>
    public async Task<McpClientIdentity> DynamicAsync(McpAuthorizationServer server, bool renew, CancellationToken ct, string? replacing = null)
    {
        if (!renew && await FindAsync(server.Issuer, ct) is { } stored)
        {
            return stored;
        }

        if (server.RegistrationEndpoint is not { } endpoint)
        {
            throw new McpDiscoveryException($"The authorization server {server.Issuer} offers neither client ID metadata documents nor dynamic client registration; give a pre-registered client_id (and client_secret).");
        }

        // RFC 7591 §2: token_endpoint_auth_method chosen from what the server lists (RFC 8414 §2: client_secret_basic when it lists nothing).
        var method = ChooseSecretMethod(server.TokenEndpointAuthMethods)
            ?? (server.TokenEndpointAuthMethods?.Contains(ClientMetadataMethods.None, StringComparer.Ordinal) == true ? ClientMetadataMethods.None : null)
            ?? throw new McpDiscoveryException($"The authorization server {server.Issuer} offers no token endpoint authentication method Nexus supports (client_secret_basic, client_secret_post, none).");
        var request = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["client_name"] = "Nexus",
            ["client_uri"] = options.Issuer,
            ["redirect_uris"] = new[] { RedirectUri },
            ["grant_types"] = GrantTypes,
            ["response_types"] = ResponseTypes,
            ["token_endpoint_auth_method"] = method,
        });
        var answer = await fetcher.SendAsync(HttpMethod.Post, endpoint, new StringContent(request, Encoding.UTF8, "application/json"), null, ct);
        if (answer.Status is not (StatusCodes.Status201Created or StatusCodes.Status200OK) || answer.Json is not { } json
            || !json.TryGetProperty("client_id", out var id) || id.ValueKind != JsonValueKind.String || id.GetString() is not { Length: > 0 } registeredId)
        {
            var error = answer.Json is { } e && e.TryGetProperty("error", out var code) && code.ValueKind == JsonValueKind.String ? $" ({ProviderClient.Sanitize(code.GetString()!)})" : "";
            throw new McpDiscoveryException($"Dynamic client registration at {endpoint} failed: HTTP {answer.Status}{error}.");
        }

        // RFC 7591 §3.2.1: the server may have changed the metadata; its answer is what holds.
        var secret = json.TryGetProperty("client_secret", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
        var granted = json.TryGetProperty("token_endpoint_auth_method", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : method;
        if (secret is null)
        {
            granted = ClientMetadataMethods.None;
        }
        else if (granted is not (ClientAuthMethods.Basic or ClientAuthMethods.Post or ClientMetadataMethods.None))
        {
            // RFC 7591 §3.2.1 lets the server change the method; one Nexus cannot use as a client (private_key_jwt with
            // a secret, a name it does not know) would fail every code exchange and refresh, or send the secret where
            // the server does not expect it. Refused now, before anything is stored.
            throw new McpDiscoveryException($"Dynamic client registration at {endpoint} answered token_endpoint_auth_method '{ProviderClient.Sanitize(granted)}', which Nexus does not use as a client (client_secret_basic, client_secret_post, none).");
        }

        var identity = new McpClientIdentity(McpRegistrationKinds.Dynamic, registeredId, secret, granted);
        if (!await SaveAsync(server.Issuer, identity, renew ? replacing : null, ct) && await FindAsync(server.Issuer, ct) is { } first)
        {
            // The registration just made stays unused at the server (RFC 7592 management is not assumed to be offered).
            logger.LogInformation("Another renewal of the client registration at {Issuer} stored {ClientId} first; it is kept", server.Issuer, first.ClientId);
            return first;
        }

        return identity;
    }

    /// <summary>The stored dynamic registration of an issuer, if any.</summary>
    public Task<McpClientIdentity?> CurrentAsync(string issuer, CancellationToken ct) => FindAsync(issuer, ct);

    private static string? ChooseSecretMethod(string[]? listed) =>
        listed is null || listed.Contains(ClientAuthMethods.Basic, StringComparer.Ordinal) ? ClientAuthMethods.Basic
        : listed.Contains(ClientAuthMethods.Post, StringComparer.Ordinal) ? ClientAuthMethods.Post
        : null;

    private sealed class Row
    {
        public string ClientId { get; init; } = "";
        public byte[]? ClientSecret { get; init; }
        public string TokenEndpointAuth { get; init; } = "";
        public string RedirectUri { get; init; } = "";
    }

    private async Task<McpClientIdentity?> FindAsync(string issuer, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
            "SELECT client_id, client_secret, token_endpoint_auth, redirect_uri FROM mcp_client_registrations WHERE issuer = @issuer", new { issuer }, cancellationToken: ct));
        // A registration made for another BASE_URL's callback is of no use here.
        return row is null || row.RedirectUri != RedirectUri ? null
            : new McpClientIdentity(McpRegistrationKinds.Dynamic, row.ClientId, row.ClientSecret is { } c ? keyRing.DecryptString(c, SecretColumn.ContextFor(issuer)) : null, row.TokenEndpointAuth);
    }

    /// <summary>
    /// Stores an issuer's registration. With <paramref name="replacing"/>, an existing one is overwritten only while it
    /// is that client (or was made for another redirect URI, so of no use here): false when another renewal stored
    /// its own first.
    /// </summary>
    private async Task<bool> SaveAsync(string issuer, McpClientIdentity identity, string? replacing, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var written = await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO mcp_client_registrations (issuer, client_id, client_secret, token_endpoint_auth, redirect_uri, created_at)
            VALUES (@issuer, @ClientId, @secret, @TokenEndpointAuth, @redirect, @now)
            ON CONFLICT (issuer) DO UPDATE SET client_id = excluded.client_id, client_secret = excluded.client_secret,
                token_endpoint_auth = excluded.token_endpoint_auth, redirect_uri = excluded.redirect_uri, created_at = excluded.created_at
            """ + (replacing is null ? "" : " WHERE mcp_client_registrations.client_id = @replacing OR mcp_client_registrations.redirect_uri <> @redirect"),
            new
            {
                issuer,
                replacing,
                identity.ClientId,
                secret = identity.ClientSecret is { } s ? keyRing.Encrypt(s, SecretColumn.ContextFor(issuer)) : null,
                identity.TokenEndpointAuth,
                redirect = RedirectUri,
                now = time.GetUtcNow().ToUnixTimeMilliseconds(),
            }, cancellationToken: ct));
        return written == 1;
    }
}

/// <summary>RFC 7591 §2 token_endpoint_auth_method values Nexus uses as a client.</summary>
internal static class ClientMetadataMethods
{
    public const string None = "none";
}
