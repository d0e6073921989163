using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Nexus.Sdk.Aws;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Credentials;

/// <summary>
/// The temporary credentials of aws_sigv4 connections that name a role: what <see cref="StsClient.AssumeRoleAsync"/>
/// returns is what GET /v1/token hands out and the Bridge signs with. They are kept in memory (never stored) per
/// connection, role and stored keys, on the shared cache type (<see cref="ShortLivedCache{TValue}"/> with
/// <see cref="EntryDeadlines{TValue}"/>): loads are single-flight, so concurrent reads of a cold or expiring entry
/// share one STS call.
/// <list type="bullet">
/// <item>Each entry lives as long as STS said: renewal starts <see cref="RefreshMargin"/> before its Expiration. If
/// renewal fails transiently (see <see cref="AwsRoleException.Transient"/>), the cached credentials keep being served
/// while at least <see cref="MinRemaining"/> of them is left, and STS is not asked again for the failure's
/// Retry-After (else <see cref="TransientRetryInterval"/>), so an STS outage neither breaks working connections nor
/// turns every request into an STS call. A definite refusal drops the entry; the next read asks again.</item>
/// <item>Entries are keyed by connection first (so <see cref="Forget"/> drops only that connection's) and are swept
/// once their credentials have expired: the cache holds what was used within the last session duration.</item>
/// </list>
/// </summary>
internal sealed class AwsRoleCredentials
{
    /// <summary>How long before expiry cached credentials are replaced, so a caller always gets at least this much.</summary>
    public static readonly TimeSpan RefreshMargin = TimeSpan.FromMinutes(5);

    /// <summary>What must be left of cached credentials to keep serving them after a transient renewal failure.</summary>
    public static readonly TimeSpan MinRemaining = TimeSpan.FromSeconds(30);

    /// <summary>After a transient failure, how long no new AssumeRole is made for the same entry.</summary>
    public static readonly TimeSpan TransientRetryInterval = TimeSpan.FromSeconds(5);

    private readonly ShortLivedCache<AssumedRole> cache;
    private readonly StsClient sts;
    private readonly ILogger<AwsRoleCredentials> logger;

    public AwsRoleCredentials(StsClient sts, TimeProvider time, ILogger<AwsRoleCredentials> logger, IEnumerable<ICredentialDeletions> deletions)
    {
        this.sts = sts;
        this.logger = logger;
        cache = new ShortLivedCache<AssumedRole>(time, new EntryDeadlines<AssumedRole>(
            FreshUntil: c => c.RefreshAt,
            UsableUntil: c => c.Expiration - MinRemaining,
            RetryAfter: e => e is AwsRoleException { Transient: true } failure
                ? failure.RetryAfterSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : TransientRetryInterval
                : null));
        // A deleted connection's temporary credentials are dropped at once rather than at their expiry.
        foreach (var source in deletions)
        {
            source.OnDeleted(Forget);
        }
    }

