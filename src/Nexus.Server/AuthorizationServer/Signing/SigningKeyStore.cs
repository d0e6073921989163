using System.Data.Common;
using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.AuthorizationServer.Signing;

/// <summary>Persists signing keys, private halves encrypted by the key ring.</summary>
internal sealed class SigningKeyStore(NexusDatabase db, KeyRing keyRing, NexusOptions options, TimeProvider time, ILogger<SigningKeyStore> logger)
{
    public static readonly EncryptedColumn Column = new("signing_keys", "kid", "private_key", "signing_keys.private_key:");
    public static readonly string[] Algorithms = [SigningKey.Es256, SigningKey.Rs256];

    private sealed class Row
    {
        public string Kid { get; init; } = "";
        public string Alg { get; init; } = "";
        public byte[] PrivateKey { get; init; } = [];
        public long CreatedAt { get; init; }
        public long? RetiredAt { get; init; }
        public long? ExpiresAt { get; init; }
    }

    /// <summary>Creates a key for every algorithm that has no active one. Runs under the startup lock.</summary>
    public async Task EnsureActiveKeysAsync(DbConnection connection, CancellationToken ct = default)
    {
        foreach (var alg in Algorithms)
        {
            var active = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                "SELECT COUNT(*) FROM signing_keys WHERE alg = @alg AND retired_at IS NULL", new { alg }, cancellationToken: ct));
            if (active == 0)
            {
                var key = await InsertNewAsync(connection, null, alg, ct);
                logger.LogInformation("Created {Alg} signing key {Kid}", alg, key.Kid);
            }
        }
    }

    /// <summary>
    /// Starts signing with fresh keys. The previous keys stop signing here now, and on the other instances when they next
    /// read the keys (within SigningKeyRefreshSeconds), so they stay published for SigningKeyOverlapSeconds after that:
    /// until every token they signed, on any instance, has expired.
    /// </summary>
    public async Task<IReadOnlyList<SigningKey>> RotateAsync(CancellationToken ct = default)
    {
        await using var connection = await db.OpenAsync(ct);
        await using var tx = await db.BeginLockedTransactionAsync(connection, ct);
        var now = time.GetUtcNow();
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE signing_keys SET retired_at = @now, expires_at = @expires WHERE retired_at IS NULL",
            new { now = now.ToUnixTimeMilliseconds(), expires = now.AddSeconds((long)options.SigningKeyOverlapSeconds + options.SigningKeyRefreshSeconds).ToUnixTimeMilliseconds() }, tx, cancellationToken: ct));
        var created = new List<SigningKey>();
        foreach (var alg in Algorithms)
        {
            created.Add(await InsertNewAsync(connection, tx, alg, ct));
        }

        await tx.CommitAsync(ct);
        logger.LogInformation("Rotated signing keys; now signing with {Kids}", string.Join(", ", created.Select(k => k.Kid)));
        return created;
    }

    /// <summary>Every key that is still published (active or within its overlap window).</summary>
    public async Task<List<SigningKey>> LoadPublishedAsync(Func<string, SigningKey?> reuse, CancellationToken ct = default)
    {
        await using var connection = await db.OpenAsync(ct);
        var rows = await connection.QueryAsync<Row>(new CommandDefinition(
            "SELECT kid, alg, private_key, created_at, retired_at, expires_at FROM signing_keys WHERE expires_at IS NULL OR expires_at > @now ORDER BY created_at",
            new { now = time.GetUtcNow().ToUnixTimeMilliseconds() }, cancellationToken: ct));
        var keys = new List<SigningKey>();
        foreach (var row in rows)
        {
            var existing = reuse(row.Kid);
            if (existing is not null && existing.RetiredAt?.ToUnixTimeMilliseconds() == row.RetiredAt && existing.ExpiresAt?.ToUnixTimeMilliseconds() == row.ExpiresAt)
            {
                keys.Add(existing);
                continue;
            }

            var pkcs8 = keyRing.Decrypt(row.PrivateKey, Column.ContextFor(row.Kid));
            keys.Add(new SigningKey(row.Alg, pkcs8, DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAt),
                row.RetiredAt is { } r ? DateTimeOffset.FromUnixTimeMilliseconds(r) : null,
                row.ExpiresAt is { } e ? DateTimeOffset.FromUnixTimeMilliseconds(e) : null));
        }

        return keys;
    }

    private async Task<SigningKey> InsertNewAsync(DbConnection connection, DbTransaction? tx, string alg, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var key = new SigningKey(alg, SigningKey.GeneratePkcs8(alg), now, null, null);
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at) VALUES (@Kid, @Alg, @PrivateKey, @Jwk, @At)",
            new
            {
                key.Kid,
                key.Alg,
                PrivateKey = keyRing.Encrypt(key.Pkcs8, Column.ContextFor(key.Kid)),
                Jwk = key.PublicJwk.ToJsonString(),
                At = now.ToUnixTimeMilliseconds(),
            }, tx, cancellationToken: ct));
        return key;
    }
}
