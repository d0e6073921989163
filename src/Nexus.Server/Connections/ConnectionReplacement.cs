namespace Nexus.Server.Connections;

/// <summary>
/// Reconnecting from the dashboard creates a new connection that replaces an old one. The old one is revoked when
/// the new one really becomes active (the callback or the credential form activated it), decided from the database:
/// never on a GET, and never because a query string said "active" (a link could otherwise revoke a person's
/// connection, or keep a failed reconnect from leaving the old one in place).
/// </summary>
internal static class ConnectionReplacement
{
    /// <summary>Records that a pending connection replaces another of the same workspace; anything else is ignored.</summary>
    public static async Task MarkAsync(ConnectionStore store, string newId, string workspaceId, string? replacedId, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(replacedId) || replacedId == newId)
        {
            return;
        }

        if (await store.FindAsync(replacedId, ct) is { } old && old.WorkspaceId == workspaceId)
        {
            await store.SetReplacesAsync(newId, replacedId, ct);
        }
    }

    /// <summary>Called once a connection became active: revokes the connection it replaces, if any (taken once).</summary>
    public static async Task CompleteAsync(Connection activated, ConnectionStore store, ConnectionService connections, CancellationToken ct)
    {
        if (await store.TakeReplacedAsync(activated.Id, ct) is not { } replacedId)
        {
            return;
        }

        // Checked again: the old connection may have been deleted meanwhile; it must still be in the same workspace.
        if (await store.FindAsync(replacedId, ct) is { } old && old.WorkspaceId == activated.WorkspaceId)
        {
            // The same provider app: at providers whose revocation ends the whole grant it would end the new connection too.
            await connections.RevokeAsync(old, activated.CreatedBy, ct, grantContinues: old.ProviderName == activated.ProviderName);
        }
    }
}
