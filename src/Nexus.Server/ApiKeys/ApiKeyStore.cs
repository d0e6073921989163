using System.Text.Json;
using System.Text.RegularExpressions;
using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Hosting;

namespace Nexus.Server.ApiKeys;

/// <summary>A gateway API key as stored: only its keyed hash, never the key.</summary>
internal sealed record ApiKey(
    string Id,
    string Name,
    string KeyHash,
    IReadOnlyList<string> Workspaces,
    bool CanReadCredentials,
    DateTimeOffset CreatedAt,
    DateTimeOffset? RevokedAt)
{
    /// <summary>The explicit wildcard that lets a key act for every workspace.</summary>
    public const string AllWorkspaces = "*";

    public bool IsRevoked => RevokedAt is not null;
}

internal static partial class WorkspaceIds
{
    /// <summary>Workspace ids are the caller's own user or tenant ids: 1 to 200 characters of a URL-safe set.</summary>
    public static bool IsValid(string? id) => id is not null && Pattern().IsMatch(id);

    [GeneratedRegex("^[A-Za-z0-9_.:@+-]{1,200}$")]
    private static partial Regex Pattern();
}

/// <summary>
/// Stores gateway API keys and serves each request's key lookup from memory for ApiKeyCacheSeconds. Revocations
/// made on this instance take effect at once; those made on another instance within ApiKeyCacheSeconds.
/// </summary>
internal sealed class ApiKeyStore(NexusDatabase db, NexusOptions options, TimeProvider time)
{
    private const string Columns = "id, name, key_hash, workspaces, can_read_credentials, created_at, revoked_at";

    private readonly ShortLivedCache<ApiKey> cache = new(time, () => options.ApiKeyCacheSeconds, 100_000);

    private sealed class Row
    {
        public string Id { get; init; } = "";
        public string Name { get; init; } = "";
        public string KeyHash { get; init; } = "";
        public string Workspaces { get; init; } = "[]";
        public long CanReadCredentials { get; init; }
        public long CreatedAt { get; init; }
        public long? RevokedAt { get; init; }

        public ApiKey ToKey() => new(Id, Name, KeyHash, JsonSerializer.Deserialize<string[]>(Workspaces)!, CanReadCredentials != 0,
            DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt), RevokedAt is { } r ? DateTimeOffset.FromUnixTimeMilliseconds(r) : null);
    }

    public ValueTask<ApiKey?> FindByHashCachedAsync(string keyHash, CancellationToken ct) =>
        // State instead of a closure: a cache hit (every gateway call) allocates nothing here.
        cache.GetAsync(keyHash, db, static async (hash, db) =>
        {
            await using var connection = await db.OpenAsync(CancellationToken.None);
            var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
                $"SELECT {Columns} FROM api_keys WHERE key_hash = @hash", new { hash }));
            return row?.ToKey();
        });

    public async Task<ApiKey?> FindAsync(string id, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
            $"SELECT {Columns} FROM api_keys WHERE id = @id", new { id }, cancellationToken: ct));
        return row?.ToKey();
    }

    public async Task<IReadOnlyList<ApiKey>> ListAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var rows = await connection.QueryAsync<Row>(new CommandDefinition($"SELECT {Columns} FROM api_keys ORDER BY created_at, id", cancellationToken: ct));
        return rows.Select(r => r.ToKey()).ToList();
    }

    public async Task CreateAsync(ApiKey key, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"INSERT INTO api_keys ({Columns}) VALUES (@Id, @Name, @KeyHash, @Workspaces, @CanRead, @CreatedAt, NULL)",
            new
            {
                key.Id,
                key.Name,
                key.KeyHash,
                Workspaces = JsonSerializer.Serialize(key.Workspaces),
                CanRead = key.CanReadCredentials ? 1 : 0,
                CreatedAt = key.CreatedAt.ToUnixTimeMilliseconds(),
            }, cancellationToken: ct));
    }

    public async Task RevokeAsync(ApiKey key, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE api_keys SET revoked_at = @now WHERE id = @id AND revoked_at IS NULL",
            new { id = key.Id, now = time.GetUtcNow().ToUnixTimeMilliseconds() }, cancellationToken: ct));
        cache.Invalidate(key.KeyHash);
    }
}
