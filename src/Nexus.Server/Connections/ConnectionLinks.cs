using Nexus.Server.Providers;

namespace Nexus.Server.Connections;

/// <summary>
/// The Nexus pages a pending connection's auth_url may lead to before any provider (/connect/credentials,
/// /connect/values) take their only authority from the signed state in the link: this resolves it to the connection
/// and its provider, or to the sentence the person is shown.
/// </summary>
internal static class ConnectionLinks
{
    /// <summary>
    /// The connection a link's state stands for while its consent is still open: signed, the connection's current
    /// nonce, unused and unexpired, pending (or, with <paramref name="acceptReconnect"/>, under a reconnect).
    /// </summary>
    public static async Task<(Connection? Connection, Provider? Provider, string? Error)> ResolveAsync(string? state, StateSigner signer, ConnectionStore store,
        ProviderRegistry providers, TimeProvider time, bool acceptReconnect, CancellationToken ct)
    {
        if (!signer.TryVerify(state, out var claims) || await store.FindAsync(claims.ConnectionId, ct) is not { } connection || connection.StateNonce != claims.Nonce)
        {
            return (null, null, "This link is not valid. Start again from the application that sent you here.");
        }

        var open = connection.Status == ConnectionStatus.Pending || (acceptReconnect && connection.ReconnectScopes is not null);
        if (!open || connection.StateUsedAt is not null || connection.StateExpiresAt <= time.GetUtcNow().ToUnixTimeMilliseconds())
        {
            return (null, null, "This link was already used or has expired. Start again from the application that sent you here.");
        }

        var provider = await providers.FindAsync(connection.ProviderName, ct);
        return provider is null ? (null, null, "This connection's provider no longer exists.") : (connection, provider, null);
    }
}
