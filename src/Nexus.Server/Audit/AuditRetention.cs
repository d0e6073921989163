using Nexus.Server.Data;
using Nexus.Server.Hosting;

namespace Nexus.Server.Audit;

/// <summary>Audit events older than Nexus:Retention:AuditDays are removed (Data/Retention); 0, the default, keeps them all.</summary>
internal sealed class AuditRetention(NexusDatabase db, NexusOptions options) : IRetentionRule
{
    public string Key => "audit_events";

    public string Name => "audit events";

    public async Task<int> PurgeAsync(DateTimeOffset now, CancellationToken ct) =>
        options.Retention.AuditDays == 0 ? 0
            : await Retention.DeleteAsync(db, "audit_events", "id", "at < @before", new { before = (now - TimeSpan.FromDays(options.Retention.AuditDays)).ToUnixTimeMilliseconds() }, ct);
}
