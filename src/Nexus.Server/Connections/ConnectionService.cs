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
    ConnectionNotifier notifier, NexusOptions options, UpstreamPolicy policy, TimeProvider time, MachineGrants machine)
{
    /// <summary>
    /// Checks the per-connection values an app gave (connection_config) against the provider's declaration: only
    /// values asked before consent may be given, each must pass <see cref="ConnectionValues.Problem"/>, and the URLs
    /// they fill must keep their declared hosts. Returns the accepted values, or field errors.
    /// </summary>
    public (Dictionary<string, string>? Values, Dictionary<string, string[]> Errors) CheckValues(Provider provider, IReadOnlyDictionary<string, string?>? given, string field)
    {
        var errors = new Dictionary<string, string[]>();
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var declared = ConnectionValues.Declared(provider);
        foreach (var (name, value) in given ?? new Dictionary<string, string?>())
        {
            if (!declared.TryGetValue(name, out var declaration))
            {
                var asked = ConnectionValues.AskedBeforeConsent(provider).Select(d => d.Key).ToList();
                errors[$"{field}.{name}"] = [$"'{provider.Name}' takes no value '{name}'; it takes: {(asked.Count == 0 ? "none" : string.Join(", ", asked))}."];
            }
            else if (declaration.Source != PlaceholderSources.Connection)
            {
                errors[$"{field}.{name}"] = [$"{name} is read from the provider's {(declaration.Source == PlaceholderSources.Metadata ? "metadata" : "token response")} after consent; it cannot be given."];
            }
            else if (ConnectionValues.Problem(provider, name, value) is { } problem)
            {
                errors[$"{field}.{name}"] = [problem];
            }
            else
            {
                values[name] = value!;
            }
        }

        if (errors.Count == 0 && ConnectionValues.UrlProblem(provider, values, policy) is { } urlProblem)
        {
            errors[field] = [urlProblem];
        }

        return errors.Count == 0 ? (values, errors) : (null, errors);
    }

    /// <summary>Creates a pending connection and the URL that starts its consent.</summary>
    /// <param name="requestedScopes">Null for the provider's default scopes.</param>
    /// <param name="values">Per-connection values already checked with <see cref="CheckValues"/>; those still missing are asked of the person first.</param>
    public async Task<(string AuthUrl, string ConnectionId)> CreatePendingAsync(Provider provider, string workspaceId, string[]? requestedScopes, string returnUrl, string actor,
        CancellationToken ct, IReadOnlyDictionary<string, string>? values = null)
    {
        var now = time.GetUtcNow();
        var id = SecretGenerator.Ulid("conn_", now);
        var nonce = SecretGenerator.Base64Url(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var expiresAt = now.AddSeconds(options.PendingConnectionSeconds);
        var verifier = AuthModes.IsOAuth(provider.AuthMode) && provider.Config.UsesPkce ? ProviderClient.NewCodeVerifier() : null;
        var scopes = requestedScopes is null ? provider.Scopes : requestedScopes.Distinct(StringComparer.Ordinal).ToArray();
        values ??= new Dictionary<string, string>();
        var connection = new Connection(id, workspaceId, provider.Name, ConnectionStatus.Pending, string.Join(' ', scopes), returnUrl, nonce,
            expiresAt.ToUnixTimeMilliseconds(), null, verifier is null ? null : store.Encrypt(ConnectionStore.PkceVerifierColumn, id, verifier),
            null, null, null, null, null, null, actor, now.ToUnixTimeMilliseconds(), now.ToUnixTimeMilliseconds())
        {
            ConnectionConfig = ConnectionValues.Serialize(values),
        };
        await store.InsertAsync(connection, ct);
        if (provider.AuthMode == AuthModes.McpOAuth2)
        {
            // A connect begins an authorization operation; this consent is its first round (RemoteMcp.McpStepUp).
            await store.BeginAuthorizationOperationAsync(id, connection.Scopes, ct);
        }

        var state = signer.Create(id, nonce, expiresAt.ToUnixTimeSeconds());
        // OAuth providers get the user to their consent page; the other modes to Nexus's own credential form.
        var authUrl = StartUrl(provider, state, scopes, verifier, values);
        await audit.RecordAsync(AuditEvents.Requested, actor, connection.WorkspaceId, id,
            new { provider = provider.Name, scopes, pkce = verifier is not null, connection_config = values.Count == 0 ? null : values }, ct);
        return (authUrl, id);
    }

    /// <summary>
    /// A connection to a machine-to-machine MCP server (client_credentials, SEP-1046): created and given its token at
    /// once (RFC 6749 §4.4), active without a person. Returns its id and, when the authorization server refused, the
    /// error (the connection is then failed, like a refused consent).
    /// </summary>
    public async Task<(string ConnectionId, TokenExchangeResult Result)> CreateMachineAsync(Provider provider, string workspaceId, string[]? requestedScopes, string returnUrl,
        string actor, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var id = SecretGenerator.Ulid("conn_", now);
        var scopes = requestedScopes is null ? provider.Scopes : requestedScopes.Distinct(StringComparer.Ordinal).ToArray();
        // A window, as a consent has, for the grant to complete in: with none (0), a pass of ExpireStaleAsync (a listing,
        // another instance's start) while the authorization server answers would fail the connection under it.
        var connection = new Connection(id, workspaceId, provider.Name, ConnectionStatus.Pending, string.Join(' ', scopes), returnUrl, null,
            now.AddSeconds(options.PendingConnectionSeconds).ToUnixTimeMilliseconds(), null, null, null, null, null, null, null, null, actor,
            now.ToUnixTimeMilliseconds(), now.ToUnixTimeMilliseconds());
        await store.InsertAsync(connection, ct);
        await audit.RecordAsync(AuditEvents.Requested, actor, workspaceId, id, new { provider = provider.Name, scopes, grant_type = "client_credentials" }, ct);
        // Not the caller's token: a connect whose caller left still ends active or failed with the real error (bounded by
        // Nexus:UpstreamTimeoutSeconds), never pending until its window marks it a consent nobody completed.
        var granted = await machine.GrantAsync(provider, connection, scopes, MachineGrantReason.Connect, actor, null, CancellationToken.None);
        return (id, granted.Result);
    }

    /// <summary>
    /// Where a consent starts: OAuth providers send the person to their consent page, the other modes to Nexus's own
    /// credential form; first to Nexus's page for the values only the person can give, when some are missing.
    /// </summary>
    private string StartUrl(Provider provider, string state, IReadOnlyList<string> scopes, string? verifier, IReadOnlyDictionary<string, string> values)
    {
        if (ConnectionValues.AskedBeforeConsent(provider).Any(d => !values.ContainsKey(d.Key)))
        {
            return ConnectionValuesPage.AuthUrl(options, state);
        }

        return AuthModes.IsOAuth(provider.AuthMode)
            ? ProviderClient.AuthorizationUrl(ConnectionValues.Apply(provider, values), options.Issuer + GatewayEndpoints.CallbackPath, scopes, state, verifier)
            : CredentialCapture.AuthUrl(options, state);
    }

    /// <summary>The provider's consent URL for a pending connection whose values are now complete (after the values page).</summary>
    public string ConsentUrl(Provider provider, Connection connection, string state)
    {
        var verifier = connection.PkceVerifier is { } v ? store.Decrypt(ConnectionStore.PkceVerifierColumn, connection.Id, v) : null;
        var scopes = connection.ReconnectScopes is { } reconnecting ? reconnecting.Split(' ', StringSplitOptions.RemoveEmptyEntries) : connection.ScopeList;
        return StartUrl(provider, state, scopes, verifier, connection.Values);
    }

    /// <summary>
    /// After the code exchange: the values the provider reveals only now (a token response field such as Salesforce's
    /// instance_url, or the entry's metadata call such as Mailchimp's dc), checked like any other value. Returns the
    /// connection's values and whether any was captured (the caller stores them in the write that stores the consent's
    /// tokens, so that a consent superseded meanwhile changes neither), or an error when a value that is needed is
    /// missing or does not fit the declaration (a hostile instance_url never becomes a Bridge host).
    /// </summary>
    public async Task<(IReadOnlyDictionary<string, string>? Values, bool Captured, string? Error)> CaptureAfterConsentAsync(Provider provider, Connection connection,
        TokenExchangeResult tokens, CancellationToken ct)
    {
        var values = new Dictionary<string, string>(connection.Values, StringComparer.Ordinal);
        var declared = ConnectionValues.Declared(provider).Where(d => d.Value.Source is PlaceholderSources.TokenResponse or PlaceholderSources.Metadata).ToList();
        if (declared.Count == 0)
        {
            return (values, false, null);
        }

        IReadOnlyDictionary<string, string>? metadata = null;
        if (declared.Any(d => d.Value.Source == PlaceholderSources.Metadata))
        {
            metadata = await client.FetchMetadataAsync(ConnectionValues.Apply(provider, values), tokens.AccessToken!, ct);
        }

        foreach (var (name, declaration) in declared)
        {
            var source = declaration.Source == PlaceholderSources.Metadata ? metadata : tokens.Fields;
            var raw = source?.GetValueOrDefault(declaration.Field!);
            var value = ConnectionValues.Capture(provider, name, raw, values);
            if (value is null || ConnectionValues.Problem(provider, name, value) is not null)
            {
                return (null, false, $"The provider's {(declaration.Source == PlaceholderSources.Metadata ? "metadata" : "token response")} gave no usable {declaration.Field} for {name}.");
            }

            values[name] = value;
        }

        if (ConnectionValues.UrlProblem(provider, values, policy) is { } problem)
        {
            return (null, false, problem);
        }

        return (values, true, null);
    }

    /// <summary>
    /// A new consent for the same connection id (same workspace and provider, possibly other scopes), whoever asks:
    /// POST /v1/connections/{id}/reconnect and the dashboard's Reconnect both come here. A connection with tokens keeps
    /// serving them until the new consent completes; then the callback swaps them in and revokes the old ones at the
    /// provider (<see cref="CompleteReconnectAsync"/>). Callers authorize and check <paramref name="returnUrl"/> first.
    /// <para>
    /// A connection to a machine-to-machine MCP server has nobody to consent: its reconnect is a new client_credentials
    /// grant at once (<see cref="MachineGrants"/>), and the outcome says how it ended, with no auth_url.
    /// </para>
    /// </summary>
    /// <param name="requestedScopes">Null for the connection's own scopes.</param>
    public async Task<ReconnectStart> ReconnectAsync(Connection connection, string[]? requestedScopes, string returnUrl, string actor, CancellationToken ct)
    {
        if (await providers.FindAsync(connection.ProviderName, ct) is not { } provider)
        {
            return new ReconnectStart(null, ReconnectRefusal.ProviderMissing);
        }

        // Credential providers (api_key, basic_auth, aws_sigv4) have no consent to repeat: their values are replaced in place.
        if (!AuthModes.IsOAuth(provider.AuthMode))
        {
            return new ReconnectStart(null, ReconnectRefusal.NotOAuth);
        }

        if (provider.Config.Mcp?.IsClientCredentials == true)
        {
            var scopes = requestedScopes?.Distinct(StringComparer.Ordinal).ToArray() ?? [.. connection.ScopeList];
            await audit.RecordAsync(AuditEvents.Requested, actor, connection.WorkspaceId, connection.Id,
                new { provider = provider.Name, scopes, grant_type = "client_credentials", reconnect = true }, ct);
            var granted = await machine.GrantAsync(provider, connection, scopes, MachineGrantReason.Reconnect, actor, returnUrl, ct);
            return granted.Status is not { } status ? new ReconnectStart(null, ReconnectRefusal.Gone)
                : granted.Succeeded ? new ReconnectStart(null, ReconnectRefusal.None, status)
                : new ReconnectStart(null, ReconnectRefusal.TokenRequestFailed, status, granted.Result.Error, granted.Result.ErrorDescription);
        }

        return await ReconnectAsync(provider, connection, requestedScopes, returnUrl, actor, ct) is { } authUrl
            ? new ReconnectStart(authUrl, ReconnectRefusal.None)
            : new ReconnectStart(null, ReconnectRefusal.Gone);
    }

    private async Task<string?> ReconnectAsync(Provider provider, Connection connection, string[]? requestedScopes, string returnUrl, string actor, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var nonce = SecretGenerator.Base64Url(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var expiresAt = now.AddSeconds(options.PendingConnectionSeconds);
        var verifier = provider.Config.UsesPkce ? ProviderClient.NewCodeVerifier() : null;
        var scopes = requestedScopes?.Distinct(StringComparer.Ordinal).ToArray() ?? [.. connection.ScopeList];
        var encryptedVerifier = verifier is null ? null : store.Encrypt(ConnectionStore.PkceVerifierColumn, connection.Id, verifier);
        // The write is conditional on the status read (a callback may activate a pending connection meanwhile, and an
        // active one keeps its tokens while the new consent runs); a connection whose status changed is read again.
        for (var attempt = 0; !await store.BeginReconnectAsync(connection, nonce, expiresAt.ToUnixTimeMilliseconds(), encryptedVerifier, string.Join(' ', scopes), returnUrl, ct); attempt++)
        {
            if (attempt == 2 || await store.FindAsync(connection.Id, ct) is not { } current)
            {
                return null;
            }

            connection = current;
        }

        if (provider.AuthMode == AuthModes.McpOAuth2)
        {
            // A reconnect begins a new authorization operation (RemoteMcp.McpStepUp): the rounds of earlier ones no longer count.
            await store.BeginAuthorizationOperationAsync(connection.Id, string.Join(' ', scopes), ct);
        }

        await audit.RecordAsync(AuditEvents.Requested, actor, connection.WorkspaceId, connection.Id,
            new { provider = provider.Name, scopes, pkce = verifier is not null, reconnect = true }, ct);
        return StartUrl(provider, signer.Create(connection.Id, nonce, expiresAt.ToUnixTimeSeconds()), scopes, verifier, connection.Values);
    }

    /// <summary>
    /// The reconnect's consent completed (<see cref="CompleteConsentAsync"/>), recorded as such. Returns false, and
    /// does nothing else, when the connection was deleted or a newer consent began meanwhile: the caller revokes the new tokens.
    /// </summary>
    public async Task<bool> CompleteReconnectAsync(Provider provider, Connection before, TokenExchangeResult tokens, long? expiresAt,
        IReadOnlyDictionary<string, string>? values, CancellationToken ct)
    {
        if (await CompleteConsentAsync(provider, before, tokens, expiresAt, values, ct) is not { } revocation)
        {
            return false;
        }

        await audit.RecordAsync(AuditEvents.Reconnected, "callback", before.WorkspaceId, before.Id,
            new { provider = provider.Name, previous_status = before.Status, provider_revocation = revocation }, ct);
        return true;
    }

    /// <summary>
    /// A new consent for a connection that kept its tokens meanwhile completed (a reconnect, or a step-up:
    /// <see cref="RemoteMcp.McpStepUp"/>): the new tokens and the consent's scopes replace the old ones in one write,
    /// keeping the connection's refresh token when the answer has none, then the tokens the write replaced are revoked
    /// at the provider (best effort). Returns the revocation's outcome for the audit log, or null (and does nothing
    /// else) when the connection was deleted meanwhile, or a newer consent replaced the state of this one
    /// (<paramref name="before"/>'s, which the callback consumed): the caller revokes the new tokens.
    /// </summary>
    /// <param name="values">The connection's values captured after this consent (<see cref="CaptureAfterConsentAsync"/>), stored in the same write; null keeps the stored ones.</param>
    public async Task<string?> CompleteConsentAsync(Provider provider, Connection before, TokenExchangeResult tokens, long? expiresAt, IReadOnlyDictionary<string, string>? values,
        CancellationToken ct)
    {
        if (await store.CompleteConsentAsync(before.Id, before.StateNonce!, provider, store.Encrypt(ConnectionStore.AccessTokenColumn, before.Id, tokens.AccessToken!),
                tokens.RefreshToken is null ? null : store.Encrypt(ConnectionStore.RefreshTokenColumn, before.Id, tokens.RefreshToken),
                tokens.RefreshToken is not null || before.RefreshToken is not null, tokens.TokenType, expiresAt, values, ct) is not { } replaced)
        {
            return null;
        }

        return await RevokeSupersededAsync(provider, before, replaced, tokens, ct);
    }

    /// <summary>
    /// Revokes the tokens a new consent superseded (best effort; the person's grant lives on in the new ones): those
    /// the write replaced (<paramref name="replaced"/>), which a refresh may have rotated since the callback read
    /// <paramref name="before"/>. A provider that hands the same refresh token out again, or none (the connection keeps
    /// its own), must not have it revoked now.
    /// </summary>
    private async Task<string> RevokeSupersededAsync(Provider provider, Connection before, ReplacedTokens replaced, TokenExchangeResult tokens, CancellationToken ct)
    {
        var oldAccess = replaced.AccessToken is { } a ? store.Decrypt(ConnectionStore.AccessTokenColumn, before.Id, a) : null;
        var oldRefresh = replaced.RefreshToken is { } r ? store.Decrypt(ConnectionStore.RefreshTokenColumn, before.Id, r) : null;
        return oldAccess is null && oldRefresh is null ? "no_tokens"
            : await client.RevokeAsync(ConnectionValues.Apply(provider, before.Values), oldAccess == tokens.AccessToken ? null : oldAccess,
                oldRefresh == tokens.RefreshToken || tokens.RefreshToken is null ? null : oldRefresh, ct, grantContinues: true);
    }

    /// <summary>The connections of the given workspaces (all when null), stale pending ones failed first.</summary>
    public async Task<IReadOnlyList<Connection>> ListAsync(IReadOnlyCollection<string>? workspaces, string? status, int limit, CancellationToken ct) =>
        await ListAsync(workspaces, status, null, null, limit, ct);

    /// <summary>One page of connections, filtered by status and provider, after a cursor position.</summary>
    public async Task<IReadOnlyList<Connection>> ListAsync(IReadOnlyCollection<string>? workspaces, string? status, string? provider, (long CreatedAt, string Id)? after,
        int limit, CancellationToken ct)
    {
        // Stale pending rows are failed first, so that a status filter sees them as they are.
        foreach (var expired in await store.ExpireStaleAsync(null, null, ct))
        {
            await audit.RecordAsync(AuditEvents.Failed, "system", expired.WorkspaceId, expired.Id, new { error = ConnectionStore.ExpiredError }, CancellationToken.None);
        }

        return await store.ListAsync(workspaces, status, provider, after, limit, ct);
    }

    /// <summary>
    /// Deletes a connection and revokes its tokens at the provider where it can (best effort); the audit log keeps the
    /// record. The tokens revoked are those the row held when it was deleted, not those of <paramref name="connection"/>:
    /// a refresh that rotated them meanwhile (on PostgreSQL the delete waits for its row lock) or a consent that
    /// completed meanwhile stored newer ones, and revoking only the older ones would leave the grant alive.
    /// </summary>
    /// <param name="grantContinues">The person's grant lives on in another connection (a dashboard reconnect replacing this one).</param>
    public async Task RevokeAsync(Connection connection, string actor, CancellationToken ct, bool grantContinues = false)
    {
        // The tokens go with the row; the audit log keeps the record that the connection existed. Nothing deleted:
        // another request deleted it, and revoked what it held.
        if (await store.DeleteAsync(connection.Id, ct) is not { } deleted)
        {
            return;
        }

        // From here on the row, the only copy of its tokens, is gone: the revocation completes whatever happens to the caller.
        var revocation = deleted.TokenType == CredentialCapture.TokenType ? "credentials_deleted" : "no_tokens";
        if (deleted.TokenType != CredentialCapture.TokenType && (deleted.AccessToken is not null || deleted.RefreshToken is not null))
        {
            var provider = await providers.FindAsync(deleted.ProviderName, CancellationToken.None);
            revocation = provider is null
                ? "provider_missing"
                : await client.RevokeAsync(ConnectionValues.Apply(provider, deleted.Values),
                    deleted.AccessToken is { } a ? store.Decrypt(ConnectionStore.AccessTokenColumn, deleted.Id, a) : null,
                    deleted.RefreshToken is { } r ? store.Decrypt(ConnectionStore.RefreshTokenColumn, deleted.Id, r) : null, CancellationToken.None, grantContinues);
        }

        audit.ForgetConnection(deleted.Id);
        await audit.RecordAsync(AuditEvents.Revoked, actor, deleted.WorkspaceId, deleted.Id,
            new { provider = deleted.ProviderName, previous_status = deleted.Status, provider_revocation = revocation }, CancellationToken.None);
        await notifier.RevokedAsync(deleted.Id, deleted.WorkspaceId, deleted.ProviderName, deleted.Status, revocation);
    }

    /// <summary>Fails a pending connection whose consent window closed (lazily, on read) and records it.</summary>
    public async Task<Connection> ExpireIfStaleAsync(Connection connection)
    {
        return connection.IsStalePending(time.GetUtcNow().ToUnixTimeMilliseconds()) ? await ExpireAsync(connection, CancellationToken.None) : connection;
    }

    /// <summary>
    /// Fails a pending connection whose consent came too late (failed, error "expired") and records it; returns the
    /// connection as stored now. A connection another request completed or failed meanwhile is left as it is.
    /// </summary>
    public async Task<Connection> ExpireAsync(Connection connection, CancellationToken ct)
    {
        foreach (var expired in await store.ExpireStaleAsync(null, connection.Id, ct))
        {
            await audit.RecordAsync(AuditEvents.Failed, "system", expired.WorkspaceId, expired.Id, new { error = ConnectionStore.ExpiredError }, ct);
        }

        return await store.FindAsync(connection.Id, ct) ?? connection;
    }
}

/// <summary>Why a reconnect did not start.</summary>
internal enum ReconnectRefusal
{
    /// <summary>It started.</summary>
    None,

    /// <summary>The connection's provider no longer exists.</summary>
    ProviderMissing,

    /// <summary>The provider takes credentials, not a consent (replace them in place instead).</summary>
    NotOAuth,

    /// <summary>The connection was deleted meanwhile.</summary>
    Gone,

    /// <summary>
    /// A machine-to-machine connection: the authorization server refused the new client_credentials grant (the
    /// outcome's Error). A connection that was active keeps its token; any other is failed with that error.
    /// </summary>
    TokenRequestFailed,
}

/// <summary>
/// The outcome of <see cref="ConnectionService.ReconnectAsync(Connection, string[], string, string, CancellationToken)"/>:
/// the URL that starts the consent, or why not. A machine-to-machine connection has no URL: it was granted a new token
/// at once (<see cref="ReconnectRefusal.None"/>, <paramref name="Status"/> active) or was refused one
/// (<see cref="ReconnectRefusal.TokenRequestFailed"/>, with the authorization server's error).
/// </summary>
/// <param name="Status">A machine-to-machine connection's status after the grant; null for a consent.</param>
internal sealed record ReconnectStart(string? AuthUrl, ReconnectRefusal Refusal, string? Status = null, string? Error = null, string? ErrorDescription = null);
