using System.Collections.Concurrent;
using Dapper;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Vault;

namespace Nexus.Server.Connections.Refresh;

/// <summary>An access token for one of a provider's further resources; never logged or serialized as a whole.</summary>
internal sealed record ResourceToken(string AccessToken, long? ExpiresAtMs)
{
    public override string ToString() => "ResourceToken(…)";
}

/// <summary>A resource's token, with the resource it is for (its base URL for the Bridge); or the problem to answer.</summary>
internal readonly record struct ResourceTokenResult(ResourceToken? Token, ProviderResource? Resource, IResult? Problem);

/// <summary>
/// Tokens for a provider's further resources (issue 15, Microsoft Entra ID): one consent's refresh token mints an
/// access token for Graph, SharePoint or Business Central when the token request names that resource's scopes
/// (RFC 6749 §6; Microsoft identity platform, "refresh the access token"). Each resource's token is minted on first
/// use, stored encrypted in <c>connection_resource_tokens</c>, served while it is outside the refresh margin and
/// minted again after that, on its own schedule: the connection's own token and the other resources' are untouched.
/// Minting takes the connection's refresh lock (the one the refresh engine takes), so a refresh token that rotates is
/// replaced by exactly one writer and never used after it was replaced, on any instance.
/// </summary>
internal sealed class ResourceTokens(
    Data.NexusDatabase db,
    RefreshStore store,
    ConnectionStore connections,
    ConnectionRefresher refresher,
    RefreshClient client,
    KeyRing keyRing,
    NexusOptions options,
    TimeProvider time,
    ILogger<ResourceTokens> logger)
{
    /// <summary>The vault's view of the table: re-encryption (keys reencrypt) walks it by its text id.</summary>
    public static readonly EncryptedColumn AccessTokenColumn = new("connection_resource_tokens", "id", "access_token", "connection_resource_tokens.access_token:");

    /// <summary>One mint per connection and resource at a time on this instance; the database lock covers the others.</summary>
    private readonly ConcurrentDictionary<string, Task<ResourceTokenResult>> flights = new(StringComparer.Ordinal);

    /// <summary>The mints in flight on this instance: shutdown waits for them (RefreshWorker.StopAsync).</summary>
    internal IEnumerable<Task> InFlight => flights.Values;

    private sealed record Row(byte[] AccessToken, long? ExpiresAt);

    private const string SelectRow = "SELECT access_token AS AccessToken, expires_at AS ExpiresAt FROM connection_resource_tokens WHERE id = @id";

    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>
    /// The token for <paramref name="resourceName"/> of an active connection: the stored one while it is fresh, else a
    /// new one (<paramref name="force"/>: a new one even if the stored one looks fresh, after the API answered 401).
    /// </summary>
    public async Task<ResourceTokenResult> GetAsync(Connection connection, string resourceName, bool force, CancellationToken ct)
    {
        var provider = await refresher.FindProviderAsync(connection.ProviderName);
        if (provider is null)
        {
            return Fail(Problems.NotFound("Connection"));
        }

        var applied = ConnectionValues.Apply(provider, connection.Values);
        if (applied.Config.Resources?.GetValueOrDefault(resourceName) is not { } resource)
        {
            var known = applied.Config.Resources is { Count: > 0 } all ? $"Its resources: {string.Join(", ", all.Keys.Order(StringComparer.Ordinal))}." : "It has no further resources.";
            return Fail(Problems.Create(ProblemCatalog.UnknownResource,
                $"'{provider.Name}' has no resource '{Truncate(resourceName)}'. {known}", new Dictionary<string, object?> { ["resource"] = Truncate(resourceName) }));
        }

        if (resource.Scopes.Any(ConnectionValues.IsTemplated) || ConnectionValues.IsTemplated(resource.ApiBaseUrl))
        {
            return Fail(Problems.Create(ProblemCatalog.ResourceUnavailable,
                $"The resource '{resourceName}' needs a per-connection value this connection does not have; reconnect it with that value (connection_config)."));
        }

        var id = RowId(connection.Id, resourceName);
        if (!force && await ReadFreshAsync(id, provider, ct) is { } stored)
        {
            return new ResourceTokenResult(stored, resource, null);
        }

        // Single flight: concurrent readers of a stale token wait for one mint; the first caller's cancellation does
        // not cancel the others' (the mint runs on without a token). The flight leaves the table when the mint ends,
        // before its result is handed out, whoever still waits: a later call (a forced one after a 401) never gets a
        // finished flight's result.
        while (true)
        {
            if (flights.TryGetValue(id, out var existing))
            {
                return await existing.WaitAsync(ct);
            }

            var completion = new TaskCompletionSource<ResourceTokenResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (flights.TryAdd(id, completion.Task))
            {
                _ = FlyAsync(id, completion, () => MintAsync(connection.Id, id, applied, resourceName, resource, force));
                return await completion.Task.WaitAsync(ct);
            }
        }
    }

    private async Task FlyAsync(string id, TaskCompletionSource<ResourceTokenResult> completion, Func<Task<ResourceTokenResult>> mint)
    {
        ResourceTokenResult result;
        try
        {
            result = await mint();
        }
        catch (Exception e)
        {
            flights.TryRemove(KeyValuePair.Create(id, completion.Task));
            completion.SetException(e);
            _ = completion.Task.Exception; // observed: every caller awaiting it rethrows it
            return;
        }

        flights.TryRemove(KeyValuePair.Create(id, completion.Task));
        completion.SetResult(result);
    }

    private static ResourceTokenResult Fail(IResult problem) => new(null, null, problem);

    private static bool SameToken(string a, string b) =>
        System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(a), System.Text.Encoding.UTF8.GetBytes(b));

    private static string Truncate(string value) => value.Length > 64 ? value[..64] + "…" : value;

    private static string RowId(string connectionId, string resource) => connectionId + ":" + resource;

    private async Task<ResourceToken?> ReadFreshAsync(string id, Provider provider, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QueryFirstOrDefaultAsync<Row>(new CommandDefinition(SelectRow, new { id }, cancellationToken: ct));
        return Fresh(id, row, provider);
    }

    private ResourceToken? Fresh(string id, Row? row, Provider provider) =>
        row is null || (row.ExpiresAt is { } expires && expires - RefreshSchedule.MarginMs(options.Refresh, provider) <= Now)
            ? null
            : new ResourceToken(keyRing.DecryptString(row.AccessToken, AccessTokenColumn.ContextFor(id)), row.ExpiresAt);

    private async Task<ResourceTokenResult> MintAsync(string connectionId, string id, Provider applied, string resourceName, ProviderResource resource, bool force)
    {
        await Task.Yield();
        RefreshLock held;
        try
        {
            held = await store.LockAsync(connectionId, skipLocked: false);
        }
        catch (TimeoutException)
        {
            return Fail(ConnectionRefresher.Unavailable(connectionId, Now + 1000, Now, "refresh_lock_timeout"));
        }

        await using (held)
        {
            if (held.Row is not { } row)
            {
                return Fail(Problems.NotFound("Connection"));
            }

            if (row.Status != ConnectionStatus.Active || row.RefreshToken is null)
            {
                return Fail(Problems.Create(ProblemCatalog.ResourceUnavailable,
                    row.Status != ConnectionStatus.Active
                        ? $"The connection is {row.Status}; it needs the person's consent again."
                        : "The provider issued no refresh token for this connection (offline_access was not granted), so no token for another resource can be obtained."));
            }

            // Another instance (or the flight before this one) may have minted it while this one waited for the lock.
            var current = await held.QueryFirstOrDefaultAsync<Row>(SelectRow, new { id });
            if (!force && Fresh(id, current, applied) is { } fresh)
            {
                return new ResourceTokenResult(fresh, resource, null);
            }

            var refreshToken = connections.Decrypt(ConnectionStore.RefreshTokenColumn, connectionId, row.RefreshToken);
            var attempt = await client.RefreshAsync(applied, refreshToken, CancellationToken.None, resource.Scopes);
            if (!attempt.Succeeded)
            {
                logger.LogInformation("Provider {Provider} refused a token for resource {Resource} of connection {ConnectionId} ({Error})",
                    applied.Name, resourceName, connectionId, attempt.Error);
                // A refusal for one resource (Entra: consent for it missing, AADSTS65001) says nothing certain about the
                // grant as a whole: the connection keeps its status, and the refresh engine judges the grant itself.
                return Fail(attempt.Kind == RefreshFailureKind.Rejected
                    ? Problems.Create(ProblemCatalog.ResourceNotGranted,
                        $"The provider answered {attempt.Error}{(attempt.Description is { } d ? ": " + d : "")}. The person may need to consent to this resource; reconnect with its scopes.",
                        new Dictionary<string, object?> { ["connection_id"] = connectionId, ["resource"] = resourceName, ["error"] = attempt.Error })
                    : ConnectionRefresher.Unavailable(connectionId, Now + ((long)(attempt.RetryAfter?.TotalMilliseconds ?? 5000)), Now, attempt.Error));
            }

            var now = Now;
            var tokens = attempt.Tokens!;
            long? expiresAt = tokens.ExpiresIn is { } seconds ? now + (seconds * 1000) : null;
            // Both writes hold only while the connection still has the refresh token this mint presented: a consent that
            // completed meanwhile (a reconnect: new tokens, the resource tokens of the old grant deleted, takes no refresh
            // lock) is never overwritten with the old grant's refresh token or resource token. Compared as plaintext (as
            // the refresh engine does): `keys reencrypt` may have sealed the same token anew meanwhile.
            var holding = await held.QueryFirstOrDefaultAsync<byte[]>("SELECT refresh_token FROM connections WHERE id = @connectionId AND status = @active",
                new { connectionId, active = ConnectionStatus.Active });
            if (holding is null || !SameToken(connections.Decrypt(ConnectionStore.RefreshTokenColumn, connectionId, holding), refreshToken))
            {
                await held.CommitAsync();
                connections.Invalidate(connectionId);
                logger.LogInformation("Connection {ConnectionId} was consented to again, or removed, while a token for resource {Resource} was minted; the token is not kept",
                    connectionId, resourceName);
                return Fail(holding is null && await connections.FindAsync(connectionId, CancellationToken.None) is null
                    ? Problems.NotFound("Connection")
                    : ConnectionRefresher.Unavailable(connectionId, Now + 1000, Now, "connection_changed"));
            }

            if (tokens.RefreshToken is { } rotated)
            {
                // Entra returns a new refresh token with every token response: it replaces the stored one (the old one
                // may stop working), under the same lock as every other use of it.
                var replacement = connections.Encrypt(ConnectionStore.RefreshTokenColumn, connectionId, rotated);
                holding = await RefreshStore.ReplaceRefreshTokenAsync(held, connectionId, holding, replacement) ? replacement : null;
            }

            var stored = holding is not null && await held.ExecuteAsync(
                """
                INSERT INTO connection_resource_tokens (id, connection_id, resource, access_token, expires_at, updated_at)
                SELECT @id, @connectionId, @resourceName, @accessToken, @expiresAt, @now
                WHERE EXISTS (SELECT 1 FROM connections WHERE id = @connectionId AND status = @active AND refresh_token = @holding)
                ON CONFLICT (id) DO UPDATE SET access_token = excluded.access_token, expires_at = excluded.expires_at, updated_at = excluded.updated_at
                """,
                new { id, connectionId, resourceName, accessToken = keyRing.Encrypt(tokens.AccessToken!, AccessTokenColumn.ContextFor(id)), expiresAt, now, holding,
                    active = ConnectionStatus.Active }) == 1;
            await held.CommitAsync();
            connections.Invalidate(connectionId);
            if (!stored)
            {
                logger.LogInformation("Connection {ConnectionId} changed while a token for resource {Resource} was stored; the token is not kept", connectionId, resourceName);
                return Fail(ConnectionRefresher.Unavailable(connectionId, Now + 1000, Now, "connection_changed"));
            }

            return new ResourceTokenResult(new ResourceToken(tokens.AccessToken!, expiresAt), resource, null);
        }
    }
}
