using System.Data.Common;

namespace Nexus.Server.Data;

/// <summary>
/// What <c>restore</c> asks before it replaces the database: which key ids encrypted a value in the backup that this
/// Nexus does not have (hex, as <c>keys status</c> shows them), and the ones it has. The Vault answers (it knows the
/// key ring and the encrypted columns, and depends on Data, so Data asks through this interface rather than naming it).
/// </summary>
internal interface IBackupKeyCheck
{
    Task<(IReadOnlyList<string> Missing, IReadOnlyList<string> Configured)> CheckAsync(DbConnection backup, CancellationToken ct);
}
