using System.Text.Json;
using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Vault;

namespace Nexus.Server.Providers;

/// <summary>The resolved, secret-free protocol description of a registered provider (stored as JSON).</summary>
internal sealed record ProviderConfig
{
    public string AuthorizationUrl { get; init; } = "";
    public string TokenUrl { get; init; } = "";
    public string? RevocationUrl { get; init; }
    public string? UserinfoUrl { get; init; }
    public string? ApiBaseUrl { get; init; }
    public string? Issuer { get; init; }

    /// <summary>
    /// RFC 9207: the provider's metadata says authorization_response_iss_parameter_supported, so every authorization
    /// response must carry iss equal to <see cref="Issuer"/> (mix-up attack defence).
    /// </summary>
    public bool AuthorizationResponseIss { get; init; }
    public string Pkce { get; init; } = PkceModes.Unsupported;
    public string TokenEndpointAuth { get; init; } = ClientAuthMethods.Basic;
    public string TokenRequestFormat { get; init; } = TokenRequestFormats.Form;
    public string RevocationFormat { get; init; } = RevocationFormats.Rfc7009;

    /// <summary>Where refresh requests go when not to <see cref="TokenUrl"/> (RFC 6749 §6 uses the token endpoint); catalog providers only.</summary>
    public string? RefreshUrl { get; init; }

    /// <summary>The name the provider gives the client_id parameter (TikTok: client_key); null is client_id.</summary>
    public string? ClientIdParam { get; init; }

    /// <summary>The Authorization scheme the Bridge sends the access token with (Yandex: OAuth); null is Bearer (RFC 6750 §2.1).</summary>
    public string? ApiAuthScheme { get; init; }

    /// <summary>Headers the Bridge adds to every API call (Etsy's x-api-key), with {client_id} and {client_secret} filled in.</summary>
    public Dictionary<string, string>? ApiRequestHeaders { get; init; }

    [System.Text.Json.Serialization.JsonIgnore]
    public string ClientIdParameter => ClientIdParam ?? "client_id";
    public string ScopeSeparator { get; init; } = " ";
    public Dictionary<string, string> AuthorizationParams { get; init; } = [];
    public Dictionary<string, string> TokenRequestHeaders { get; init; } = [];
    public bool RefreshSupported { get; init; } = true;

    /// <summary>api_key mode: where the key goes.</summary>
    public CatalogApiKey? ApiKey { get; init; }

    /// <summary>aws_sigv4 mode: "service" and "region".</summary>
    public Dictionary<string, string>? Aws { get; init; }

    /// <summary>Non-OAuth modes: the JSON Schema of the fields a user enters.</summary>
    public System.Text.Json.Nodes.JsonObject? CredentialSchema { get; init; }

    /// <summary>Non-OAuth modes: an optional cheap call that proves a credential works before the connection is active.</summary>
    public CatalogVerify? Verify { get; init; }

    /// <summary>Seconds before expiry to refresh this provider's tokens; null uses Nexus:Refresh:MarginSeconds.</summary>
    public int? RefreshMarginSeconds { get; init; }

    /// <summary>
    /// RFC 8707: the resource indicator sent on the authorization, code and refresh requests (mcp_oauth2 providers: the
    /// MCP server's resource). Null sends none (some authorization servers, Entra among them, refuse it).
    /// </summary>
    public string? Resource { get; init; }

    /// <summary>mcp_oauth2 providers: what discovery found and how Nexus registered itself.</summary>
    public McpServerConfig? Mcp { get; init; }

    /// <summary>
    /// Placeholders left in the URLs above whose values differ per connection (issue 17): given at request time, asked
    /// of the person, or captured after consent. Null for providers registered before per-connection values existed.
    /// </summary>
    public Dictionary<string, CatalogPlaceholder>? ConnectionPlaceholders { get; init; }

    /// <summary>The call after consent that supplies metadata-sourced placeholders (Mailchimp).</summary>
    public CatalogMetadata? Metadata { get; init; }

    /// <summary>Further resources the refresh token mints tokens for (Entra ID); null or empty when there are none.</summary>
    public Dictionary<string, ProviderResource>? Resources { get; init; }

    /// <summary>A public client (token_endpoint_auth none) always uses PKCE S256: without a secret it is what binds the code to Nexus.</summary>
    public bool UsesPkce => Pkce is PkceModes.Required or PkceModes.Supported || TokenEndpointAuth == ClientAuthMethods.None;
}

/// <summary>A provider an admin registered. The client secret is held only as ciphertext.</summary>
internal sealed record Provider(
    string Name,
    string? CatalogKey,
    string DisplayName,
    string AuthMode,
    ProviderConfig Config,
    Dictionary<string, string> Placeholders,
    string ClientId,
    byte[]? ClientSecret,
    IReadOnlyList<string> Scopes,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);

/// <summary>Stores registered providers; client secrets are encrypted bound to the provider's name.</summary>
internal sealed class ProviderRegistry(NexusDatabase db, KeyRing keyRing, TimeProvider time, Hosting.NexusOptions options)
{
    // Providers change rarely and are read on every Bridge request and non-OAuth credential read.
    private readonly Hosting.ShortLivedCache<Provider> cache = new(time, () => options.ConnectionCacheSeconds);

    /// <summary>The provider as hot paths see it (cached like connections; local writes invalidate at once).</summary>
    public ValueTask<Provider?> FindCachedAsync(string name, CancellationToken ct) =>
        cache.GetAsync(name, this, static (key, registry) => registry.FindAsync(key, CancellationToken.None));

