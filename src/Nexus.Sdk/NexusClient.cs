using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Nexus.Sdk;

/// <summary>
/// The Nexus gateway API for an application that holds <c>connection_id</c>s: request, read, wait for, list, refresh
/// and delete connections, and get their credentials (cached, one fetch per connection at a time). Thread-safe; make
/// one per application (or use <c>services.AddNexusClient()</c>).
/// </summary>
/// <remarks>
/// Errors are typed (<see cref="NexusAttentionRequiredException"/>, <see cref="NexusConnectionNotActiveException"/>,
/// <see cref="NexusNotFoundException"/>, <see cref="NexusForbiddenException"/>, <see cref="NexusRateLimitedException"/>,
/// <see cref="NexusUnavailableException"/>). Retries follow the policy every Nexus SDK follows (the README's Retries):
/// idempotent calls (GET, DELETE; through the Bridge also HEAD, OPTIONS, PUT) are retried after 429/502/503/504 or a
/// connection that failed before any answer, at most 3 attempts in all (<see cref="NexusClientOptions.MaxRetries"/>),
/// with exponential backoff and full jitter, never sooner than <c>Retry-After</c>, and not at all when it is longer
/// than <see cref="NexusClientOptions.MaxRetryDelay"/>; the forced refresh only after 429 or 503 (Nexus did nothing);
/// the others (a POST, a 500, another 4xx, a timeout) are not retried. Through the Bridge only Nexus's own problems
/// count; a provider's answers are never retried.
/// </remarks>
public sealed class NexusClient : IDisposable
{
    /// <summary>The header carrying the API key.</summary>
    public const string ApiKeyHeader = "X-API-Key";

    private readonly HttpClient http;
    private readonly bool ownsHttp;
    private readonly NexusClientOptions options;
    private readonly CredentialCache cache;
    private readonly ConcurrentDictionary<string, Renewal> renewals = new(StringComparer.Ordinal);
    private readonly string baseUrl;

    /// <summary>
    /// A client with its own <see cref="HttpClient"/> over <paramref name="handler"/> (default: a pooled
    /// <see cref="SocketsHttpHandler"/>). It never follows a redirect: a <see cref="SocketsHttpHandler"/> or
    /// <see cref="HttpClientHandler"/> given here (at the end of any <see cref="DelegatingHandler"/> chain) has
    /// <c>AllowAutoRedirect</c> turned off; any other handler must not follow redirects itself.
    /// </summary>
    public NexusClient(NexusClientOptions options, HttpMessageHandler? handler = null)
        : this(options, new HttpClient(NexusHandler(handler), disposeHandler: true), true)
    {
    }

    /// <summary>
    /// A client over an <see cref="HttpClient"/> the caller owns (e.g. from <c>IHttpClientFactory</c>); its own timeout
    /// applies too. Its handler must not follow redirects (<c>AllowAutoRedirect = false</c>): a redirect followed to
    /// another host takes the API key there. A call that such a client followed away from Nexus throws
    /// <see cref="InvalidOperationException"/>.
    /// </summary>
    public NexusClient(HttpClient httpClient, NexusClientOptions options)
        : this(options, httpClient, false)
    {
    }

    private NexusClient(NexusClientOptions options, HttpClient http, bool ownsHttp)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(http);
        options.Validate();
        this.options = options;
        this.http = http;
        this.ownsHttp = ownsHttp;
        if (ownsHttp)
        {
            http.Timeout = options.Timeout;
        }

