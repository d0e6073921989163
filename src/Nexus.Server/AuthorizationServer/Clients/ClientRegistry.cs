using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Clients;

/// <summary>
/// Stores clients and serves the token endpoint's lookups from a short-lived in-memory cache, so issuing a
/// token touches no database. Writes made here invalidate the cache at once; writes made by another instance
/// are seen within ClientCacheSeconds.
/// </summary>
internal sealed class ClientRegistry(NexusDatabase db, NexusOptions options, TimeProvider time, Grants.RevocationList revocations)
{
    private const string Columns = "client_id, kind, name, secret_hash, scopes, grant_types, access_token_lifetime_seconds, created_at, updated_at, secret_rotated_at, revoked_at, client_type, redirect_uris, post_logout_redirect_uris, description, base_url, owner_email, registration, metadata_expires_at";

    private readonly ShortLivedCache<OAuthClient> cache = new(time, () => options.ClientCacheSeconds);

    private sealed class Row
    {
        public string ClientId { get; init; } = "";
        public string Kind { get; init; } = "";
        public string Name { get; init; } = "";
        public string? SecretHash { get; init; }
        public string Scopes { get; init; } = "";
        public string GrantTypes { get; init; } = "";
        public long AccessTokenLifetimeSeconds { get; init; }
        public long CreatedAt { get; init; }
        public long UpdatedAt { get; init; }
        public long SecretRotatedAt { get; init; }
        public long? RevokedAt { get; init; }
        public string ClientType { get; init; } = "";
        public string RedirectUris { get; init; } = "";
        public string PostLogoutRedirectUris { get; init; } = "";
        public string? Description { get; init; }
        public string? BaseUrl { get; init; }
        public string? OwnerEmail { get; init; }
        public string Registration { get; init; } = ClientRegistrations.Admin;
        public long? MetadataExpiresAt { get; init; }

        public OAuthClient ToClient() => new(ClientId, Kind, Name, SecretHash, Split(Scopes), Split(GrantTypes), (int)AccessTokenLifetimeSeconds,
            DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt), DateTimeOffset.FromUnixTimeMilliseconds(UpdatedAt),
            DateTimeOffset.FromUnixTimeMilliseconds(SecretRotatedAt), RevokedAt is { } r ? DateTimeOffset.FromUnixTimeMilliseconds(r) : null,
            ClientType, Lines(RedirectUris), Lines(PostLogoutRedirectUris), Description, BaseUrl, OwnerEmail,
            Registration, MetadataExpiresAt is { } m ? DateTimeOffset.FromUnixTimeMilliseconds(m) : null);

        private static string[] Split(string value) => value.Split(' ', StringSplitOptions.RemoveEmptyEntries);

        // URIs cannot contain line breaks, so a newline-separated list is unambiguous.
        private static string[] Lines(string value) => value.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>The client as the token endpoint and resource checks see it (cached).</summary>
    public ValueTask<OAuthClient?> FindCachedAsync(string clientId, CancellationToken ct) =>
        // The shared load is not cancelled with one caller's request: other callers may be awaiting it.
        cache.GetAsync(clientId, this, static (id, registry) => registry.FindAsync(id, CancellationToken.None));

