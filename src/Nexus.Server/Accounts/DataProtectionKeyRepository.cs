using System.Xml.Linq;
using Dapper;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Nexus.Server.Data;
using Nexus.Server.Vault;

namespace Nexus.Server.Accounts;

/// <summary>
/// Keeps ASP.NET Core Data Protection keys in the database, encrypted by the key ring, so that sign-in cookies
/// and antiforgery tokens stay valid across restarts and across every instance behind a load balancer.
/// </summary>
internal sealed class DataProtectionKeyRepository(NexusDatabase db, KeyRing keyRing, TimeProvider time) : IXmlRepository
{
    public static readonly EncryptedColumn Column = new("data_protection_keys", "name", "xml", "data_protection_keys.xml:");

    // Data Protection calls these synchronously, rarely (startup and key rollover), so blocking is acceptable.
    public IReadOnlyCollection<XElement> GetAllElements()
    {
        using var connection = db.OpenAsync().GetAwaiter().GetResult();
        return connection.Query<(string Name, byte[] Xml)>("SELECT name, xml FROM data_protection_keys")
            .Select(r => XElement.Parse(keyRing.DecryptString(r.Xml, Column.ContextFor(r.Name))))
            .ToList();
    }

    public void StoreElement(XElement element, string friendlyName)
    {
        using var connection = db.OpenAsync().GetAwaiter().GetResult();
        connection.Execute(
            "INSERT INTO data_protection_keys (name, xml, created_at) VALUES (@friendlyName, @xml, @now) ON CONFLICT (name) DO NOTHING",
            new { friendlyName, xml = keyRing.Encrypt(element.ToString(SaveOptions.DisableFormatting), Column.ContextFor(friendlyName)), now = time.GetUtcNow().ToUnixTimeMilliseconds() });
    }
}
