using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Xml;
using System.Xml.Linq;
using Nexus.Sdk.Aws;
using Nexus.Server.Connections;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Bridge;

/// <summary>Temporary credentials STS issued for a role.</summary>
/// <param name="RefreshAt">When the cached credentials stop being handed out and a new AssumeRole is made.</param>
internal sealed record AssumedRole(AwsCredentials Credentials, DateTimeOffset Expiration, DateTimeOffset RefreshAt, string RoleArn)
{
    // The temporary secret never reaches a log through ToString() (AwsCredentials masks it too).
    public override string ToString() => $"AssumedRole {{ RoleArn = {RoleArn}, Expiration = {Expiration:O} }}";
}

/// <summary>Why no temporary credentials could be had, as the problem GET /v1/token and the Bridge answer.</summary>
/// <param name="Transient">
/// STS may well answer the next call (a timeout, no connection, a 5xx, throttling): cached credentials that are still
/// valid keep being served, and STS is asked again only after a short pause. Otherwise the refusal is definite
/// (AccessDenied, InvalidClientTokenId, ExpiredToken, SignatureDoesNotMatch…) and the cached credentials are dropped.
/// </param>
/// <param name="RetryAfterSeconds">Sent as Retry-After (throttling).</param>
/// <param name="StsMessage">
/// STS's own words for a refusal ("User: arn:aws:iam::…:user/… is not authorized to perform: sts:AssumeRole…"). It
/// names the IAM user behind the stored keys, so it is logged and shown at capture to whoever just entered those
/// keys, and never put in the problem that token reads and the Bridge answer to an app or agent.
/// </param>
internal sealed class AwsRoleException(ProblemType type, string title, string detail, bool transient = false, int? retryAfterSeconds = null, string? stsMessage = null) : Exception(title + " " + detail)
{

    public ProblemType Type { get; } = type;

    public int Status => Type.Status;

    public string Code => Type.Code;

    public string Title { get; } = title;

    public string Detail { get; } = detail;

    public bool Transient { get; } = transient;

    public int? RetryAfterSeconds { get; } = retryAfterSeconds;

    public string? StsMessage { get; } = stsMessage;

    /// <summary>The same failure as a new exception, for a remembered failure thrown again to another caller.</summary>
    public AwsRoleException Again() => new(Type, Title, Detail, Transient, RetryAfterSeconds, StsMessage);

    public IResult ToProblem()
    {
        if (RetryAfterSeconds is not { } seconds)
        {
            return Problems.Create(Type, Detail, title: Title);
        }

        return new RetryAfterResult(seconds, Problems.Create(Type, Detail, new Dictionary<string, object?> { ["retry_after"] = seconds }, Title));
    }
}

