using Nexus.Server.Audit;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections;

/// <summary>Why a machine-to-machine connection asks for a new token.</summary>
internal enum MachineGrantReason
{
    /// <summary>POST /v1/request-connection (or the dashboard's Connect): the connection's first token.</summary>
    Connect,

    /// <summary>POST /v1/connections/{id}/reconnect (or the dashboard's Reconnect): a new token, possibly for other scopes.</summary>
    Reconnect,

    /// <summary>The MCP server answered 403 insufficient_scope (RemoteMcp.McpStepUp): a token for the wider scopes.</summary>
    StepUp,
}

/// <summary>
/// The outcome of <see cref="MachineGrants.GrantAsync"/>: the authorization server's answer, and the connection's
/// status after it (null when the connection was deleted meanwhile).
/// </summary>
internal sealed record MachineGrant(TokenExchangeResult Result, string? Status)
{
    public bool Succeeded => Result.Succeeded && Status is not null;
}

/// <summary>
/// A step-up's round of its authorization operation (RemoteMcp.McpStepUp): the operation as the step-up read it
/// (<paramref name="Seen"/>) and as it counted this round (<paramref name="Counted"/>).
/// </summary>
internal sealed record MachineRound(AuthorizationOperation Seen, AuthorizationOperation Counted);

/// <summary>
/// The tokens of a connection to a machine-to-machine MCP server (client_credentials, SEP-1046). Nobody consents to
/// these: every token is a client_credentials grant (RFC 6749 §4.4) asked for at once, by the connect
/// (<see cref="ConnectionService.CreateMachineAsync"/>), a reconnect (<see cref="ConnectionService.ReconnectAsync(Connection, string[], string, string, CancellationToken)"/>)
/// and a step-up to wider scopes (RemoteMcp.McpStepUp) alike, and stored here. A refresh asks the same grant through the
/// refresh engine (<see cref="RefreshClient"/>), for the connection's scopes.
/// </summary>
internal sealed class MachineGrants(ConnectionStore store, ProviderClient client, AuditLog audit, ConnectionNotifier notifier, NexusOptions options, TimeProvider time)
{
    /// <summary>
    /// Asks the authorization server for a token for <paramref name="scopes"/> and stores it: the connection is then
    /// active with that token and those scopes, whatever it was before. When the authorization server refuses, a
    /// connection without a usable token (pending, failed, attention_required) is failed with its error; an active one
    /// keeps its token and scopes, as it would after a refused consent. Audited either way.
    /// </summary>
    /// <param name="returnUrl">A reconnect's return_url, stored like a person's reconnect stores it; null keeps the connection's.</param>
    /// <param name="round">A step-up's round, counted before the grant: given back when the grant fails transiently, and
    /// named in the outcome's audit entry either way.</param>
    public async Task<MachineGrant> GrantAsync(Provider provider, Connection connection, IReadOnlyCollection<string> scopes, MachineGrantReason reason, string actor,
        string? returnUrl, CancellationToken ct, MachineRound? round = null)
    {
        var applied = ConnectionValues.Apply(provider, connection.Values);
        var result = await client.ClientCredentialsAsync(applied, scopes, ct);
        var reconnect = reason == MachineGrantReason.Reconnect ? true : (bool?)null;
        var stepUp = reason == MachineGrantReason.StepUp ? true : (bool?)null;
        if (!result.Succeeded)
        {
            var status = connection.Status;
            if (connection.Status != ConnectionStatus.Active)
            {
                // The real error stays on the connection (never "expired" later: it is not waiting for anybody).
                await store.FailAsync(connection.Id, result.Error ?? "token_request_failed", result.ErrorDescription, CancellationToken.None);
                status = ConnectionStatus.Failed;
            }

            bool? givenBack = null;
            if (round is not null)
            {
                // The round limit stops a server that is never satisfied by what the authorization server grants; a grant
                // that never got an answer (network, timeout, 5xx, 429) granted nothing and refused nothing, so it gives
                // its round back: only a real refusal or a granted token counts as one of McpStepUp.MaxRounds. The
                // step-up's "requested" entry named the round before the grant; this entry says whether it still counts
                // (round_given_back), so the audit log stays an honest history of the operation's rounds: false after a
                // refusal, and also after a transient failure when another round was counted on top of this one meanwhile.
                givenBack = result.Transient && await store.UncountMachineRoundAsync(connection.Id, round.Counted, round.Seen, CancellationToken.None);
            }

            await audit.RecordAsync(AuditEvents.Failed, actor, connection.WorkspaceId, connection.Id,
                new { provider = provider.Name, error = result.Error, error_description = result.ErrorDescription, scopes, reconnect, step_up = stepUp, round = round?.Counted.Rounds,
                    round_given_back = givenBack }, CancellationToken.None);
            return new MachineGrant(result, status);
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        long? expiresAt = result.ExpiresIn is { } seconds ? now + (seconds * 1000) : null;
        // RFC 6749 §5.1: "scope" in the response says what was granted when it differs from the request.
        var granted = result.Fields.GetValueOrDefault("scope") is { } g ? string.Join(' ', g.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries)) : null;
        var joined = string.Join(' ', scopes);
        var replaced = await store.StoreMachineTokenAsync(connection.Id, store.Encrypt(ConnectionStore.AccessTokenColumn, connection.Id, result.AccessToken!), result.TokenType, expiresAt,
            RefreshSchedule.BackgroundDueAt(options.Refresh, provider, hasRefreshToken: false, now, expiresAt), joined, granted, returnUrl, CancellationToken.None);
        if (replaced is null)
        {
            // Deleted while the authorization server answered: the new token is not kept at the provider either.
            await client.RevokeAsync(applied, result.AccessToken, null, CancellationToken.None);
            return new MachineGrant(result, null);
        }

        if (reason != MachineGrantReason.StepUp)
        {
            // A connect or reconnect begins an authorization operation (RemoteMcp.McpStepUp); its grant is round 1.
            await store.BeginAuthorizationOperationAsync(connection.Id, joined, CancellationToken.None);
        }

        await audit.RecordAsync(AuditEvents.Activated, actor, connection.WorkspaceId, connection.Id,
            new { provider = provider.Name, refresh_token = false, expires_at = expiresAt / 1000, scopes, reconnect, step_up = stepUp, round = round?.Counted.Rounds }, CancellationToken.None);
        if (reason == MachineGrantReason.Reconnect)
        {
            // As after a person's reconnect: the old token is revoked where the authorization server can (best effort).
            // The one the row held when the new one replaced it, not the one read before the grant: a refresh in between
            // replaced that one already.
            var oldAccess = replaced.AccessToken is { } a ? store.Decrypt(ConnectionStore.AccessTokenColumn, connection.Id, a) : null;
            var revocation = oldAccess is null ? "no_tokens" : await client.RevokeAsync(applied, oldAccess, null, CancellationToken.None, grantContinues: true);
            await audit.RecordAsync(AuditEvents.Reconnected, actor, connection.WorkspaceId, connection.Id,
                new { provider = provider.Name, previous_status = connection.Status, provider_revocation = revocation }, CancellationToken.None);
        }

        if (reason != MachineGrantReason.StepUp)
        {
            await notifier.ActivatedAsync(connection.Id, connection.WorkspaceId, provider.Name, expiresAt, reason == MachineGrantReason.Reconnect ? "reconnected" : "connected");
        }

        return new MachineGrant(result, ConnectionStatus.Active);
    }
}
