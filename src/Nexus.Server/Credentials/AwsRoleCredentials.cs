using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Nexus.Sdk.Aws;
using Nexus.Server.Providers;

namespace Nexus.Server.Credentials;

/// <summary>
/// The temporary credentials of aws_sigv4 connections that name a role: what <see cref="StsClient.AssumeRoleAsync"/>
/// returns is what GET /v1/token hands out and the Bridge signs with. They are cached in memory (never stored) per connection, role and stored keys; loads are
/// single-flight, so concurrent reads of a cold or expiring entry share one STS call.
/// <list type="bullet">
/// <item>Renewal starts <see cref="RefreshMargin"/> before expiry. If it fails transiently (see
/// <see cref="AwsRoleException.Transient"/>), the cached credentials keep being served while at least
/// <see cref="MinRemaining"/> of them is left, and STS is not asked again for <see cref="TransientRetryInterval"/>,
/// so an STS outage neither breaks working connections nor turns every request into an STS call. A definite refusal
/// drops the entry; the next read asks again.</item>
/// <item>Entries are indexed by connection (so <see cref="Forget"/> touches only that connection's) and are removed
/// once their credentials have expired, by a sweep that inserts start at most every <see cref="SweepInterval"/>:
/// the cache holds what was used within the last session duration, with no size cliff.</item>
/// </list>
/// (<see cref="ShortLivedCache{TValue}"/> has one time-to-live for every entry; here each entry's lifetime is the
/// Expiration STS chose, so the same single-flight pattern is kept with a per-entry deadline.)
/// </summary>
internal sealed class AwsRoleCredentials
{
    /// <summary>How long before expiry cached credentials are replaced, so a caller always gets at least this much.</summary>
    public static readonly TimeSpan RefreshMargin = TimeSpan.FromMinutes(5);

    /// <summary>What must be left of cached credentials to keep serving them after a transient renewal failure.</summary>
    public static readonly TimeSpan MinRemaining = TimeSpan.FromSeconds(30);

    /// <summary>After a transient failure, how long no new AssumeRole is made for the same entry.</summary>
    public static readonly TimeSpan TransientRetryInterval = TimeSpan.FromSeconds(5);

    public static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(1);

    /// <summary>connection id → (cache key → entry).</summary>
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Entry>> connections = new(StringComparer.Ordinal);
    private readonly StsClient sts;
    private readonly TimeProvider time;
    private readonly ILogger<AwsRoleCredentials> logger;
    private long nextSweepTicks;

    public AwsRoleCredentials(StsClient sts, TimeProvider time, ILogger<AwsRoleCredentials> logger, IEnumerable<ICredentialDeletions> deletions)
    {
        this.sts = sts;
        this.time = time;
        this.logger = logger;
        // A deleted connection's temporary credentials are dropped at once rather than at their expiry.
        foreach (var source in deletions)
        {
            source.OnDeleted(Forget);
        }
    }

    /// <summary>What one entry knows; replaced as a whole under the entry's lock, read without it on the hot path.</summary>
    /// <param name="Current">The last credentials STS issued (null once they are no use).</param>
    /// <param name="Load">The AssumeRole in flight, which every caller that needs new credentials awaits.</param>
    /// <param name="RetryAt">After a transient failure: no new AssumeRole before this.</param>
    /// <param name="Failure">That failure, answered to callers until <paramref name="RetryAt"/> when there are no usable credentials.</param>
    private sealed record State(AssumedRole? Current, Task<AssumedRole>? Load, DateTimeOffset RetryAt, AwsRoleException? Failure)
    {
        public static readonly State Empty = new(null, null, DateTimeOffset.MinValue, null);
    }

    private sealed class Entry(string connectionId, string key)
    {
        public string ConnectionId { get; } = connectionId;

        public string Key { get; } = key;

        private volatile State state = State.Empty;

        public State State
        {
            get => state;
            set => state = value;
        }

        /// <summary>Dropped from the index (forgotten, swept, refused); a caller that still holds it goes round for a new one. Under the lock.</summary>
        public bool Removed { get; set; }
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
        // The Bridge's hot path: fresh credentials cost two lookups and a clock read, without a lock or an allocation.
        if (connections.TryGetValue(connectionId, out var bucket) && bucket.TryGetValue(key, out var entry)
            && entry.State.Current is { } current && time.GetUtcNow() < current.RefreshAt)
        {
            return new ValueTask<AssumedRole>(current);
        }

        return new ValueTask<AssumedRole>(LoadOrWaitAsync(connectionId, key, role, longLived, ct));
    }