    public static readonly EncryptedColumn ClientSecretColumn = new("providers", "name", "client_secret", "providers.client_secret:");

    private const string Columns = "name, catalog_key, display_name, auth_mode, config, placeholders, client_id, client_secret, scopes, created_at, updated_at";

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private sealed class Row
    {
        public string Name { get; init; } = "";
        public string? CatalogKey { get; init; }
        public string DisplayName { get; init; } = "";
        public string AuthMode { get; init; } = "";
        public string Config { get; init; } = "{}";
        public string Placeholders { get; init; } = "{}";
        public string ClientId { get; init; } = "";
        public byte[]? ClientSecret { get; init; }
        public string Scopes { get; init; } = "";
        public long CreatedAt { get; init; }
        public long UpdatedAt { get; init; }

        public Provider ToProvider() => new(Name, CatalogKey, DisplayName, AuthMode,
            JsonSerializer.Deserialize<ProviderConfig>(Config, Json)!, JsonSerializer.Deserialize<Dictionary<string, string>>(Placeholders, Json)!,
            ClientId, ClientSecret, Scopes.Split(' ', StringSplitOptions.RemoveEmptyEntries),
            DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt), DateTimeOffset.FromUnixTimeMilliseconds(UpdatedAt));
    }

    public byte[] EncryptSecret(string name, string secret) => keyRing.Encrypt(secret, ClientSecretColumn.ContextFor(name));

    public string? DecryptSecret(Provider provider) =>
        provider.ClientSecret is null ? null : keyRing.DecryptString(provider.ClientSecret, ClientSecretColumn.ContextFor(provider.Name));

    public async Task<Provider?> FindAsync(string name, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
            $"SELECT {Columns} FROM providers WHERE name = @name", new { name }, cancellationToken: ct));
        return row?.ToProvider();
    }

    public async Task<IReadOnlyList<Provider>> ListAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var rows = await connection.QueryAsync<Row>(new CommandDefinition($"SELECT {Columns} FROM providers ORDER BY name", cancellationToken: ct));
        return rows.Select(r => r.ToProvider()).ToList();
    }

    /// <summary>Inserts a provider; false when the name is taken.</summary>
    public async Task<bool> CreateAsync(Provider p, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var inserted = await connection.ExecuteAsync(new CommandDefinition(
            $"INSERT INTO providers ({Columns}) VALUES (@Name, @CatalogKey, @DisplayName, @AuthMode, @Config, @Placeholders, @ClientId, @ClientSecret, @Scopes, @CreatedAt, @UpdatedAt) ON CONFLICT (name) DO NOTHING",
            Parameters(p), cancellationToken: ct));
        return inserted == 1;
    }

    public Task<bool> UpdateAsync(Provider p, CancellationToken ct) => UpdateAsync(p, null, ct);

    /// <summary>
    /// <see cref="UpdateAsync(Provider, CancellationToken)"/> only while the row is as it was when read (its updated_at
    /// is <paramref name="seen"/>): false when another write came between, which the caller reads and applies again.
    /// </summary>
    public Task<bool> UpdateIfUnchangedAsync(Provider p, DateTimeOffset seen, CancellationToken ct) => UpdateAsync(p, seen, ct);

    private async Task<bool> UpdateAsync(Provider p, DateTimeOffset? seen, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        // Later than the write it replaces (in the stored milliseconds), also within the same millisecond, so that a
        // compare-and-set on it sees every write.
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var written = seen is { } read ? Math.Max(now, read.ToUnixTimeMilliseconds() + 1) : now;
        var parameters = new DynamicParameters(Parameters(p with { UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(written) }));
        if (seen is { } when)
        {
            parameters.Add("seen", when.ToUnixTimeMilliseconds());
        }

        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE providers SET display_name = @DisplayName, config = @Config, placeholders = @Placeholders, client_id = @ClientId, client_secret = @ClientSecret, scopes = @Scopes, updated_at = @UpdatedAt " +
            "WHERE name = @Name" + (seen is null ? "" : " AND updated_at = @seen"),
            parameters, cancellationToken: ct));
        cache.Invalidate(p.Name);
        return updated == 1;
    }

    /// <summary>Deletes a provider that no connection uses; null when it does not exist, false when it is in use.</summary>
    public async Task<bool?> DeleteAsync(string name, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await using var tx = await db.BeginLockedTransactionAsync(connection, ct);
        var exists = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COUNT(*) FROM providers WHERE name = @name", new { name }, tx, cancellationToken: ct));
        if (exists == 0)
        {
            return null;
        }

        var inUse = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COUNT(*) FROM connections WHERE provider_name = @name", new { name }, tx, cancellationToken: ct));
        if (inUse > 0)
        {
            return false;
        }

        await connection.ExecuteAsync(new CommandDefinition("DELETE FROM providers WHERE name = @name", new { name }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        cache.Invalidate(name);
        return true;
    }

    private static object Parameters(Provider p) => new
    {
        p.Name,
        p.CatalogKey,
        p.DisplayName,
        p.AuthMode,
        Config = JsonSerializer.Serialize(p.Config, Json),
        Placeholders = JsonSerializer.Serialize(p.Placeholders, Json),
        p.ClientId,
        p.ClientSecret,
        Scopes = string.Join(' ', p.Scopes),
        CreatedAt = p.CreatedAt.ToUnixTimeMilliseconds(),
        UpdatedAt = p.UpdatedAt.ToUnixTimeMilliseconds(),
    };
}