        baseUrl = options.BaseUrl!.AbsoluteUri.TrimEnd('/');
        cache = new CredentialCache(FetchCredentialsAsync, options.TimeProvider, options.CredentialExpiryMargin, options.CredentialMaxAge,
            static e => IsTransient(e, CancellationToken.None));
    }

    /// <summary>
    /// The handler of a client's own <see cref="HttpClient"/>, redirects off. Every request carries the API key as
    /// <c>X-API-Key</c>, which .NET's redirect handling keeps on a redirect to another host (it drops only
    /// <c>Authorization</c>); and the Bridge passes a provider's redirect on with the provider's absolute Location
    /// (https://api.github.com/...). Followed, that redirect would give the provider Nexus's key.
    /// </summary>
    private static HttpMessageHandler NexusHandler(HttpMessageHandler? handler)
    {
        if (handler is null)
        {
            return new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), AllowAutoRedirect = false };
        }

        Redirects.TurnOff(handler);
        return handler;
    }

    /// <summary>A client configured from <c>NEXUS_URL</c> and <c>NEXUS_API_KEY</c>.</summary>
    public static NexusClient FromEnvironment(HttpMessageHandler? handler = null) => new(NexusClientOptions.FromEnvironment(), handler);

    /// <summary>Nexus's base URL.</summary>
    public Uri BaseUrl => options.BaseUrl!;

    internal TimeProvider Time => options.TimeProvider;

    /// <summary>
    /// <c>POST /v1/request-connection</c>: a pending connection and the URL to send the user's browser to; for a
    /// machine-to-machine server, which needs no consent, an active connection without a URL
    /// (<see cref="RequestedConnection.AuthUrl"/> null, <see cref="RequestedConnection.Status"/> <c>active</c>). Not retried.
    /// </summary>
    public async Task<RequestedConnection> RequestConnectionAsync(ConnectionRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = new Dictionary<string, object?>
        {
            ["workspace_id"] = request.WorkspaceId,
            ["provider_name"] = request.ProviderName,
            ["return_url"] = request.ReturnUrl.AbsoluteUri,
        };
        if (request.Scopes is not null)
        {
            body["scopes"] = request.Scopes;
        }

        if (request.ConnectionConfig is { Count: > 0 })
        {
            body["connection_config"] = request.ConnectionConfig;
        }

        using var document = await SendForJsonAsync(HttpMethod.Post, "/v1/request-connection", body, null, cancellationToken).ConfigureAwait(false);
        return RequestedConnection.From(document!.RootElement);
    }

    /// <summary><c>GET /v1/connections/{id}</c>.</summary>
    public async Task<Connection> GetConnectionAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        using var document = await SendForJsonAsync(HttpMethod.Get, "/v1/connections/" + Escape(connectionId), null, connectionId, cancellationToken).ConfigureAwait(false);
        return Connection.From(document!.RootElement);
    }

    /// <summary><c>GET /v1/connections</c>, newest first, optionally of one workspace and status.</summary>
    public async Task<IReadOnlyList<Connection>> ListConnectionsAsync(string? workspaceId = null, string? status = null, int? limit = null,
        CancellationToken cancellationToken = default)
    {
        var query = new List<string>();
        if (workspaceId is not null)
        {
            query.Add("workspace_id=" + Uri.EscapeDataString(workspaceId));
        }

        if (status is not null)
        {
            query.Add("status=" + Uri.EscapeDataString(status));
        }

        if (limit is not null)
        {
            query.Add("limit=" + limit.Value.ToString(CultureInfo.InvariantCulture));
        }

        var path = "/v1/connections" + (query.Count > 0 ? "?" + string.Join('&', query) : "");
        using var document = await SendForJsonAsync(HttpMethod.Get, path, null, null, cancellationToken).ConfigureAwait(false);
        return [.. document!.RootElement.GetProperty("connections").EnumerateArray().Select(Connection.From)];
    }

    /// <summary><c>GET /v1/connections</c>, one page: filtered by workspace, status and provider, after <paramref name="cursor"/>.</summary>
    public async Task<ConnectionPage> ListConnectionsPageAsync(string? workspaceId = null, string? status = null, string? provider = null, int? limit = null,
        string? cursor = null, CancellationToken cancellationToken = default)
    {
        var query = new List<string>();
        foreach (var (name, value) in new[] { ("workspace_id", workspaceId), ("status", status), ("provider", provider), ("cursor", cursor),
                     ("limit", limit?.ToString(CultureInfo.InvariantCulture)) })
        {
            if (value is not null)
            {
                query.Add(name + "=" + Uri.EscapeDataString(value));
            }
        }

        var path = "/v1/connections" + (query.Count > 0 ? "?" + string.Join('&', query) : "");
        using var document = await SendForJsonAsync(HttpMethod.Get, path, null, null, cancellationToken).ConfigureAwait(false);
        var root = document!.RootElement;
        return new ConnectionPage([.. root.GetProperty("connections").EnumerateArray().Select(Connection.From)], Json.String(root, "next_cursor"));
    }

    /// <summary>
    /// Every connection the filters select, newest first, following <c>next_cursor</c> page after page (<paramref name="pageSize"/>
    /// per page) as the enumeration goes: <c>await foreach (var c in client.ListAllConnectionsAsync(status: "attention_required"))</c>.
    /// </summary>
    public async IAsyncEnumerable<Connection> ListAllConnectionsAsync(string? workspaceId = null, string? status = null, string? provider = null, int? pageSize = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? cursor = null;
        do
        {
            var page = await ListConnectionsPageAsync(workspaceId, status, provider, pageSize, cursor, cancellationToken).ConfigureAwait(false);
            foreach (var connection in page.Connections)
            {
                yield return connection;
            }

            cursor = page.NextCursor;
        }
        while (cursor is not null);
    }

    /// <summary>
    /// <c>POST /v1/connections/{id}/reconnect</c>: a new consent URL for the same connection id. The current credential keeps
    /// working until the user completes it. A machine-to-machine server's connection needs no consent: Nexus gets it a new
    /// token at once and the answer has no URL (<see cref="RequestedConnection.AuthUrl"/> null,
    /// <see cref="RequestedConnection.Status"/> <c>active</c>). Not retried.
    /// </summary>
    public async Task<RequestedConnection> ReconnectAsync(string connectionId, IReadOnlyList<string>? scopes = null, Uri? returnUrl = null,
        CancellationToken cancellationToken = default)
    {
        var body = new Dictionary<string, object?>();
        if (scopes is not null)
        {
            body["scopes"] = scopes;
        }

        if (returnUrl is not null)
        {
            body["return_url"] = returnUrl.AbsoluteUri;
        }

        using var document = await SendForJsonAsync(HttpMethod.Post, "/v1/connections/" + Escape(connectionId) + "/reconnect", body, connectionId, cancellationToken)
            .ConfigureAwait(false);
        return RequestedConnection.From(document!.RootElement);
    }

    /// <summary>
    /// Polls the connection until it is active and not <see cref="Connection.Reconnecting"/> (a reconnect waiting for the
    /// user's consent keeps polling, whatever the status) and returns it. Throws <see cref="NexusAttentionRequiredException"/> or
    /// <see cref="NexusConnectionNotActiveException"/> (failed) as soon as it cannot become active, and
    /// <see cref="TimeoutException"/> when <paramref name="timeout"/> passes first. A poll that fails transiently
    /// (<see cref="NexusRateLimitedException"/>; <see cref="NexusUnavailableException"/> without a Nexus code or with one
    /// of <see cref="TransientCodes"/>, as the retry policy decides; Nexus unreachable or too slow) does not end the
    /// wait: polling goes on (not sooner than its Retry-After) until the timeout, and then that last error is thrown,
    /// since it, not the user's consent, is why the connection was not seen active. Any other error ends the wait at
    /// once: a 500 <c>internal_error</c> (a <see cref="NexusException"/> with <see cref="NexusException.StatusCode"/>
    /// 500), a bug in Nexus, not a passing state, and polling through it would only hide it; and a 502/503/504 with
    /// another code (<c>token_request_failed</c>, <c>aws_assume_role_failed</c>, …), a refusal that asking again does not change.
    /// </summary>
    public async Task<Connection> WaitUntilActiveAsync(string connectionId, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var time = options.TimeProvider;
        var deadline = time.GetUtcNow() + timeout;
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            var wait = delay;
            Exception? transient = null;
            Connection? connection = null;
            try
            {
                connection = await GetConnectionAsync(connectionId, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsTransient(e, cancellationToken))
            {
                transient = e;
                if (e is NexusRetryableException { RetryAfter: { } after } && after > wait)
                {
                    wait = after;
                }
            }

            // A reconnect of an active or attention_required connection keeps that status until the user completes the
            // new consent; a consent that fails clears Reconnecting, and the status then decides.
            if (connection is { Reconnecting: false })
            {
                switch (connection.Status)
                {
                    case ConnectionStatuses.Active:
                        return connection;
                    case ConnectionStatuses.AttentionRequired:
                        throw new NexusAttentionRequiredException(connectionId, connection.Error, $"Connection {connectionId} needs attention ({connection.Error ?? "no reason given"}): the user must connect again.");
                    case ConnectionStatuses.Failed:
                        throw new NexusConnectionNotActiveException(connectionId, connection.Status, connection.Error, $"Connection {connectionId} failed ({connection.Error ?? "no reason given"}): request a new one.");
                }
            }

            var left = deadline - time.GetUtcNow();
            if (left <= TimeSpan.Zero)
            {
                if (transient is not null)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(transient);
                }

                throw new TimeoutException($"Connection {connectionId} was still {connection!.Status}{(connection.Reconnecting ? " (reconnecting)" : "")} after {timeout.TotalSeconds:0.#} s.");
            }

            await Task.Delay(wait < left ? wait : left, time, cancellationToken).ConfigureAwait(false);
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 1.5, 2000));
        }
    }

    /// <summary>
    /// A failure the next call may not meet: a 429, or a 502/503/504 that the retry policy retries (no Nexus code, or a
    /// transient one: <see cref="IsTransient(HttpStatusCode, string?)"/>), Nexus unreachable, or too slow (not the
    /// caller's cancellation). A 502/503/504 with another code (<c>token_request_failed</c>, <c>redirect_refused</c>,
    /// <c>aws_assume_role_failed</c>, …) is a refusal that asking again does not change.
    /// </summary>
    private static bool IsTransient(Exception e, CancellationToken cancellationToken) => e switch
    {
        NexusRetryableException { StatusCode: { } status } retryable => IsTransient(status, retryable.Problem is { } problem ? ProblemCode(problem) : null),
        HttpRequestException => true,
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        _ => false,
    };

    /// <summary>
    /// <c>DELETE /v1/connections/{id}</c>: revokes at the provider (best effort) and deletes; drops the cached credential.
    /// Retried as an idempotent call: a 404 on a retry is success (the attempt whose answer was lost deleted it).
    /// </summary>
    public async Task DeleteConnectionAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        cache.Invalidate(connectionId);
        using var _ = await SendForJsonAsync(HttpMethod.Delete, "/v1/connections/" + Escape(connectionId), null, connectionId, cancellationToken).ConfigureAwait(false);
        cache.Invalidate(connectionId);
    }

    /// <summary>
    /// <c>POST /v1/refresh/{id}</c>: refresh the access token now. Drops the cached credential first. A provider that
    /// rejects the refresh gives <see cref="NexusAttentionRequiredException"/>; a connection without a refresh token
    /// a <see cref="NexusException"/> with <see cref="NexusException.Code"/> <c>refresh_not_supported</c>. Sent again
    /// only after Nexus's 503 <c>refresh_unavailable</c> (Nexus stored no new token), never after a network error, a
    /// 429, another 503 (a proxy's), a 502 or a 504.
    /// </summary>
    public async Task<Connection> RefreshAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        cache.Invalidate(connectionId);
        // Not idempotent: Nexus deduplicates only refreshes in flight together. After a network error (or a proxy's
        // 502/504) the first refresh may have completed and rotated the provider's refresh token; sent again, it
        // would rotate it once more. Only Nexus's 503 refresh_unavailable (lock timeout, backoff, a transient provider
        // failure) means that it stored no new token, so only that is retried, after its Retry-After; a 429 or another
        // 503 comes from something in front of Nexus (Nexus sends neither here) and proves nothing.
        using var document = await SendForJsonAsync(HttpMethod.Post, "/v1/refresh/" + Escape(connectionId), null, connectionId, cancellationToken,
                Retry.WhenNexusDidNothing)
            .ConfigureAwait(false);
        cache.Invalidate(connectionId);
        return Connection.From(document!.RootElement);
    }

    /// <summary>
    /// The connection's credential, from the cache while it is fresh (until shortly before <c>expires_at</c>), else
    /// from <c>GET /v1/token/{id}</c>; concurrent callers share one fetch. When that fetch fails transiently (Nexus
    /// unreachable or busy: a 429, a 502/503/504 without a Nexus code or with one of <see cref="TransientCodes"/>, no
    /// answer, a timeout) while the cached credential has not expired, the cached credential is returned, and Nexus
    /// asked again after 5 s at most; any other error is thrown (a 500, a 502/503/504 refusal such as
    /// <c>token_request_failed</c>, <see cref="NexusAttentionRequiredException"/>, <see cref="NexusNotFoundException"/>).
    /// </summary>
    public ValueTask<NexusCredential> GetCredentialsAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        return cache.GetAsync(connectionId, cancellationToken);
    }

    /// <summary>
    /// After the provider refused a credential (401): refresh it at Nexus when the connection can be refreshed (OAuth
    /// 2.0), else read it again (a rotated API key), and return the new one.
    /// </summary>
    public async Task<NexusCredential> RenewCredentialsAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        try
        {
            await RefreshAsync(connectionId, cancellationToken).ConfigureAwait(false);
        }
        catch (NexusException e) when (e.Code is "refresh_not_supported")
        {
            cache.Invalidate(connectionId);
        }

        return await cache.GetAsync(connectionId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// After the provider refused <paramref name="rejected"/> (401): renew the connection's credential once for every
    /// caller that was refused the same credential. A renewal in flight is joined; a renewal already made for
    /// <paramref name="rejected"/>, or a cached credential newer than it, is used as it is; otherwise this caller
    /// starts the one renewal (<see cref="RenewCredentialsAsync(string, CancellationToken)"/>) that the others then
    /// join. So 50 requests refused at the same moment cause one <c>POST /v1/refresh</c>, not 50. The renewal runs to its
    /// end even if the caller that started it gives up; <paramref name="cancellationToken"/> stops only this caller's wait.
    /// </summary>
    public async Task<NexusCredential> RenewCredentialsAsync(string connectionId, NexusCredential rejected, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        ArgumentNullException.ThrowIfNull(rejected);
        while (true)
        {
            // A renewal in flight answers everyone; a finished one answers those refused the credential it replaced.
            renewals.TryGetValue(connectionId, out var last);
            if (last is not null && (!last.Task.IsCompleted || (last.Task.IsCompletedSuccessfully && last.Rejected.HasSameValues(rejected))))
            {
                return await last.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            // Someone else's renewal (or an expiry) has already replaced the refused credential.
            var current = await cache.GetAsync(connectionId, cancellationToken).ConfigureAwait(false);
            if (!current.HasSameValues(rejected))
            {
                return current;
            }

            var renewal = new Renewal(rejected);
            if (last is null ? renewals.TryAdd(connectionId, renewal) : renewals.TryUpdate(connectionId, renewal, last))
            {
                renewal.Start(() => RenewAsync(connectionId, rejected));
                return await renewal.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            // Another caller registered a renewal first: look again (and join it).
        }
    }

    /// <summary>
    /// One renewal after the provider refused <paramref name="rejected"/>, as the Go, TypeScript and Python SDKs make
    /// it: an OAuth 2.0 token is refreshed (<c>POST /v1/refresh</c>) and read again, except when Nexus answers
    /// <c>refresh_not_supported</c> (no refresh token): then nothing is read and <paramref name="rejected"/> itself
    /// comes back (the provider's 401 stands; <see cref="RefreshAsync"/> has dropped the cached copy). Other
    /// credentials have nothing to refresh and are read again (they may have been captured anew). A result with the
    /// same values as <paramref name="rejected"/> is not worth a retry.
    /// </summary>
    private async Task<NexusCredential> RenewAsync(string connectionId, NexusCredential rejected)
    {
        if (rejected.Strategy.Type == CredentialStrategy.OAuth2)
        {
            try
            {
                await RefreshAsync(connectionId, CancellationToken.None).ConfigureAwait(false);
            }
            catch (NexusException e) when (e.Code is "refresh_not_supported")
            {
                return rejected;
            }
        }
        else
        {
            cache.Invalidate(connectionId);
        }

        return await cache.GetAsync(connectionId, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>One renewal of a connection's credential, and the credential it replaces.</summary>
    private sealed class Renewal(NexusCredential rejected)
    {
        private readonly TaskCompletionSource<NexusCredential> completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public NexusCredential Rejected { get; } = rejected;

        public Task<NexusCredential> Task => completion.Task;

        public void Start(Func<Task<NexusCredential>> renew) => _ = RunAsync(renew);

        private async Task RunAsync(Func<Task<NexusCredential>> renew)
        {
            try
            {
                completion.TrySetResult(await renew().ConfigureAwait(false));
            }
            catch (Exception e)
            {
                completion.TrySetException(e);
            }
        }
    }

    /// <summary>Forgets the cached credential of a connection.</summary>
    public void InvalidateCredentials(string connectionId) => cache.Invalidate(connectionId);

    /// <summary>
    /// <c>POST /v1/connections/{id}/credentials</c>: store an api_key, basic_auth or aws_sigv4 connection's credential
    /// (the provider's schema fields, e.g. <c>api_key</c>), which makes it active. Not retried.
    /// </summary>
    public async Task<Connection> SubmitCredentialsAsync(string connectionId, IReadOnlyDictionary<string, string> fields, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fields);
        cache.Invalidate(connectionId);
        using var _ = await SendForJsonAsync(HttpMethod.Post, "/v1/connections/" + Escape(connectionId) + "/credentials", fields, connectionId, cancellationToken)
            .ConfigureAwait(false);
        // Again after the POST: a read that started while Nexus was storing the new values got the old ones and
        // cached them (Go and TS invalidate after the call too).
        cache.Invalidate(connectionId);

        return await GetConnectionAsync(connectionId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The Bridge URL for a provider API path: <c>{Nexus}/v1/bridge/{id}/{path}</c> (the path may carry a query).</summary>
    public Uri BridgeUri(string connectionId, string pathAndQuery)
    {
        ArgumentNullException.ThrowIfNull(pathAndQuery);
        return new Uri(baseUrl + "/v1/bridge/" + Escape(connectionId) + (pathAndQuery.StartsWith('/') ? "" : "/") + pathAndQuery);
    }

    /// <summary>
    /// Set on a request (<c>request.Options.Set(NexusClient.FollowBridgeRedirectsOption, false)</c>) to choose, for it
    /// alone, whether <see cref="SendThroughBridgeAsync"/> follows the Bridge's redirects (default:
    /// <see cref="NexusClientOptions.FollowBridgeRedirects"/>).
    /// </summary>
    public static readonly HttpRequestOptionsKey<bool> FollowBridgeRedirectsOption = new("Nexus.FollowBridgeRedirects");

    /// <summary>As fetch and the other SDKs: at most this many redirects are followed through the Bridge; one more is an error.</summary>
    internal const int MaxBridgeRedirects = 20;

    /// <summary>
    /// Sends <paramref name="request"/> through the Bridge: Nexus applies the credential, so the application never holds
    /// it. A relative request URI is a provider API path; an absolute one keeps only its path and query, unless it is
    /// already on this connection's Bridge (a <c>Location</c> handed back), which is sent as it is. The provider's
    /// answer comes back as it is (the Bridge itself refreshes once after a provider 401), its own problems included;
    /// Nexus's own refusals (<c>urn:nexus:problem:</c> problems: the connection needs attention, is not active, is not
    /// found, …) throw the typed errors (<see cref="NexusAttentionRequiredException"/>, …), as in the other SDKs. Its
    /// transient ones (429, 502, 503, 504: the database or the provider unavailable, a rate limit), and a connection to
    /// Nexus that failed before any answer, are first retried, as Nexus's API calls are
    /// (<see cref="NexusClientOptions.MaxRetries"/>, never sooner than <c>Retry-After</c>), when the method is idempotent
    /// (GET, HEAD, OPTIONS, PUT, DELETE) and the body can be sent again; never a POST or PATCH.
    /// </summary>
    /// <remarks>
    /// Redirects: the Bridge follows none. One inside the provider's API comes back with its <c>Location</c> rewritten
    /// to the Bridge's own path (<c>/v1/bridge/{id}/…</c>); this method follows that one (unless
    /// <see cref="NexusClientOptions.FollowBridgeRedirects"/> or the request's <see cref="FollowBridgeRedirectsOption"/>
    /// says not to), only when the Location, resolved against the request's URI, is on Nexus's own scheme, host and
    /// port and under the same connection's Bridge, and only then sends <c>X-API-Key</c> again: at most 20 hops (a 21st
    /// throws <see cref="HttpRequestException"/> with <see cref="HttpRequestError.ConfigurationLimitExceeded"/>, as
    /// <see cref="NexusCredentialHandler"/> does directly), 303
    /// and a POST's 301/302 becoming a GET without the body, the other redirects keeping the method and body when the
    /// body can be sent again (else the 3xx comes back). Any other redirect (the provider's host outside its API,
    /// which the Bridge passes on as the provider wrote it) comes back as the 3xx, so the key never goes elsewhere.
    /// A request sent again is a copy of <paramref name="request"/> (same headers, options and content).
    /// </remarks>
    public async Task<HttpResponseMessage> SendThroughBridgeAsync(string connectionId, HttpRequestMessage request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var target = request.RequestUri ?? throw new ArgumentException("The request has no URI.", nameof(request));
        var bridge = BridgeUri(connectionId, "");
        request.RequestUri = target.IsAbsoluteUri && OnBridge(target, bridge)
            ? target
            : BridgeUri(connectionId, target.IsAbsoluteUri ? target.PathAndQuery : target.OriginalString);
        request.Headers.Remove(ApiKeyHeader);
        request.Headers.TryAddWithoutValidation(ApiKeyHeader, options.ApiKey);
        var follow = request.Options.TryGetValue(FollowBridgeRedirectsOption, out var chosen) ? chosen : options.FollowBridgeRedirects;
        var response = await SendToBridgeAsync(request, cancellationToken).ConfigureAwait(false);
        for (var hops = 0; follow && BridgeTarget(request, response, bridge) is { } hopTarget; hops++)
        {
            if (hops == MaxBridgeRedirects)
            {
                // As NexusCredentialHandler directly, and the Go, TypeScript and Python SDKs through the Bridge.
                var status = response.StatusCode;
                response.Dispose();
                throw new HttpRequestException(HttpRequestError.ConfigurationLimitExceeded, $"Too many redirects (more than {MaxBridgeRedirects}).", null, status);
            }

            if (BridgeRedirect(request, response, hopTarget) is not { } next)
            {
                break;
            }

            response.Dispose();
            request = next;
            response = await SendToBridgeAsync(request, cancellationToken).ConfigureAwait(false);
        }

        if (await IsNexusProblemAsync(response, cancellationToken).ConfigureAwait(false))
        {
            // Nexus's own refusal (a problem whose type is urn:nexus:problem:…: connection not active, not found, …)
            // becomes the typed error, as in the Go, TypeScript and Python SDKs; a provider's problem comes back as it is.
            using (response)
            {
                throw await ErrorAsync(response, connectionId, RetryAfter(response), cancellationToken).ConfigureAwait(false);
            }
        }

        return response;
    }

    /// <summary>The methods whose Bridge calls are sent again after a transient refusal of Nexus's own (as in the Go, TypeScript and Python SDKs).</summary>
    private static readonly HashSet<HttpMethod> IdempotentMethods = [HttpMethod.Get, HttpMethod.Head, HttpMethod.Options, HttpMethod.Put, HttpMethod.Delete];

    /// <summary>
    /// Sends one request to the Bridge. When Nexus itself refuses it transiently (a <c>urn:nexus:problem:</c> problem
    /// with 429, 502, 503 or 504: the database or the provider unavailable, a rate limit…), or the connection fails
    /// before any answer (<see cref="HttpRequestException"/>: refused, reset, DNS), an idempotent request (GET, HEAD,
    /// OPTIONS, PUT, DELETE) whose body can be sent again is sent again (a copy) up to
    /// <see cref="NexusClientOptions.MaxRetries"/> times, with the backoff of Nexus's API calls, never sooner than
    /// <c>Retry-After</c>; a <c>Retry-After</c> longer than <see cref="NexusClientOptions.MaxRetryDelay"/> is not waited
    /// for. A provider's answer, whatever its status, is never retried here (the provider may have acted on it).
    /// </summary>
    private async Task<HttpResponseMessage> SendToBridgeAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var retryable = IdempotentMethods.Contains(request.Method) && Requests.CanReplay(request.Content);
        if (!IdempotentMethods.Contains(request.Method) && request.Content is null)
        {
            request.Content = Requests.NeverResent();
        }

        for (var attempt = 0; ; attempt++)
        {
            HttpResponseMessage response;
            try
            {
                response = await SendToNexusAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException) when (retryable && attempt < options.MaxRetries)
            {
                // No answer from Nexus: safe to send again for an idempotent method (RFC 9110 §9.2.2).
                await Task.Delay(Backoff(attempt, null), options.TimeProvider, cancellationToken).ConfigureAwait(false);
                request = Copy(request, request.Method, request.RequestUri!, request.Content);
                continue;
            }

            if (!retryable || attempt >= options.MaxRetries || !IsTransient(response.StatusCode, null)
                || RetryAfter(response) is { } tooLong && tooLong > options.MaxRetryDelay
                || !await IsNexusProblemAsync(response, cancellationToken).ConfigureAwait(false)
                || !IsTransient(response.StatusCode, await ProblemCodeAsync(response, cancellationToken).ConfigureAwait(false)))
            {
                return response;
            }

            var retryAfter = RetryAfter(response);
            response.Dispose();
            await Task.Delay(Backoff(attempt, retryAfter), options.TimeProvider, cancellationToken).ConfigureAwait(false);
            request = Copy(request, request.Method, request.RequestUri!, request.Content);
        }
    }

    /// <summary>Whether an answer is Nexus's own problem (its <c>type</c> is <c>urn:nexus:problem:…</c>), not a provider's; its body is buffered to find out.</summary>
    private static async Task<bool> IsNexusProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if ((int)response.StatusCode < 400 || response.Content.Headers.ContentType?.MediaType != "application/problem+json")
        {
            return false;
        }

        await response.Content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
        return IsNexusProblem(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Whether a problem document is Nexus's own (its <c>type</c> is <c>urn:nexus:problem:…</c>), not a provider's.</summary>
    private static bool IsNexusProblem(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            return Json.String(document.RootElement, "type") is { } type && type.StartsWith("urn:nexus:problem:", StringComparison.Ordinal);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>
    /// Where <paramref name="response"/> redirects <paramref name="request"/> through the Bridge, when it is a redirect
    /// to follow: null when it is not a redirect, or its Location (resolved against the request's URI) is not on
    /// <paramref name="bridge"/> (that 3xx comes back, whatever the count of redirects so far).
    /// </summary>
    private static Uri? BridgeTarget(HttpRequestMessage request, HttpResponseMessage response, Uri bridge)
    {
        var status = (int)response.StatusCode;
        if (status is not (301 or 302 or 303 or 307 or 308) || response.Headers.Location is not { } location || request.RequestUri is not { IsAbsoluteUri: true } current)
        {
            return null;
        }

        var target = location.IsAbsoluteUri ? location : new Uri(current, location);
        return OnBridge(target, bridge) ? target : null;
    }

    /// <summary>
    /// The request that follows <paramref name="response"/> to <paramref name="target"/> on the Bridge (see
    /// <see cref="BridgeTarget"/>), or null when the redirect keeps a body that cannot be sent again. The method
    /// changes as fetch and .NET change it.
    /// </summary>
    private static HttpRequestMessage? BridgeRedirect(HttpRequestMessage request, HttpResponseMessage response, Uri target)
    {
        var status = (int)response.StatusCode;
        var toGet = (status == 303 && request.Method != HttpMethod.Get && request.Method != HttpMethod.Head) || (status is 301 or 302 && request.Method == HttpMethod.Post);
        if (!toGet && !Requests.CanReplay(request.Content))
        {
            return null;
        }

        return Copy(request, toGet ? HttpMethod.Get : request.Method, target, toGet ? null : request.Content);
    }

    /// <summary>A new request like <paramref name="request"/> (its version, headers and options) with this method, URI and content.</summary>
    private static HttpRequestMessage Copy(HttpRequestMessage request, HttpMethod method, Uri target, HttpContent? content)
    {
        var next = new HttpRequestMessage(method, target)
        {
            Version = request.Version,
            VersionPolicy = request.VersionPolicy,
            Content = content,
        };
        foreach (var (name, values) in request.Headers.NonValidated)
        {
            next.Headers.TryAddWithoutValidation(name, values);
        }

        foreach (var (key, value) in request.Options)
        {
            ((IDictionary<string, object?>)next.Options)[key] = value;
        }

        return next;
    }

    /// <summary>
    /// Whether <paramref name="url"/> is on the Bridge <paramref name="bridge"/> (<c>{Nexus}/v1/bridge/{id}/</c>): the
    /// same scheme, host and port, no user info, and its path that one or under it, with no dot segment (escaped or
    /// not) that could lead out of it.
    /// </summary>
    private static bool OnBridge(Uri url, Uri bridge)
    {
        if (!url.IsAbsoluteUri || !Redirects.SameOrigin(url, bridge) || !string.IsNullOrEmpty(url.UserInfo))
        {
            return false;
        }

        var prefix = bridge.AbsolutePath;
        var path = url.AbsolutePath;
        if (path != prefix.TrimEnd('/') && !path.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }

        return !path.Split('/').Select(Uri.UnescapeDataString).Any(segment => segment is "." or "..");
    }

    /// <summary>
    /// Sends a request that carries the API key. The client's own handler follows no redirect (see
    /// <see cref="NexusHandler"/>); an <see cref="HttpClient"/> of the caller's may, and then the key has gone to
    /// another host already: that is not passed over in silence.
    /// </summary>
    private async Task<HttpResponseMessage> SendToNexusAsync(HttpRequestMessage request, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        var response = await http.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
        if (response.RequestMessage?.RequestUri is { IsAbsoluteUri: true } final && !Redirects.SameOrigin(final, options.BaseUrl!))
        {
            response.Dispose();
            throw new InvalidOperationException($"The HttpClient given to NexusClient followed a redirect from Nexus to {final.Scheme}://{final.Authority}, "
                + "which received the Nexus API key with it. Give NexusClient an HttpClient whose handler does not follow redirects "
                + "(SocketsHttpHandler or HttpClientHandler with AllowAutoRedirect = false), and consider rotating the key.");
        }

        return response;
    }

    private async Task<NexusCredential> FetchCredentialsAsync(string connectionId, CancellationToken cancellationToken)
    {
        using var document = await SendForJsonAsync(HttpMethod.Get, "/v1/token/" + Escape(connectionId), null, connectionId, cancellationToken).ConfigureAwait(false);
        return NexusCredential.Parse(connectionId, document!.RootElement);
    }

    /// <summary>When a call is sent again.</summary>
    private enum Retry
    {
        /// <summary>Never (a POST that is not idempotent).</summary>
        Never,

        /// <summary>After a connection that failed before any answer or 429/502/503/504 (GET, DELETE).</summary>
        Idempotent,

        /// <summary>
        /// Only after an answer saying that Nexus did nothing: its 503 <c>refresh_unavailable</c> (problem type
        /// <c>urn:nexus:problem:refresh_unavailable</c>). Not another 503 nor a 429, which Nexus never sends here: a
        /// proxy's, which says nothing of whether Nexus stored a new token.
        /// </summary>
        WhenNexusDidNothing,
    }

    /// <summary>Sends one call (retrying idempotent ones on transient failures) and parses the JSON answer (null for 204).</summary>
    private async Task<JsonDocument?> SendForJsonAsync(HttpMethod method, string path, object? body, string? connectionId, CancellationToken cancellationToken,
        Retry? retry = null)
    {
        var policy = retry ?? (method == HttpMethod.Get || method == HttpMethod.Delete ? Retry.Idempotent : Retry.Never);
        for (var attempt = 0; ; attempt++)
        {
            using var request = new HttpRequestMessage(method, baseUrl + path);
            request.Headers.TryAddWithoutValidation(ApiKeyHeader, options.ApiKey);
            request.Headers.Accept.ParseAdd("application/json");
            if (body is not null)
            {
                request.Content = JsonContent.Create(body);
            }
            else if (policy != Retry.Idempotent)
            {
                request.Content = Requests.NeverResent();
            }

            HttpResponseMessage response;
            try
            {
                response = await SendToNexusAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException) when (policy == Retry.Idempotent && attempt < options.MaxRetries)
            {
                // No answer from Nexus (refused, reset, DNS): safe to send again for an idempotent call.
                await Task.Delay(Backoff(attempt, null), options.TimeProvider, cancellationToken).ConfigureAwait(false);
                continue;
            }

            using (response)
            {
                if (response.IsSuccessStatusCode)
                {
                    if (response.StatusCode == HttpStatusCode.NoContent || response.Content.Headers.ContentLength == 0)
                    {
                        return null;
                    }

                    var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                    await using (stream.ConfigureAwait(false))
                    {
                        return await JsonDocument.ParseAsync(stream, default, cancellationToken).ConfigureAwait(false);
                    }
                }

                if (attempt > 0 && method == HttpMethod.Delete && response.StatusCode == HttpStatusCode.NotFound)
                {
                    // A retried DELETE: the attempt whose answer was lost (a proxy's 502, a reset) deleted it, and gone
                    // is what was asked.
                    return null;
                }

                var retryAfter = RetryAfter(response);
                var transient = policy switch
                {
                    Retry.Idempotent => IsTransient(response.StatusCode, await ProblemCodeAsync(response, cancellationToken).ConfigureAwait(false)),
                    Retry.WhenNexusDidNothing => response.StatusCode is HttpStatusCode.ServiceUnavailable
                        && await ProblemCodeAsync(response, cancellationToken).ConfigureAwait(false) == "refresh_unavailable",
                    _ => false,
                };
                if (transient && attempt < options.MaxRetries && (retryAfter is null || retryAfter <= options.MaxRetryDelay))
                {
                    await Task.Delay(Backoff(attempt, retryAfter), options.TimeProvider, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                throw await ErrorAsync(response, connectionId, retryAfter, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private const string ProblemTypePrefix = "urn:nexus:problem:";

    /// <summary>
    /// The codes of Nexus's 502/503/504 problems that a later attempt may not meet (docs/errors.md): the provider or AWS
    /// STS unreachable, slow or throttling, the database unavailable, a refresh not possible yet. The others are
    /// refusals that sending again does not change, and may repeat work (502 <c>token_request_failed</c>: each attempt
    /// starts another client_credentials grant; <c>redirect_refused</c>; <c>aws_assume_role_failed</c>).
    /// </summary>
    public static IReadOnlySet<string> TransientCodes { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "upstream_unreachable", "upstream_timeout", "database_unavailable", "refresh_unavailable", "aws_sts_throttled",
    };

    /// <summary>
    /// Nexus's transient answers, which an idempotent call is sent again after: 429, and 502, 503, 504 without a Nexus
    /// problem code (<paramref name="code"/> null: a proxy's answer) or with one of <see cref="TransientCodes"/>. Not a
    /// 500 (<c>internal_error</c> is a bug, not a passing state), nor any other status.
    /// </summary>
    private static bool IsTransient(HttpStatusCode status, string? code) => status switch
    {
        HttpStatusCode.TooManyRequests => true,
        HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout => code is null || TransientCodes.Contains(code),
        _ => false,
    };

    /// <summary>
    /// Nexus's code in a JSON (problem) answer: its <c>code</c>, else what its <c>type</c> names after
    /// <c>urn:nexus:problem:</c>; null for another body. The body is buffered to read it.
    /// </summary>
    private static async Task<string?> ProblemCodeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentType?.MediaType is not ("application/problem+json" or "application/json"))
        {
            return null;
        }

        await response.Content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
            return ProblemCode(document.RootElement);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Nexus's code in a JSON answer's root: its <c>code</c>, else (none, or empty) what its <c>type</c> names after
    /// <c>urn:nexus:problem:</c>, as the Go, TypeScript and Python SDKs read it; null for another value, and never empty.
    /// </summary>
    private static string? ProblemCode(JsonElement root) =>
        root.ValueKind != JsonValueKind.Object
            ? null
            : Json.String(root, "code") is { Length: > 0 } code
                ? code
                : Json.String(root, "type") is { } type && type.StartsWith(ProblemTypePrefix, StringComparison.Ordinal) && type.Length > ProblemTypePrefix.Length
                    ? type[ProblemTypePrefix.Length..]
                    : null;

    /// <summary>Exponential backoff with full jitter, never sooner than Retry-After (plus up to 10 % jitter), capped at MaxRetryDelay.</summary>
    internal TimeSpan Backoff(int attempt, TimeSpan? retryAfter)
    {
        if (retryAfter is { } after)
        {
            return after + TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * after.TotalMilliseconds * 0.1);
        }

        var ceiling = Math.Min(options.MaxRetryDelay.TotalMilliseconds, options.RetryBaseDelay.TotalMilliseconds * Math.Pow(2, attempt));
        return TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * ceiling);
    }

    private TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        if (header?.Delta is { } delta)
        {
            return delta;
        }

        return header?.Date is { } date ? (date - options.TimeProvider.GetUtcNow()) is var wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero : null;
    }

    /// <summary>The typed error for a problem answer. Only Nexus's title, detail and code go into the message; never a body that is not a problem.</summary>
    private static async Task<NexusException> ErrorAsync(HttpResponseMessage response, string? connectionId, TimeSpan? retryAfter, CancellationToken cancellationToken)
    {
        string? code = null, title = null, detail = null, connectionStatus = null, reason = null;
        JsonElement? problem = null;
        if (response.Content.Headers.ContentType?.MediaType is "application/problem+json" or "application/json")
        {
            try
            {
                using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
                var root = document.RootElement;
                problem = root.ValueKind == JsonValueKind.Object ? root.Clone() : null;
                code = ProblemCode(root);
                title = Json.String(root, "title");
                detail = Json.String(root, "detail");
                // Nexus's 409 connection_not_active carries the connection's status as "status" (a string, unlike RFC 9457's number).
                connectionStatus = Json.String(root, "status");
                reason = Json.String(root, "error");
                connectionId = Json.String(root, "connection_id") ?? connectionId;
            }
            catch (JsonException)
            {
                // Not a problem document after all: the status code alone speaks.
            }
        }

        var status = (int)response.StatusCode;
        var what = connectionId is null ? "" : $" (connection {connectionId})";
        var text = $"Nexus answered {status} {code ?? response.ReasonPhrase}{what}: {title ?? "request failed"}{(detail is null ? "" : " " + detail)}";
        NexusException error = response.StatusCode switch
        {
            HttpStatusCode.Conflict when code == "connection_not_active" && connectionStatus == ConnectionStatuses.AttentionRequired && connectionId is not null =>
                new NexusAttentionRequiredException(connectionId, reason, $"Connection {connectionId} needs attention ({reason ?? "no reason given"}): the user must connect again."),
            HttpStatusCode.Conflict when code == "connection_not_active" =>
                new NexusConnectionNotActiveException(connectionId, connectionStatus ?? "unknown", reason, $"Connection {connectionId} is {connectionStatus ?? "not active"}{(reason is null ? "" : $" ({reason})")}: {detail ?? title}"),
            // Nexus's problem names neither the connection nor its status: the connection is the call's, and it failed.
            HttpStatusCode.Conflict when code == "connection_failed" =>
                new NexusConnectionNotActiveException(connectionId, ConnectionStatuses.Failed, null, $"Connection {connectionId} is failed, not active: {detail ?? title ?? "request a new one."}", code),
            HttpStatusCode.NotFound => new NexusNotFoundException(text, code, connectionId),
            HttpStatusCode.Forbidden => new NexusForbiddenException(text, code, connectionId),
            HttpStatusCode.Unauthorized => new NexusUnauthorizedException(text, code),
            HttpStatusCode.TooManyRequests => new NexusRateLimitedException(text, code, connectionId, retryAfter),
            HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout =>
                new NexusUnavailableException(text, response.StatusCode, code, connectionId, retryAfter),
            _ => new NexusException(text, response.StatusCode, code, connectionId),
        };
        error.Problem = problem;
        return error;
    }

    private static string Escape(string connectionId)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        return Uri.EscapeDataString(connectionId);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (ownsHttp)
        {
            http.Dispose();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"NexusClient {{ BaseUrl = {BaseUrl} }}";
}