/// <summary>
/// STS AssumeRole for aws_sigv4 connections that name a role: the stored long-lived keys sign an AssumeRole request
/// (SigV4, service "sts") and the temporary credentials it returns are what GET /v1/token hands out and the Bridge
/// signs with. They are cached in memory (never stored) per connection, role and stored keys; loads are
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

    // The AssumeRole query API, version 2011-06-15 (STS API reference, "AssumeRole" and "Common parameters").
    private const string StsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/";
    private const int MaxResponseBytes = 64 * 1024;
    private const int MaxMessageLength = 500;

    // STS's throttling codes (API reference "Common errors": Throttling; some SDKs also see these two).
    private static readonly HashSet<string> ThrottlingCodes = new(StringComparer.Ordinal) { "Throttling", "ThrottlingException", "RequestLimitExceeded" };

    /// <summary>connection id → (cache key → entry).</summary>
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Entry>> connections = new(StringComparer.Ordinal);
    private readonly IHttpClientFactory http;
    private readonly UpstreamPolicy policy;
    private readonly NexusOptions options;
    private readonly TimeProvider time;
    private readonly ILogger<AwsRoleCredentials> logger;
    private long nextSweepTicks;

    public AwsRoleCredentials(IHttpClientFactory http, UpstreamPolicy policy, NexusOptions options, TimeProvider time, ILogger<AwsRoleCredentials> logger, ConnectionStore store)
    {
        this.http = http;
        this.policy = policy;
        this.options = options;
        this.time = time;
        this.logger = logger;
        // A deleted connection's temporary credentials are dropped at once rather than at their expiry.
        store.OnDeleted(Forget);
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
            issued = await AssumeRoleAsync(entry.ConnectionId, role, longLived);
        }
        catch (AwsRoleException e)
        {
            failure = e;
        }
        catch (Exception e)
        {
            logger.LogError(e, "AssumeRole for connection {ConnectionId} failed unexpectedly.", entry.ConnectionId);
            failure = new AwsRoleException(ProblemCatalog.AwsAssumeRoleFailed, "AWS STS did not issue credentials for the role.", "The AssumeRole call failed unexpectedly.");
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

    private async Task<AssumedRole> AssumeRoleAsync(string connectionId, AwsRole role, AwsCredentials longLived)
    {
        AwsRoleException Unusable(string problem)
        {
            logger.LogWarning("AssumeRole for {RoleArn} not made: the STS endpoint {Endpoint} {Problem}", role.RoleArn, role.StsEndpoint, problem);
            return Failed($"The STS endpoint '{role.StsEndpoint}' is not usable: it {problem}");
        }

        // Checked at registration too; checked again because the insecure-upstream policy may have changed since, and
        // a provider row may predate a check: the signed request must never go anywhere else than an STS root.
        if (!Uri.TryCreate(role.StsEndpoint, UriKind.Absolute, out var endpoint))
        {
            throw Unusable("must be an absolute URL.");
        }

        if ((policy.Check(role.StsEndpoint) ?? AwsRoleConfig.EndpointShapeProblem(endpoint)) is { } endpointProblem)
        {
            throw Unusable(endpointProblem);
        }

        // Role chaining: when the keys are themselves temporary, STS refuses a DurationSeconds above one hour
        // (AssumeRole, "DurationSeconds"), whatever the role's maximum session duration.
        var duration = longLived.SessionToken is null ? role.DurationSeconds : Math.Min(role.DurationSeconds, AwsRoleConfig.MaxChainedDurationSeconds);

        // STS API reference, AssumeRole: the query API's parameters as a form body (POST keeps them out of URLs and logs).
        var parameters = new List<KeyValuePair<string, string>>
        {
            new("Action", "AssumeRole"),
            new("Version", "2011-06-15"),
            new("RoleArn", role.RoleArn),
            new("RoleSessionName", SessionName(connectionId)),
            new("DurationSeconds", duration.ToString(CultureInfo.InvariantCulture)),
        };
        if (role.ExternalId is not null)
        {
            parameters.Add(new("ExternalId", role.ExternalId));
        }

        var body = Encoding.UTF8.GetBytes(string.Join('&', parameters.Select(p => Uri.EscapeDataString(p.Key) + "=" + Uri.EscapeDataString(p.Value))));
        using var request = new HttpRequestMessage(HttpMethod.Post, endpoint) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-www-form-urlencoded") { CharSet = "utf-8" };
        request.Headers.Accept.ParseAdd("text/xml");

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(options.UpstreamTimeoutSeconds), time);
        var now = time.GetUtcNow();
        string? text;
        int status;
        try
        {
            // Signed with the long-lived keys (and their session token, for keys that are themselves temporary), for
            // the region of the endpoint (AwsRole.SigningRegion): STS refuses any other.
            await SigV4Signer.SignAsync(request, longLived, role.SigningRegion, "sts", now, cancellationToken: timeout.Token);
            using var response = await http.CreateClient(UpstreamPolicy.HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            status = (int)response.StatusCode;
            text = await response.Content.ReadLimitedAsync(MaxResponseBytes, timeout.Token);
        }
        catch (OperationCanceledException)
        {
            logger.LogWarning("AssumeRole at {Host} for {RoleArn} timed out.", endpoint.Host, role.RoleArn);
            throw new AwsRoleException(ProblemCatalog.UpstreamTimeout, "AWS STS did not answer in time.",
                $"No AssumeRole response from {endpoint.Host} within {options.UpstreamTimeoutSeconds} s (Nexus:UpstreamTimeoutSeconds).", transient: true);
        }
        catch (HttpRequestException e)
        {
            logger.LogWarning("AssumeRole at {Host} for {RoleArn} failed: {Error}", endpoint.Host, role.RoleArn, e.HttpRequestError);
            throw new AwsRoleException(ProblemCatalog.UpstreamUnreachable, "AWS STS could not be reached.", $"{endpoint.Host}: {e.HttpRequestError}.", transient: true);
        }

        var document = text is null ? null : TryParse(text);
        if (status == 200)
        {
            var credentials = document?.Root is { Name.LocalName: "AssumeRoleResponse" } root
                ? root.Element(XName.Get("AssumeRoleResult", StsNamespace))?.Element(XName.Get("Credentials", StsNamespace))
                : null;
            string? Field(string name) => credentials?.Element(XName.Get(name, StsNamespace))?.Value.Trim() is { Length: > 0 } v ? v : null;
            if (Field("AccessKeyId") is { } keyId && Field("SecretAccessKey") is { } secret && Field("SessionToken") is { } token
                && DateTimeOffset.TryParse(Field("Expiration"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var expiration))
            {
                // Hand the credentials out until RefreshMargin before expiry, or half their life if that is shorter.
                var margin = TimeSpan.FromTicks(Math.Min(RefreshMargin.Ticks, Math.Max(0, (expiration - now).Ticks / 2)));
                return new AssumedRole(new AwsCredentials(keyId, secret, token), expiration, expiration - margin, role.RoleArn);
            }

            logger.LogWarning("AssumeRole at {Host} for {RoleArn} answered 200 without credentials.", endpoint.Host, role.RoleArn);
            throw Failed($"STS answered 200 but not with an AssumeRole result that has credentials ({endpoint.Host}).");
        }

        // The query API's error document: ErrorResponse/Error/{Type, Code, Message} (STS API reference, "Common errors").
        var error = document?.Root is { Name.LocalName: "ErrorResponse" } errorRoot ? errorRoot.Elements().FirstOrDefault(e => e.Name.LocalName == "Error") : null;
        var code = error?.Elements().FirstOrDefault(e => e.Name.LocalName == "Code")?.Value.Trim();
        var message = error?.Elements().FirstOrDefault(e => e.Name.LocalName == "Message")?.Value;
        var stsMessage = string.IsNullOrWhiteSpace(message) ? null : Clean(message, longLived);
        logger.LogWarning("AssumeRole at {Host} for {RoleArn} refused: {Status} {Code} {StsMessage}", endpoint.Host, role.RoleArn, status, code ?? "(no error document)", stsMessage);
        if (status == StatusCodes.Status429TooManyRequests || (code is not null && ThrottlingCodes.Contains(code)))
        {
            var seconds = (int)TransientRetryInterval.TotalSeconds;
            throw new AwsRoleException(ProblemCatalog.AwsStsThrottled, "AWS STS is throttling AssumeRole calls.",
                $"STS answered {status} {(code is null ? "" : Clean(code, longLived) + " ")}({endpoint.Host}); try again in {seconds} s.", transient: true, retryAfterSeconds: seconds);
        }

        // STS's own trouble (5xx, with or without an error document) may be over by the next call; any other
        // answer (AccessDenied, InvalidClientTokenId, ExpiredToken, SignatureDoesNotMatch, ValidationError…) is a refusal.
        var transient = status >= 500;
        if (string.IsNullOrEmpty(code))
        {
            throw Failed($"STS answered {status} without an error document ({endpoint.Host}).", transient);
        }

        throw Failed($"STS refused AssumeRole for {role.RoleArn}: {Clean(code, longLived)}.", transient, stsMessage);
    }

    private static AwsRoleException Failed(string detail, bool transient = false, string? stsMessage = null) =>
        new(ProblemCatalog.AwsAssumeRoleFailed, "AWS STS did not issue credentials for the role.", detail, transient, stsMessage: stsMessage);

    /// <summary>
    /// RoleSessionName: 2 to 64 characters of [\w+=,.@-] (AssumeRole). It names the connection in CloudTrail, so the
    /// role's owner can see which Nexus connection used the role.
    /// </summary>
    public static string SessionName(string connectionId)
    {
        var name = new StringBuilder("nexus-", 64);
        foreach (var c in connectionId)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || "_+=,.@-".Contains(c, StringComparison.Ordinal) ? c : '-');
        }

        return name.Length > 64 ? name.ToString(0, 64) : name.ToString();
    }

    /// <summary>STS messages hold no secrets, but one that echoed our keys would put them in a response: they are masked, and length and control characters bounded.</summary>
    private static string Clean(string text, AwsCredentials keys)
    {
        foreach (var value in new[] { keys.SecretAccessKey, keys.SessionToken, keys.AccessKeyId })
        {
            if (!string.IsNullOrEmpty(value))
            {
                text = text.Replace(value, "…", StringComparison.Ordinal);
            }
        }

        var cleaned = new string(text.Select(c => char.IsControl(c) ? ' ' : c).ToArray()).Trim();
        return cleaned.Length > MaxMessageLength ? cleaned[..MaxMessageLength] + "…" : cleaned;
    }

    private static XDocument? TryParse(string text)
    {
        try
        {
            // No DTDs and no external resources: the document comes from the network.
            using var reader = XmlReader.Create(new StringReader(text), new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null });
            return XDocument.Load(reader);
        }
        catch (XmlException)
        {
            return null;
        }
    }
}
