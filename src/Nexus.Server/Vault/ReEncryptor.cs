using Dapper;
using Nexus.Server.Data;

namespace Nexus.Server.Vault;

/// <summary>
/// Re-encrypts every registered column under the active key, row by row. Each update is conditional on the
/// ciphertext it read, so a value changed concurrently is left alone (it was written under the active key
/// anyway), and an interrupted run can simply be repeated.
/// </summary>
internal sealed class ReEncryptor(NexusDatabase db, KeyRing keyRing, IEnumerable<EncryptedColumn> columns, ILogger<ReEncryptor> logger)
{
    private readonly IReadOnlyList<EncryptedColumn> columns = [.. columns];

    /// <summary>How many encrypted columns there are (the steps <see cref="ReEncryptAllAsync"/> reports).</summary>
    public int ColumnCount => columns.Count;

    /// <summary>Moves every value to the active key; reports the number of columns done to <paramref name="progress"/>.</summary>
    public async Task<int> ReEncryptAllAsync(IProgress<int>? progress = null, CancellationToken ct = default)
    {
        var total = 0;
        var done = 0;
        await using var connection = await db.OpenAsync(ct);
        progress?.Report(0);
        foreach (var column in columns)
        {
            var rows = await connection.QueryAsync<(string Key, byte[] Value)>(new CommandDefinition(
                $"SELECT {column.KeyColumn}, {column.ValueColumn} FROM {column.Table} WHERE {column.ValueColumn} IS NOT NULL", cancellationToken: ct));
            var moved = 0;
            foreach (var (key, value) in rows)
            {
                if (KeyRing.KeyIdOf(value) == keyRing.ActiveKeyId)
                {
                    continue;
                }

                var context = column.ContextFor(key);
                var plaintext = keyRing.Decrypt(value, context);
                var updated = await connection.ExecuteAsync(new CommandDefinition(
                    $"UPDATE {column.Table} SET {column.ValueColumn} = @New WHERE {column.KeyColumn} = @Key AND {column.ValueColumn} = @Old",
                    new { New = keyRing.Encrypt(plaintext, context), Key = key, Old = value }, cancellationToken: ct));
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(plaintext);
                moved += updated;
            }

            if (moved > 0)
            {
                logger.LogInformation("Re-encrypted {Count} value(s) in {Table}.{Column}", moved, column.Table, column.ValueColumn);
            }

            total += moved;
            progress?.Report(++done);
        }

        return total;
    }

    /// <summary>The encrypted columns every component registered.</summary>
    public IReadOnlyList<EncryptedColumn> Columns => columns;

    /// <summary>How many stored values each key id encrypted (nothing is decrypted): what a re-encryption would still move.</summary>
    public async Task<IReadOnlyDictionary<uint, int>> CountByKeyAsync(CancellationToken ct = default)
    {
        await using var connection = await db.OpenAsync(ct);
        return await CountByKeyAsync(connection, columns, ct);
    }

    /// <summary>
    /// How many values of <paramref name="columns"/> each key id encrypted, on <paramref name="connection"/> (the live
    /// database, or a backup that <c>restore</c> checks before it replaces the database).
    /// </summary>
    public static async Task<IReadOnlyDictionary<uint, int>> CountByKeyAsync(System.Data.Common.DbConnection connection, IEnumerable<EncryptedColumn> columns, CancellationToken ct)
    {
        var counts = new Dictionary<uint, int>();
        foreach (var column in columns)
        {
            var values = await connection.QueryAsync<byte[]>(new CommandDefinition(
                $"SELECT {column.ValueColumn} FROM {column.Table} WHERE {column.ValueColumn} IS NOT NULL", cancellationToken: ct));
            foreach (var value in values)
            {
                var id = KeyRing.KeyIdOf(value);
                counts[id] = counts.GetValueOrDefault(id) + 1;
            }
        }

        return counts;
    }
}
