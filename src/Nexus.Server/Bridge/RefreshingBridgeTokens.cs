using Nexus.Server.Connections;
using Nexus.Server.Connections.Refresh;

namespace Nexus.Server.Bridge;

/// <summary>The Bridge's "refresh once after a 401", served by the refresh engine (single flight, database lock).</summary>
internal sealed class RefreshingBridgeTokens(ConnectionStore store, ConnectionRefresher refresher) : IBridgeTokenRefresher
{
    public async Task<string?> RefreshAsync(string connectionId, CancellationToken ct)
    {
        if (await store.FindAsync(connectionId, ct) is not { } seen)
        {
            return null;
        }

        var result = await refresher.ForceRefreshAsync(seen, ct);
        var connection = result.For(seen);
        return result.Status is RefreshStatus.Refreshed or RefreshStatus.Current && connection.AccessToken is { } token
            ? store.Decrypt(ConnectionStore.AccessTokenColumn, connection.Id, token)
            : null;
    }
}
