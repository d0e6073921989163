using System.Data.Common;
using Dapper;
using Nexus.Server.Data;

namespace Nexus.Server.Vault;

/// <summary>
/// The key ids of a SQLite backup's encrypted values that <see cref="KeyRing"/> lacks: Nexus decrypts its server secrets
/// at start, so a backup made under another key would not start at all once restored. Columns the backup's (older)
/// schema lacks are skipped.
/// </summary>
internal sealed class BackupKeyCheck(KeyRing keyRing, ReEncryptor reEncryptor) : IBackupKeyCheck
{
    public async Task<(IReadOnlyList<string> Missing, IReadOnlyList<string> Configured)> CheckAsync(DbConnection backup, CancellationToken ct)
    {
        var present = new List<EncryptedColumn>();
        foreach (var column in reEncryptor.Columns)
        {
            if (await backup.ExecuteScalarAsync<long>(new CommandDefinition(
                    "SELECT COUNT(*) FROM pragma_table_info(@Table) WHERE name = @ValueColumn", new { column.Table, column.ValueColumn }, cancellationToken: ct)) > 0)
            {
                present.Add(column);
            }
        }

        var counts = await ReEncryptor.CountByKeyAsync(backup, present, ct);
        return ([.. counts.Keys.Where(id => !keyRing.KeyIds.Contains(id)).Order().Select(KeyId)], [.. keyRing.KeyIds.Select(KeyId)]);
    }

    private static string KeyId(uint id) => id.ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
}
