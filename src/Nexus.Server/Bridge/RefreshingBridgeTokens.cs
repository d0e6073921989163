using System.Security.Cryptography;
using System.Text;
using Nexus.Server.Connections;
using Nexus.Server.Connections.Refresh;

namespace Nexus.Server.Bridge;

/// <summary>The Bridge's "refresh once after a 401", served by the refresh engine (single flight, database lock).</summary>
internal sealed class RefreshingBridgeTokens(ConnectionStore store, ConnectionRefresher refresher) : IBridgeTokenRefresher
{
    public async Task<string?> RefreshAsync(string connectionId, string rejected, CancellationToken ct)
    {
        if (await store.FindAsync(connectionId, ct) is not { } seen)
        {
            return null;
        }

        // The refused token may be older than the row: a request sent with a copy read before another request's refresh
        // (the calls of one MCP session, a cached row) is answered with the token that refresh stored, not with a refresh
        // of its own; a rotating provider would otherwise see one refresh per request that carried the old token.
        if (seen is { Status: ConnectionStatus.Active, AccessToken: { } stored }
            && store.Decrypt(ConnectionStore.AccessTokenColumn, seen.Id, stored) is var current
            && !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(current), Encoding.UTF8.GetBytes(rejected)))
        {
            return current;
        }

        var result = await refresher.ForceRefreshAsync(seen, ct);
        var connection = result.For(seen);
        return result.Status is RefreshStatus.Refreshed or RefreshStatus.Current && connection.AccessToken is { } token
            ? store.Decrypt(ConnectionStore.AccessTokenColumn, connection.Id, token)
            : null;
    }
}
