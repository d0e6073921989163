using Nexus.Server.Data;
using Nexus.Server.Hosting;

namespace Nexus.Server.Connections;

/// <summary>
/// Connections that hold no token and never will without a new start are removed Nexus:Retention:AbandonedConnectionDays
/// after both their consent window closed and their last change (Data/Retention; 0 keeps them): still pending (nobody
/// completed the consent), or failed (the window closed, the person refused, the provider refused). An app that starts a
/// connection on every visit would otherwise grow the table for ever. Connections holding tokens, whatever their status,
/// are kept, and so are failed connections to machine-to-machine servers: call_remote_tool reconnects those itself,
/// under their id, once an administrator fixed what the authorization server refused. The (status, state_expires_at)
/// index finds them.
/// </summary>
internal sealed class ConnectionRetention(ConnectionStore store, Providers.ProviderRegistry providers, NexusOptions options) : IRetentionRule
{
    public string Key => "abandoned_connections";

    public string Name => "connections never completed";

    public async Task<int> PurgeAsync(DateTimeOffset now, CancellationToken ct) =>
        options.Retention.AbandonedConnectionDays == 0 ? 0
            : await store.DeleteAbandonedAsync((now - TimeSpan.FromDays(options.Retention.AbandonedConnectionDays)).ToUnixTimeMilliseconds(),
                [.. (await providers.ListAsync(ct)).Where(p => p.Config.Mcp?.IsClientCredentials == true).Select(p => p.Name)], ct);
}