    /// <summary>
    /// The cache key within a connection: a SHA-256 of everything the credentials depend on (role, external id,
    /// duration, endpoint, signing region and the stored keys), so replaced keys or a changed role miss at once on
    /// every instance, and only a hash of the keys is kept. Computed once per decoded connection row
    /// (<see cref="DecodedCredentials"/>), not per request.
    /// </summary>
    public static string CacheKey(AwsRole role, AwsCredentials longLived)
    {
        var material = string.Join('\0', role.RoleArn, role.ExternalId ?? "", role.DurationSeconds.ToString(CultureInfo.InvariantCulture), role.StsEndpoint, role.SigningRegion,
            longLived.AccessKeyId, longLived.SecretAccessKey, longLived.SessionToken ?? "");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(material)));
    }

    /// <summary>The role's temporary credentials, from the cache while they have more than <see cref="RefreshMargin"/> left.</summary>
    public ValueTask<AssumedRole> GetAsync(string connectionId, AwsRole role, AwsCredentials longLived, CancellationToken ct) =>
        GetAsync(connectionId, CacheKey(role, longLived), role, longLived, ct);

    /// <summary>As <see cref="GetAsync(string, AwsRole, AwsCredentials, CancellationToken)"/>, with the <see cref="CacheKey"/> the caller computed once.</summary>
    public ValueTask<AssumedRole> GetAsync(string connectionId, string key, AwsRole role, AwsCredentials longLived, CancellationToken ct)
    {
        // The Bridge's hot path: fresh credentials cost the key, a lookup and a clock read, without a lock or a task.
        var cached = cache.GetAsync(KeyOf(connectionId, key), (Self: this, connectionId, role, longLived), static (_, s) => s.Self.AssumeRoleAsync(s.connectionId, s.role, s.longLived));
        return cached.IsCompletedSuccessfully ? new ValueTask<AssumedRole>(cached.Result!) : WaitAsync(cached, ct);
    }

    private static async ValueTask<AssumedRole> WaitAsync(ValueTask<AssumedRole?> load, CancellationToken ct)
    {
        try
        {
            // The shared call goes on when this caller gives up waiting: others may be awaiting it.
            return (await load.AsTask().WaitAsync(ct))!;
        }
        catch (AwsRoleException e)
        {
            // Each caller gets its own exception: a remembered failure is thrown to many.
            throw e.Again();
        }
    }

    /// <summary>Drops every cached entry of a connection (deleted, or its credentials replaced).</summary>
    public void Forget(string connectionId) => cache.InvalidatePrefix(connectionId + "\n");

    /// <summary>How many entries are cached (tests).</summary>
    public int Count => cache.Count;

    /// <summary>Removes entries with nothing worth keeping: no load in flight, no failure being remembered, credentials expired (tests; the cache sweeps itself as it grows).</summary>
    internal void Sweep() => cache.Sweep();

    /// <summary>Connection ids never contain a line break, so one connection's keys share the prefix "id\n".</summary>
    private static string KeyOf(string connectionId, string key) => connectionId + "\n" + key;

    /// <summary>
    /// One AssumeRole, shared by every caller that needs the credentials: not cancelled with one caller's request, and
    /// not run in that caller's execution context (its logs, log scope and trace are nobody's request in particular).
    /// </summary>
    private Task<AssumedRole?> AssumeRoleAsync(string connectionId, AwsRole role, AwsCredentials longLived)
    {
        // (SuppressFlow throws when the flow is suppressed already; then Task.Run captures nothing anyway.)
        if (ExecutionContext.IsFlowSuppressed())
        {
            return Task.Run(() => CallStsAsync(connectionId, role, longLived), CancellationToken.None);
        }

        using (ExecutionContext.SuppressFlow())
        {
            return Task.Run(() => CallStsAsync(connectionId, role, longLived), CancellationToken.None);
        }
    }

    private async Task<AssumedRole?> CallStsAsync(string connectionId, AwsRole role, AwsCredentials longLived)
    {
        try
        {
            return await sts.AssumeRoleAsync(connectionId, role, longLived, RefreshMargin);
        }
        catch (AwsRoleException e) when (e.Transient)
        {
            // An outage is no reason to stop using credentials that still work (the cache serves them while usable),
            // but it is a reason not to ask STS again on every request.
            logger.LogWarning("Renewing the credentials of connection {ConnectionId} for {RoleArn} failed ({Code}); cached ones are served while at least {MinRemaining} of them is left, and STS is asked again after {RetryAfter}.",
                connectionId, role.RoleArn, e.Code, MinRemaining, e.RetryAfterSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : TransientRetryInterval);
            throw;
        }
        catch (Exception e) when (e is not AwsRoleException)
        {
            logger.LogError(e, "AssumeRole for connection {ConnectionId} failed unexpectedly.", connectionId);
            throw StsClient.Failed("The AssumeRole call failed unexpectedly.");
        }
    }
}