    private async Task<AssumedRole> LoadOrWaitAsync(string connectionId, string key, AwsRole role, AwsCredentials longLived, CancellationToken ct)
    {
        while (true)
        {
            var bucket = connections.GetOrAdd(connectionId, static _ => new ConcurrentDictionary<string, Entry>(StringComparer.Ordinal));
            if (!bucket.TryGetValue(key, out var entry))
            {
                entry = bucket.GetOrAdd(key, new Entry(connectionId, key));
                SweepIfDue();
            }

            // Forget (or a sweep) may have dropped the bucket since the lookup: an entry added to it would be
            // outside the index, so go round and use the current one.
            if (!connections.TryGetValue(connectionId, out var live) || !ReferenceEquals(live, bucket))
            {
                continue;
            }

            Task<AssumedRole> load;
            TaskCompletionSource<AssumedRole>? source = null;
            lock (entry)
            {
                if (entry.Removed)
                {
                    continue;
                }

                var now = time.GetUtcNow();
                var state = entry.State;
                if (state.Current is { } current && now < current.RefreshAt)
                {
                    return current;
                }

                if (state.Load is { } pending)
                {
                    load = pending;
                }
                else if (now < state.RetryAt)
                {
                    // STS failed transiently a moment ago: no new call yet.
                    if (Usable(state.Current, now) is { } stillValid)
                    {
                        return stillValid;
                    }

                    throw state.Failure!.Again();
                }
                else
                {
                    source = new TaskCompletionSource<AssumedRole>(TaskCreationOptions.RunContinuationsAsynchronously);
                    entry.State = state with { Load = source.Task };
                    load = source.Task;
                }
            }

            if (source is not null)
            {
                // The shared call is not cancelled with one caller's request (others may be awaiting it), and it
                // does not run in that caller's execution context: its logs, log scope and trace are nobody's
                // request in particular.
                // (SuppressFlow throws when the flow is suppressed already; then Task.Run captures nothing anyway.)
                if (ExecutionContext.IsFlowSuppressed())
                {
                    _ = Task.Run(() => LoadAsync(entry, source, role, longLived), CancellationToken.None);
                }
                else
                {
                    using (ExecutionContext.SuppressFlow())
                    {
                        _ = Task.Run(() => LoadAsync(entry, source, role, longLived), CancellationToken.None);
                    }
                }
            }

            return await load.WaitAsync(ct);
        }
    }

    /// <summary>Credentials that may still be handed out after a transient failure: at least <see cref="MinRemaining"/> left.</summary>
    private static AssumedRole? Usable(AssumedRole? credentials, DateTimeOffset now) =>
        credentials is not null && credentials.Expiration - now >= MinRemaining ? credentials : null;

    /// <summary>Drops every cached entry of a connection (deleted, or its credentials replaced).</summary>
    public void Forget(string connectionId)
    {
        if (connections.TryRemove(connectionId, out var bucket))
        {
            foreach (var entry in bucket.Values)
            {
                lock (entry)
                {
                    entry.Removed = true;
                }
            }
        }
    }

    /// <summary>How many entries are cached (tests; a full count walks every connection).</summary>
    public int Count => connections.Values.Sum(b => b.Count);

    /// <summary>Starts a sweep of expired entries when one is due; runs off the caller's request, on the thread pool.</summary>
    private void SweepIfDue()
    {
        var now = time.GetUtcNow();
        var due = Interlocked.Read(ref nextSweepTicks);
        if (now.UtcTicks < due || Interlocked.CompareExchange(ref nextSweepTicks, (now + SweepInterval).UtcTicks, due) != due)
        {
            return;
        }

        ThreadPool.UnsafeQueueUserWorkItem(static self => self.Sweep(), this, preferLocal: false);
    }

    /// <summary>Removes entries with nothing worth keeping: no load in flight, no failure being remembered, credentials expired or none.</summary>
    internal void Sweep()
    {
        var now = time.GetUtcNow();
        foreach (var (connectionId, bucket) in connections)
        {
            foreach (var (key, entry) in bucket)
            {
                lock (entry)
                {
                    var state = entry.State;
                    if (state.Load is null && now >= state.RetryAt && (state.Current is null || now >= state.Current.Expiration))
                    {
                        entry.Removed = true;
                        bucket.TryRemove(KeyValuePair.Create(key, entry));
                    }
                }
            }

            // An entry added to the bucket between these two lines would leave the index with it: its caller then
            // loads once more than needed, which is all.
            if (bucket.IsEmpty)
            {
                connections.TryRemove(KeyValuePair.Create(connectionId, bucket));
            }
        }
    }

    private async Task LoadAsync(Entry entry, TaskCompletionSource<AssumedRole> source, AwsRole role, AwsCredentials longLived)
    {
        AssumedRole? issued = null;
        AwsRoleException? failure = null;
        try
        {
            issued = await sts.AssumeRoleAsync(entry.ConnectionId, role, longLived, RefreshMargin);
        }
        catch (AwsRoleException e)
        {
            failure = e;
        }
        catch (Exception e)
        {
            logger.LogError(e, "AssumeRole for connection {ConnectionId} failed unexpectedly.", entry.ConnectionId);
            failure = StsClient.Failed("The AssumeRole call failed unexpectedly.");
        }

        AssumedRole? answer;
        DateTimeOffset retryAt = default;
        lock (entry)
        {
            var now = time.GetUtcNow();
            if (issued is not null)
            {
                entry.State = new State(issued, null, DateTimeOffset.MinValue, null);
                answer = issued;
            }
            else if (failure!.Transient)
            {
                // An outage is no reason to stop using credentials that still work, but it is a reason not to ask
                // STS again on every request.
                retryAt = now + (failure.RetryAfterSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : TransientRetryInterval);
                answer = Usable(entry.State.Current, now);
                entry.State = new State(answer, null, retryAt, failure);
            }
            else
            {
                // A definite refusal: what was cached goes (the keys or the role no longer work), and the next read asks STS again.
                answer = null;
                entry.State = State.Empty;
                entry.Removed = true;
                if (connections.TryGetValue(entry.ConnectionId, out var bucket))
                {
                    bucket.TryRemove(KeyValuePair.Create(entry.Key, entry));
                }
            }
        }

        if (answer is not null)
        {
            if (failure is not null)
            {
                logger.LogWarning("Renewing the credentials of connection {ConnectionId} for {RoleArn} failed ({Code}); the cached ones, valid until {Expiration:O}, are served and STS is asked again from {RetryAt:O}.",
                    entry.ConnectionId, role.RoleArn, failure.Code, answer.Expiration, retryAt);
            }

            source.SetResult(answer);
        }
        else
        {
            source.SetException(failure!);
            _ = source.Task.Exception; // observed: every awaiting caller rethrows it
        }
    }
}
