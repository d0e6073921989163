using System.Data.Common;
using System.Security.Cryptography;
using Dapper;

namespace Nexus.Server.Vault;

/// <summary>Secrets Nexus generates for itself on first start and shares across instances through the database.</summary>
internal sealed class ServerSecrets(KeyRing keyRing, TimeProvider time)
{
    public static readonly EncryptedColumn Column = new("server_secrets", "name", "value", "server_secrets.value:");

    /// <summary>Returns the named 32-byte secret, creating it if this is the first instance to ask.</summary>
    public async Task<byte[]> GetOrCreateAsync(DbConnection connection, string name, CancellationToken ct = default)
    {
        var existing = await connection.QuerySingleOrDefaultAsync<byte[]>(new CommandDefinition(
            "SELECT value FROM server_secrets WHERE name = @name", new { name }, cancellationToken: ct));
        if (existing is not null)
        {
            return keyRing.Decrypt(existing, Column.ContextFor(name));
        }

        var secret = RandomNumberGenerator.GetBytes(32);
        // Another instance may insert first; then we read back and use its value.
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO server_secrets (name, value, created_at) VALUES (@name, @value, @at) ON CONFLICT (name) DO NOTHING",
            new { name, value = keyRing.Encrypt(secret, Column.ContextFor(name)), at = time.GetUtcNow().ToUnixTimeMilliseconds() }, cancellationToken: ct));
        var stored = await connection.QuerySingleAsync<byte[]>(new CommandDefinition(
            "SELECT value FROM server_secrets WHERE name = @name", new { name }, cancellationToken: ct));
        return keyRing.Decrypt(stored, Column.ContextFor(name));
    }
}
