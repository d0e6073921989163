using Nexus.Server.Data;
using Nexus.Server.Hosting;

namespace Nexus.Server.Connections;

/// <summary>
/// Connections nobody completed are removed Nexus:Retention:AbandonedConnectionDays after their consent window closed
/// (Data/Retention; 0 keeps them): still pending, or failed because the window closed ("expired"), and holding no
/// token. Nothing can become of them (their state is refused; a reconnect gives one a new window, and then it no longer
/// matches), and an app that starts a connection for every visit would otherwise grow the table for ever. Connections
/// that held tokens, and failed ones for another reason (the provider refused the code), are kept.
/// The (status, state_expires_at) index finds them.
/// </summary>
internal sealed class ConnectionRetention(NexusDatabase db, NexusOptions options) : IRetentionRule
{
    public string Key => "abandoned_connections";

    public string Name => "connections never completed";

    public async Task<int> PurgeAsync(DateTimeOffset now, CancellationToken ct) =>
        options.Retention.AbandonedConnectionDays == 0 ? 0
            : await Retention.DeleteAsync(db, "connections", "id",
                "status IN (@pending, @failed) AND state_expires_at < @before AND (status = @pending OR error = @expired) AND access_token IS NULL AND refresh_token IS NULL",
                new
                {
                    pending = ConnectionStatus.Pending,
                    failed = ConnectionStatus.Failed,
                    expired = ConnectionStore.ExpiredError,
                    before = (now - TimeSpan.FromDays(options.Retention.AbandonedConnectionDays)).ToUnixTimeMilliseconds(),
                },
                ct);
}