    public async Task<OAuthClient?> FindAsync(string clientId, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
            $"SELECT {Columns} FROM oauth_clients WHERE client_id = @clientId", new { clientId }, cancellationToken: ct));
        return row?.ToClient();
    }

    public async Task<IReadOnlyList<OAuthClient>> ListAsync(string kind, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var rows = await connection.QueryAsync<Row>(new CommandDefinition(
            $"SELECT {Columns} FROM oauth_clients WHERE kind = @kind ORDER BY created_at, client_id", new { kind }, cancellationToken: ct));
        return rows.Select(r => r.ToClient()).ToList();
    }

    public async Task CreateAsync(OAuthClient client, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"INSERT INTO oauth_clients ({Columns}) VALUES (@ClientId, @Kind, @Name, @SecretHash, @Scopes, @GrantTypes, @Lifetime, @CreatedAt, @UpdatedAt, @SecretRotatedAt, NULL, @ClientType, @RedirectUris, @PostLogoutRedirectUris, @Description, @BaseUrl, @OwnerEmail, @Registration, @MetadataExpiresAt)",
            new
            {
                client.Registration,
                MetadataExpiresAt = client.MetadataExpiresAt?.ToUnixTimeMilliseconds(),
                client.ClientType,
                RedirectUris = string.Join('\n', client.RedirectUriList),
                PostLogoutRedirectUris = string.Join('\n', client.PostLogoutRedirectUriList),
                client.Description,
                client.BaseUrl,
                client.OwnerEmail,
                client.ClientId,
                client.Kind,
                client.Name,
                client.SecretHash,
                Scopes = string.Join(' ', client.Scopes),
                GrantTypes = string.Join(' ', client.GrantTypes),
                Lifetime = client.AccessTokenLifetimeSeconds,
                CreatedAt = client.CreatedAt.ToUnixTimeMilliseconds(),
                UpdatedAt = client.UpdatedAt.ToUnixTimeMilliseconds(),
                SecretRotatedAt = client.SecretRotatedAt.ToUnixTimeMilliseconds(),
            }, cancellationToken: ct));
    }

    /// <summary>Updates the mutable fields of a client that is not revoked; returns false when there is none.</summary>
    public async Task<bool> UpdateAsync(OAuthClient client, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE oauth_clients SET name = @Name, scopes = @Scopes, grant_types = @GrantTypes, access_token_lifetime_seconds = @Lifetime, updated_at = @UpdatedAt,
                redirect_uris = @RedirectUris, post_logout_redirect_uris = @PostLogoutRedirectUris, description = @Description, base_url = @BaseUrl, owner_email = @OwnerEmail
            WHERE client_id = @ClientId AND revoked_at IS NULL
            """,
            new
            {
                RedirectUris = string.Join('\n', client.RedirectUriList),
                PostLogoutRedirectUris = string.Join('\n', client.PostLogoutRedirectUriList),
                client.Description,
                client.BaseUrl,
                client.OwnerEmail,
                client.ClientId,
                client.Name,
                Scopes = string.Join(' ', client.Scopes),
                GrantTypes = string.Join(' ', client.GrantTypes),
                Lifetime = client.AccessTokenLifetimeSeconds,
                UpdatedAt = time.GetUtcNow().ToUnixTimeMilliseconds(),
            }, cancellationToken: ct));
        cache.Invalidate(client.ClientId);
        return updated == 1;
    }

    /// <summary>
    /// Stores what a client ID metadata document says, creating the client the first time. A client an administrator
    /// revoked stays revoked: a new copy of the document does not bring it back.
    /// </summary>
    public async Task SaveMetadataDocumentClientAsync(OAuthClient client, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"""
            INSERT INTO oauth_clients ({Columns}) VALUES (@ClientId, @Kind, @Name, NULL, @Scopes, @GrantTypes, @Lifetime, @Now, @Now, @Now, NULL, @ClientType, @RedirectUris, '', NULL, @BaseUrl, NULL, @Registration, @MetadataExpiresAt)
            ON CONFLICT (client_id) DO UPDATE SET name = @Name, scopes = @Scopes, grant_types = @GrantTypes, redirect_uris = @RedirectUris, base_url = @BaseUrl,
                metadata_expires_at = @MetadataExpiresAt, updated_at = @Now
            WHERE oauth_clients.registration = @Registration
            """,
            new
            {
                client.ClientId,
                client.Kind,
                client.Name,
                Scopes = string.Join(' ', client.Scopes),
                GrantTypes = string.Join(' ', client.GrantTypes),
                Lifetime = client.AccessTokenLifetimeSeconds,
                Now = time.GetUtcNow().ToUnixTimeMilliseconds(),
                client.ClientType,
                RedirectUris = string.Join('\n', client.RedirectUriList),
                client.BaseUrl,
                client.Registration,
                MetadataExpiresAt = client.MetadataExpiresAt?.ToUnixTimeMilliseconds(),
            }, cancellationToken: ct));
        cache.Invalidate(client.ClientId);
    }

    public async Task<bool> SetSecretHashAsync(string clientId, string secretHash, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE oauth_clients SET secret_hash = @secretHash, secret_rotated_at = @now, updated_at = @now WHERE client_id = @clientId AND revoked_at IS NULL",
            new { clientId, secretHash, now }, cancellationToken: ct));
        cache.Invalidate(clientId);
        return updated == 1;
    }

    /// <summary>Revokes a client: its secret stops working and tokens it holds are rejected by Nexus's APIs.</summary>
    public async Task<bool> RevokeAsync(string clientId, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await using var connection = await db.OpenAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE oauth_clients SET revoked_at = @now, updated_at = @now, secret_hash = NULL WHERE client_id = @clientId AND revoked_at IS NULL",
            new { clientId, now }, cancellationToken: ct));
        cache.Invalidate(clientId);
        if (updated == 1)
        {
            await revocations.ClientRevokedAsync(connection, clientId, ct);
        }

        return updated == 1;
    }
}
