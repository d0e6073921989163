using Nexus.Server.Audit;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Vault;

namespace Nexus.Server.Connections;

/// <summary>
/// What can be done to a connection, whoever asks: the gateway API, the dashboard's My connections and the MCP tools
/// all call this (issue 13: domain services out of endpoint classes). Callers authorize first; this does the work.
/// </summary>
internal sealed class ConnectionService(ConnectionStore store, StateSigner signer, ProviderRegistry providers, ProviderClient client, AuditLog audit,
    ConnectionNotifier notifier, NexusOptions options, TimeProvider time)
{
    /// <summary>Creates a pending connection and the URL that starts its consent.</summary>
    /// <param name="requestedScopes">Null for the provider's default scopes.</param>
    public async Task<(string AuthUrl, string ConnectionId)> CreatePendingAsync(Provider provider, string workspaceId, string[]? requestedScopes, string returnUrl, string actor,
        CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var id = SecretGenerator.Ulid("conn_", now);
        var nonce = SecretGenerator.Base64Url(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var expiresAt = now.AddSeconds(options.PendingConnectionSeconds);
        var verifier = AuthModes.IsOAuth(provider.AuthMode) && provider.Config.UsesPkce ? ProviderClient.NewCodeVerifier() : null;
        var scopes = requestedScopes is null ? provider.Scopes : requestedScopes.Distinct(StringComparer.Ordinal).ToArray();
        var connection = new Connection(id, workspaceId, provider.Name, ConnectionStatus.Pending, string.Join(' ', scopes), returnUrl, nonce,
            expiresAt.ToUnixTimeMilliseconds(), null, verifier is null ? null : store.Encrypt(ConnectionStore.PkceVerifierColumn, id, verifier),
            null, null, null, null, null, null, actor, now.ToUnixTimeMilliseconds(), now.ToUnixTimeMilliseconds());
        await store.InsertAsync(connection, ct);

        var state = signer.Create(id, nonce, expiresAt.ToUnixTimeSeconds());
        // OAuth providers get the user to their consent page; the other modes to Nexus's own credential form.
        var authUrl = AuthModes.IsOAuth(provider.AuthMode)
            ? ProviderClient.AuthorizationUrl(provider, options.Issuer + GatewayEndpoints.CallbackPath, scopes, state, verifier)
            : CredentialCapture.AuthUrl(options, state);
        await audit.RecordAsync(AuditEvents.Requested, actor, connection.WorkspaceId, id,
            new { provider = provider.Name, scopes, pkce = verifier is not null }, ct);
        return (authUrl, id);
    }

    /// <summary>The connections of the given workspaces (all when null), stale pending ones failed first.</summary>
    public async Task<IReadOnlyList<Connection>> ListAsync(IReadOnlyCollection<string>? workspaces, string? status, int limit, CancellationToken ct)
    {
        // Stale pending rows are failed first, so that a status filter sees them as they are.
        foreach (var expired in await store.ExpireStaleAsync(null, null, ct))
        {
            await audit.RecordAsync(AuditEvents.Failed, "system", expired.WorkspaceId, expired.Id, new { error = ConnectionStore.ExpiredError }, CancellationToken.None);
        }

        return await store.ListAsync(workspaces, status, limit, ct);
    }

    /// <summary>
    /// Revokes a connection's tokens at the provider where it can (best effort) and deletes the connection; the audit
    /// log keeps the record.
    /// </summary>
    public async Task RevokeAsync(Connection connection, string actor, CancellationToken ct)
    {
        var revocation = connection.TokenType == CredentialCapture.TokenType ? "credentials_deleted" : "no_tokens";
        if (connection.TokenType != CredentialCapture.TokenType && (connection.AccessToken is not null || connection.RefreshToken is not null))
        {
            var provider = await providers.FindAsync(connection.ProviderName, ct);
            revocation = provider is null
                ? "provider_missing"
                : await client.RevokeAsync(provider,
                    connection.AccessToken is { } a ? store.Decrypt(ConnectionStore.AccessTokenColumn, connection.Id, a) : null,
                    connection.RefreshToken is { } r ? store.Decrypt(ConnectionStore.RefreshTokenColumn, connection.Id, r) : null, ct);
        }

        // The tokens go with the row; the audit log keeps the record that the connection existed.
        if (await store.DeleteAsync(connection.Id, ct))
        {
            audit.ForgetConnection(connection.Id);
            await audit.RecordAsync(AuditEvents.Revoked, actor, connection.WorkspaceId, connection.Id,
                new { provider = connection.ProviderName, previous_status = connection.Status, provider_revocation = revocation }, ct);
            await notifier.RevokedAsync(connection.Id, connection.WorkspaceId, connection.ProviderName, connection.Status, revocation);
        }
    }

    /// <summary>Fails a pending connection whose consent window closed (lazily, on read) and records it.</summary>
    public async Task<Connection> ExpireIfStaleAsync(Connection connection)
    {
        if (!connection.IsStalePending(time.GetUtcNow().ToUnixTimeMilliseconds()))
        {
            return connection;
        }

        foreach (var expired in await store.ExpireStaleAsync(null, connection.Id, CancellationToken.None))
        {
            await audit.RecordAsync(AuditEvents.Failed, "system", expired.WorkspaceId, expired.Id, new { error = ConnectionStore.ExpiredError });
        }

        return await store.FindAsync(connection.Id, CancellationToken.None) ?? connection;
    }
}
