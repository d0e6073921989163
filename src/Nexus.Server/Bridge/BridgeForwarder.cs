using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using Nexus.Server.Credentials;
using Nexus.Server.Hosting;

namespace Nexus.Server.Bridge;

/// <summary>
/// Forwards one request to a provider's API with the connection's credential applied, streaming both bodies.
/// The caller never holds the credential: whatever it sent as credentials is removed, and nothing Nexus adds is
/// sent back. Small bodies (up to <see cref="ReplayableBodyBytes"/>) are buffered so that a 401 from an OAuth
/// provider can be retried once after a refresh and so that SigV4 can sign the payload hash; larger ones stream
/// (SigV4 then signs UNSIGNED-PAYLOAD, which S3 accepts).
/// </summary>
internal sealed class BridgeForwarder(NexusOptions options, TimeProvider time, ILogger<BridgeForwarder> logger, OutboundNetworkGuard guard, Observability.NexusMetrics? metrics = null,
    OpenTelemetry.Trace.TracerProvider? tracing = null, IHostApplicationLifetime? lifetime = null) : IDisposable
{
    public const int ReplayableBodyBytes = 1024 * 1024;

    // RFC 9110 §7.6.1: connection-specific headers are never forwarded.
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host",
    };

    // What a caller might use to smuggle or override credentials. Of AWS's x-amz-* headers only the SigV4 signer's own
    // are: the others are the request's meaning (S3's x-amz-copy-source, server-side encryption, object lock, expected
    // bucket owner, checksums and metadata; X-Amz-Target of the JSON APIs; Lambda's X-Amz-Invocation-Type), which the
    // signer then signs like every forwarded header. Dropping them turned an S3 copy into an empty upload over the object.
    private static readonly HashSet<string> CallerCredentials = new(StringComparer.OrdinalIgnoreCase)
    {
        "Authorization", "Cookie", "X-API-Key", "Nexus-Connection-Id", "Nexus-Resource", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP",
    };

    // The SSRF guard checks each new connection's addresses (not each request): api_base_url is admin-set.
    private readonly HttpMessageInvoker upstream = new(guard.Guard(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        UseCookies = false,
        UseProxy = false,
        AutomaticDecompression = DecompressionMethods.None,
        ConnectTimeout = TimeSpan.FromSeconds(10),
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        MaxConnectionsPerServer = 1024,
        // A provider is a third party: it gets no trace context from Nexus (and the Bridge saves the work).
        ActivityHeadersPropagator = null,
        // The nexus.bridge.* instruments measure these calls (NexusMetrics.BridgeRequest); HttpClient's own on top of
        // them would cost every Bridge request several more measurements.
        MeterFactory = Observability.UnexportedMeters.Instance,
        // Kestrel reads a caller's header bytes as UTF-8 when they are not ASCII (its default), so they go on as the same
        // bytes; the client's own default, ASCII only, threw on them (RFC 9110 §5.5: a field value is opaque octets
        // to a proxy, for the provider to judge).
        RequestHeaderEncodingSelector = static (_, _) => System.Text.Encoding.UTF8,
    }));

    /// <summary>Where a Bridge request's time went: waiting for and streaming the provider's answer, or Nexus's own work.</summary>
    private sealed class Timing
    {
        public TimeSpan Upstream;
        public int? UpstreamStatus;

        public void Add(long startedAt) => Upstream += System.Diagnostics.Stopwatch.GetElapsedTime(startedAt);
    }

    public async Task ForwardAsync(HttpContext context, BridgeTarget target, string rawPath)
    {
        if (metrics is null)
        {
            await ForwardCoreAsync(context, target, rawPath, null);
            return;
        }

        var timing = new Timing();
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            await ForwardCoreAsync(context, target, rawPath, timing);
        }
        finally
        {
            metrics.BridgeRequest(Strategy(target.Credential), timing.UpstreamStatus, System.Diagnostics.Stopwatch.GetElapsedTime(started) - timing.Upstream, timing.Upstream);
        }
    }

    private static string Strategy(UpstreamCredential credential) => credential switch
    {
        UpstreamCredential.Bearer => "bearer",
        UpstreamCredential.ApiKey => "api_key",
        UpstreamCredential.Basic => "basic",
        UpstreamCredential.AwsSigV4 => "aws_sigv4",
        _ => "other",
    };

    private async Task ForwardCoreAsync(HttpContext context, BridgeTarget target, string rawPath, Timing? timing)
    {
        var ct = context.RequestAborted;
        // TRACE makes a server echo the request it received, which would be the request with the credential in it
        // (RFC 9110 §9.3.8 warns of exactly this); CONNECT asks for a tunnel, not a request to the API.
        if (HttpMethods.IsTrace(context.Request.Method) || HttpMethods.IsConnect(context.Request.Method))
        {
            await Problem(context, ProblemCatalog.BridgeMethodRefused,
                "TRACE would echo the injected credential back, and CONNECT is not a request to the provider's API.", $"The Bridge does not forward {context.Request.Method}.");
            return;
        }

        if (!BridgePath.TryResolve(target.ApiBase, rawPath, context.Request.QueryString.Value, out var uri, out var pathError))
        {
            await Problem(context, ProblemCatalog.BridgePathRefused, pathError);
            return;
        }

        // An S3 copy reads its source from the path in this header, which the request path's confinement does not see.
        if (target.Credential is UpstreamCredential.AwsSigV4 && context.Request.Headers["x-amz-copy-source"] is { Count: > 0 } copySources
            && copySources.Any(source => source is null || !BridgePath.CopySourceInside(target.ApiBase, source)))
        {
            await Problem(context, ProblemCatalog.BridgePathRefused, "x-amz-copy-source names an object outside this connection's API base URL.");
            return;
        }

        var bodySize = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodySize is { IsReadOnly: false })
        {
            bodySize.MaxRequestBodySize = options.Bridge.MaxRequestBodyBytes;
        }

        if (context.Request.ContentLength > options.Bridge.MaxRequestBodyBytes)
        {
            await TooLargeAsync(context);
            return;
        }

        byte[]? buffered = null;
        // RFC 9113 §8.1: an HTTP/2 (or HTTP/3) request can carry a body with neither Content-Length nor
        // Transfer-Encoding; the server knows whether one follows (CanHaveBody), as it does for HTTP/1.1's chunked.
        var hasBody = context.Request.ContentLength is { } declared ? declared > 0
            : context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? context.Request.Headers.TransferEncoding.Count > 0;
        try
        {
            if (hasBody && context.Request.ContentLength is { } length and <= ReplayableBodyBytes)
            {
                buffered = new byte[length];
                await context.Request.Body.ReadExactlyAsync(buffered, ct);
            }
            else if (hasBody && context.Request.ContentLength is null)
            {
                // A body of unknown length (HTTP/1.1 chunked, HTTP/2 without Content-Length) is read up to the replayable
                // size first: a small one then goes like any small body, with its length (S3 answers a chunked PutObject
                // 411), hashed for SigV4 (other AWS services refuse UNSIGNED-PAYLOAD) and replayable after a refresh or a
                // step-up; a larger one streams on, what was read first included.
                (buffered, var prefix) = await ReadUpToReplayableAsync(context.Request.Body, ct);
                if (prefix is not null)
                {
                    context.Request.Body = new PrefixedStream(prefix, context.Request.Body);
                }
                else
                {
                    hasBody = buffered!.Length > 0;
                }
            }

            // Nexus:Bridge:TimeoutSeconds bounds each wait on the provider, and only those: each request's answer
            // (SendAsync), a refresh, each piece of the body (CopyResponseAsync). Between them it is off.
            // On the injected clock (TimeProvider), so a test can move time rather than wait for it; cancelled with the
            // caller's request as well, as a linked source would be.
            using var timeout = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
            using var callerGone = ct.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), timeout);
            var credential = target.Credential;
            var sentAt = System.Diagnostics.Stopwatch.GetTimestamp();
            var response = await SendAsync(context, uri, credential, hasBody, buffered, timeout);
            timing?.Add(sentAt);
            if (response.StatusCode == HttpStatusCode.Unauthorized && target.RefreshAsync is not null && (!hasBody || buffered is not null))
            {
                // The access token may have been revoked or expired early: refresh once and retry once.
                UpstreamCredential? fresh;
                try
                {
                    timeout.CancelAfter(TimeSpan.FromSeconds(options.Bridge.TimeoutSeconds));
                    fresh = await target.RefreshAsync(timeout.Token);
                    timeout.CancelAfter(Timeout.InfiniteTimeSpan);
                }
                catch
                {
                    response.Dispose();
                    throw;
                }

                if (fresh is not null)
                {
                    response.Dispose();
                    sentAt = System.Diagnostics.Stopwatch.GetTimestamp();
                    response = await SendAsync(context, uri, fresh, hasBody, buffered, timeout);
                    timing?.Add(sentAt);
                    credential = fresh;
                }
            }

            if (target.InsufficientScopeAsync is not null && InsufficientScope(response) is { } bearer)
            {
                // MCP authorization, step-up: the caller gets the consent URL for the wider scopes, not the server's 403;
                // a machine-to-machine server's connection gets a token for them at once, and the request goes once more.
                response.Dispose();
                var canResend = !hasBody || buffered is not null;
                var stepUp = await target.InsufficientScopeAsync(bearer.GetValueOrDefault("scope"), canResend, ct);
                if (stepUp.RetryToken is not { } retryToken || !canResend || credential is not UpstreamCredential.Bearer bearerCredential)
                {
                    await stepUp.Answer.ExecuteAsync(context);
                    return;
                }

                credential = bearerCredential with { AccessToken = retryToken };
                sentAt = System.Diagnostics.Stopwatch.GetTimestamp();
                response = await SendAsync(context, uri, credential, hasBody, buffered, timeout);
                timing?.Add(sentAt);
                if (InsufficientScope(response) is not null)
                {
                    // Still not enough: the machine client is not allowed what the server wants.
                    response.Dispose();
                    await stepUp.Answer.ExecuteAsync(context);
                    return;
                }
            }

            using (response)
            {
                if (timing is not null)
                {
                    timing.UpstreamStatus = (int)response.StatusCode;
                }

                var copyAt = System.Diagnostics.Stopwatch.GetTimestamp();
                try
                {
                    await CopyResponseAsync(context, target, credential, uri, rawPath, response, timeout, ct);
                }
                finally
                {
                    timing?.Add(copyAt);
                }
            }
        }
        catch (Exception e) when (CallersBodyProblem(e) is { } bad)
        {
            // Reading the caller's body failed (too large, too slow, malformed chunks). While the body streams, the
            // client hands this back wrapped in an HttpRequestException; it is the caller's fault, not the provider's.
            await CallersBodyProblemAsync(context, bad);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The caller went away; there is nobody to answer.
        }
        catch (OperationCanceledException)
        {
            await Problem(context, ProblemCatalog.UpstreamTimeout,
                $"No response within {options.Bridge.TimeoutSeconds} s (Nexus:Bridge:TimeoutSeconds).");
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            if (ct.IsCancellationRequested)
            {
                return; // the caller went away (and with it, perhaps, what was being sent)
            }

            // HttpRequestException: no answer at all. IOException (HttpIOException): the provider broke off its
            // answer, e.g. closed the connection in the middle of the body.
            var error = e is HttpRequestException request ? request.HttpRequestError : (e as HttpIOException)?.HttpRequestError ?? HttpRequestError.Unknown;
            logger.LogWarning("Bridge request to {Host} failed: {Error}", uri.Host, error);
            // One detail for every way of not getting an answer: which one it was (refused, reset, TLS, garbage)
            // would tell a caller whether a port answered. The operator's log has it.
            await Problem(context, ProblemCatalog.UpstreamUnreachable, "No usable answer came from the provider's API.");
        }
    }

    /// <summary>The Bearer challenge of a 403 with error="insufficient_scope" (RFC 6750 §3.1), or null for any other answer.</summary>
    private static Dictionary<string, string>? InsufficientScope(HttpResponseMessage response) =>
        response.StatusCode == HttpStatusCode.Forbidden
        && RemoteMcp.WwwAuthenticate.Bearer(response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var challenges) ? challenges : []) is { } bearer
        && bearer.GetValueOrDefault("error") == OAuthErrorCatalog.InsufficientScope.Error ? bearer : null;

    private static BadHttpRequestException? CallersBodyProblem(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is BadHttpRequestException bad)
            {
                return bad;
            }
        }

        return null;
    }

    private Task CallersBodyProblemAsync(HttpContext context, BadHttpRequestException bad) => bad.StatusCode == StatusCodes.Status413PayloadTooLarge
        ? TooLargeAsync(context)
        : Problem(context, ProblemCatalog.BadRequest, bad.Message, status: bad.StatusCode);

    /// <summary>One answer for a body over the limit, whether Content-Length said so up front or the stream ran over.</summary>
    private Task TooLargeAsync(HttpContext context) => Problem(context, ProblemCatalog.BridgeBodyTooLarge,
        $"The limit is {options.Bridge.MaxRequestBodyBytes} bytes (Nexus:Bridge:MaxRequestBodyBytes).");

    /// <summary>
    /// Sends the request and waits for the answer's headers. The timeout measures that wait, not the caller's upload:
    /// it starts once the request body has been read to the end (at once when there is none or it is buffered; slow
    /// uploads are Kestrel's MinRequestBodyDataRate's business) and is off again when the headers came.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(HttpContext context, Uri uri, UpstreamCredential credential, bool hasBody, byte[]? buffered, CancellationTokenSource timeout)
    {
        var limit = TimeSpan.FromSeconds(options.Bridge.TimeoutSeconds);
        var streamed = hasBody && buffered is null;
        if (!streamed)
        {
            timeout.CancelAfter(limit);
        }

        var ct = timeout.Token;
        var request = context.Request;
        uri = CredentialInjection.Target(uri, credential);
        // HttpMethod.Parse hands back the shared instances for the standard methods, which the client's fast paths
        // recognise by reference.
        using var message = new HttpRequestMessage(HttpMethod.Parse(request.Method), uri) { Version = HttpVersion.Version11 };
        // No trace context for a third party, even when OpenTelemetry's HttpClient instrumentation would add it (and
        // without traces, which are registered only when on, nothing to tell it: no options dictionary per request).
        if (tracing is not null)
        {
            message.Options.Set(NexusTelemetry.NoTraceContext, true);
        }
        if (hasBody)
        {
            message.Content = buffered is not null ? new ByteArrayContent(buffered) : new StreamContent(new TimerAtEndStream(request.Body, timeout, limit), 64 * 1024);
        }

        // RFC 9110 §7.6.1: a Connection header names further connection-specific headers; rare, so only then is a
        // list built.
        var connectionTokens = request.Headers.Connection.Count == 0 ? null : ConnectionTokens(request.Headers.Connection);
        var credentialHeaders = credential.HeaderNames;
        foreach (var (name, values) in request.Headers)
        {
            if (!Forwardable(name, credentialHeaders, connectionTokens))
            {
                continue;
            }

            // One value is the common case; adding it as a string avoids boxing StringValues into an enumerable.
            var added = values.Count == 1 ? message.Headers.TryAddWithoutValidation(name, values[0]) : message.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            if (!added && message.Content is not null)
            {
                _ = values.Count == 1 ? message.Content.Headers.TryAddWithoutValidation(name, values[0]) : message.Content.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        if (message.Content is not null && request.ContentLength is { } contentLength)
        {
            message.Content.Headers.ContentLength = contentLength;
        }

        await CredentialInjection.ApplyAsync(message, credential, CredentialInjection.PayloadHash(hasBody, buffered), time.GetUtcNow(), ct);
        try
        {
            return await upstream.SendAsync(message, ct);
        }
        finally
        {
            timeout.CancelAfter(Timeout.InfiniteTimeSpan);
        }
    }

    private static bool Forwardable(string name, string[] credentialHeaders, List<string>? connectionTokens)
    {
        if (HopByHop.Contains(name) || CallerCredentials.Contains(name))
        {
            return false;
        }

        foreach (var header in credentialHeaders)
        {
            if (string.Equals(header, name, StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }

        return connectionTokens is null || !connectionTokens.Contains(name, StringComparer.OrdinalIgnoreCase);
    }

    private static List<string> ConnectionTokens(Microsoft.Extensions.Primitives.StringValues values)
    {
        var tokens = new List<string>();
        foreach (var value in values)
        {
            tokens.AddRange((value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        }

        return tokens;
    }

    private async Task CopyResponseAsync(HttpContext context, BridgeTarget target, UpstreamCredential credential, Uri uri, string rawPath, HttpResponseMessage upstreamResponse,
        CancellationTokenSource timeout, CancellationToken ct)
    {
        // The Bridge never follows redirects; one that points away from the provider's API host is refused, so
        // that a caller is never sent elsewhere by a provider it trusted through Nexus.
        if ((int)upstreamResponse.StatusCode is >= 300 and < 400 && upstreamResponse.Headers.NonValidated.TryGetValues("Location", out var locations)
            && (locations.Count != 1 || upstreamResponse.Headers.Location is null))
        {
            // RFC 9110 §10.2.2: Location is one URI reference. Two (or one that does not parse) cannot all be checked as
            // the one below: the typed getter reads the first that parses, and a client may follow another.
            await Problem(context, ProblemCatalog.RedirectRefused, "The provider's redirect names no single valid location.");
            return;
        }

        if ((int)upstreamResponse.StatusCode is >= 300 and < 400 && upstreamResponse.Headers.Location is { } location)
        {
            var resolved = location.IsAbsoluteUri ? location : new Uri(uri, location);
            if (!string.Equals(resolved.Host, target.ApiBase.Host, StringComparison.OrdinalIgnoreCase) || resolved.Port != target.ApiBase.Port || resolved.Scheme != target.ApiBase.Scheme)
            {
                await Problem(context, ProblemCatalog.RedirectRefused,
                    $"Redirect to {resolved.Host} refused.");
                return;
            }
        }

        var response = context.Response;
        response.StatusCode = (int)upstreamResponse.StatusCode;
        if (context.Features.Get<BridgeAnswerSource>() is { } source)
        {
            source.FromProvider = true;
        }

        // The provider's answer is passed on as it is: Nexus's own status code pages must not fill in an empty
        // 404 from the provider.
        if (context.Features.Get<IStatusCodePagesFeature>() is { } statusCodePages)
        {
            statusCodePages.Enabled = false;
        }

        // NonValidated: headers are copied as received, not parsed into typed values and formatted again.
        var secrets = credential.Secrets();
        CopyHeaders(upstreamResponse.Headers.NonValidated, response.Headers, credential, secrets);
        CopyHeaders(upstreamResponse.Content.Headers.NonValidated, response.Headers, credential, secrets);
        var chunked = upstreamResponse.Headers.TransferEncodingChunked == true;
        if (chunked)
        {
            // RFC 9112 §6.3: an answer with both Transfer-Encoding and Content-Length is framed by its chunks, and an
            // intermediary that forwards it removes the Content-Length (which the client still reports) first.
            response.Headers.ContentLength = null;
        }

        if (response.StatusCode is >= 300 and < 400 && response.Headers.Location.Count == 1)
        {
            RedirectThroughBridge(context, target, uri, rawPath, response);
        }

        // The timeout is an idle timeout on the provider, as a reverse proxy's read timeout is: each wait for the
        // next piece of the body gets all of it, so a long stream that keeps coming is never cut, and a provider
        // that stops mid-body does not hold the caller (and a connection) for ever. It is off while the caller is
        // written to: a slow reader is Kestrel's MinResponseDataRate's business.
        // Most answers are in the connection's buffer when their headers are: a read that completes at once needs no
        // timer, so the timer is armed only for a read that waits (the token is the read's from the start, and arming
        // it after the read began still ends that read). An answer with a Content-Length ends when that much came.
        var idle = TimeSpan.FromSeconds(options.Bridge.TimeoutSeconds);
        var remaining = chunked ? null : upstreamResponse.Content.Headers.ContentLength;
        // A GET's event stream has no end of its own (an EventSource, MCP's listening stream): when Nexus stops, it ends
        // here (the caller reconnects, to another instance), or Kestrel's drain would wait for it the whole shutdown
        // timeout, which the refreshes still in flight wait within after it (RefreshWorker.StopAsync). Other answers are
        // left to finish, a POST's event stream among them: an MCP tool call's, which ends with the tool's result.
        var stopping = remaining is null && lifetime is not null && HttpMethods.IsGet(context.Request.Method) && IsEventStream(upstreamResponse)
            ? lifetime.ApplicationStopping : CancellationToken.None;
        using var stopped = stopping.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), timeout);
        await using var body = await upstreamResponse.Content.ReadAsStreamAsync(ct);
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (remaining is not <= 0)
            {
                int read;
                try
                {
                    var reading = body.ReadAsync(buffer, timeout.Token);
                    if (reading.IsCompleted)
                    {
                        read = reading.GetAwaiter().GetResult();
                    }
                    else
                    {
                        timeout.CancelAfter(idle);
                        read = await reading;
                        timeout.CancelAfter(Timeout.InfiniteTimeSpan);
                    }
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    logger.LogDebug("An event stream from {Host} ended because Nexus is stopping.", uri.Host);
                    break;
                }

                if (read == 0)
                {
                    break;
                }

                remaining -= read;
                await response.Body.WriteAsync(buffer.AsMemory(0, read), ct);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static bool IsEventStream(HttpResponseMessage response) =>
        response.Content.Headers.NonValidated.TryGetValues("Content-Type", out var type)
        && type.FirstOrDefault() is { } value && value.AsSpan().TrimStart().StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// A redirect inside the provider's API (a renamed repository's 301, a paginated export's 302) points back at the
    /// Bridge, as a reverse proxy rewrites its upstream's Location (nginx's proxy_redirect): a caller that follows it
    /// gets the credential added again, and never sends its Nexus API key, or nothing at all, to the provider's host.
    /// The reference is an absolute path under the prefix this request came in by (/v1/bridge/{id} or /v1/proxy), so
    /// it holds for whatever host name the caller reached Nexus by; behind a reverse proxy that publishes Nexus under a
    /// path (BASE_URL https://example.com/nexus) and strips it, that path is put in front, as in every URL Nexus hands
    /// out, so the caller comes back by the proxy. A Location on the provider's host outside the API's base path cannot
    /// be said as a Bridge path: it is given as the absolute provider URL.
    /// </summary>
    private void RedirectThroughBridge(HttpContext context, BridgeTarget target, Uri uri, string rawPath, HttpResponse response)
    {
        var raw = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
        var query = raw.IndexOf('?', StringComparison.Ordinal);
        var path = query < 0 ? raw : raw[..query];
        if (!path.EndsWith(rawPath, StringComparison.Ordinal) || !Uri.TryCreate(response.Headers.Location.ToString(), UriKind.RelativeOrAbsolute, out var location))
        {
            return;
        }

        var resolved = location.IsAbsoluteUri ? location : new Uri(uri, location);
        // The raw target is what reached Kestrel: the proxy took BASE_URL's path off, so it goes back in front. A host
        // that mounts Nexus under a PathBase (UsePathBase) receives that path in the raw target already: not added twice.
        var prefix = path[..^rawPath.Length];
        // An absolute-form request target (http://host/…) gives a prefix that is not a path: nothing goes in front of it.
        if (!context.Request.PathBase.HasValue && (prefix.Length == 0 || prefix[0] == '/'))
        {
            prefix = options.PublicPathBase + prefix;
        }

        if (BridgePath.ToBridge(target.ApiBase, resolved, prefix) is { } bridged)
        {
            response.Headers.Location = bridged;
        }
        else if (!location.IsAbsoluteUri)
        {
            // Relative, it would be resolved against Nexus by the caller, where the provider's path could name another
            // connection's Bridge (/v1/bridge/{other}/…) or an API route, called with the caller's Nexus key: it is
            // made absolute on the provider, where it points.
            response.Headers.Location = resolved.AbsoluteUri;
        }
    }

    private void CopyHeaders(HttpHeadersNonValidated from, IHeaderDictionary to, UpstreamCredential credential, List<string> secrets)
    {
        foreach (var (name, values) in from)
        {
            if (HopByHop.Contains(name) || name.Equals("Set-Cookie", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (values.Count == 1)
            {
                if (Sendable(name, values.ToString(), credential, secrets) is { } single)
                {
                    to[name] = single;
                }

                continue;
            }

            var all = new string[values.Count];
            var i = 0;
            foreach (var value in values)
            {
                if (Sendable(name, value, credential, secrets) is not { } sendable)
                {
                    all = null;
                    break;
                }

                all[i++] = sendable;
            }

            if (all is not null)
            {
                to[name] = all;
            }
        }
    }

    /// <summary>The value as the caller may see it, or null to drop the whole field (logged by name only).</summary>
    private string? Sendable(string name, string value, UpstreamCredential credential, List<string> secrets)
    {
        if (Unsendable(value))
        {
            // The client reads header bytes as Latin-1 and Kestrel sends ASCII only (RFC 9110 §5.5: obs-text is
            // obsolete); setting the value would throw, so the field is dropped rather than the answer.
            logger.LogWarning("Bridge dropped the provider's {Header} header: it is not plain ASCII.", name);
            return null;
        }

        if (secrets.Count == 0 || !CarriesSecret(value, secrets))
        {
            return value;
        }

        // A same-host redirect (or Content-Location) that kept a query-string API key keeps its meaning without it.
        if (credential is UpstreamCredential.ApiKey { In: "query" } queryKey
            && (name.Equals("Location", StringComparison.OrdinalIgnoreCase) || name.Equals("Content-Location", StringComparison.OrdinalIgnoreCase))
            && value.IndexOf('?', StringComparison.Ordinal) is var q and >= 0)
        {
            var end = value.IndexOf('#', q);
            var query = end < 0 ? value[(q + 1)..] : value[(q + 1)..end];
            var kept = CredentialInjection.WithoutParameter(query, queryKey.Name);
            var cleaned = value[..q] + (kept.Length == 0 ? "" : "?" + kept) + (end < 0 ? "" : value[end..]);
            if (!CarriesSecret(cleaned, secrets))
            {
                return cleaned;
            }
        }

        // A caller that may only use the credential through the Bridge must never read it in an answer.
        logger.LogWarning("Bridge dropped the provider's {Header} header: it repeats the connection's credential.", name);
        return null;
    }

    private static bool Unsendable(string value)
    {
        var span = value.AsSpan();
        for (var at = span.IndexOfAnyExceptInRange(' ', '~'); at >= 0; at = span.IndexOfAnyExceptInRange(' ', '~'))
        {
            if (span[at] != '\t')
            {
                return true;
            }

            span = span[(at + 1)..];
        }

        return false;
    }

    /// <summary>Whether the value holds a secret as it is, or once percent-decoded (any case of hex).</summary>
    private static bool CarriesSecret(string value, List<string> secrets)
    {
        var decoded = value.Contains('%', StringComparison.Ordinal) ? Uri.UnescapeDataString(value) : null;
        foreach (var secret in secrets)
        {
            if (value.Contains(secret, StringComparison.Ordinal) || (decoded is not null && decoded.Contains(secret, StringComparison.Ordinal)))
            {
                return true;
            }
        }

        return false;
    }

    private static async Task Problem(HttpContext context, ProblemType type, string detail, string? title = null, int? status = null)
    {
        if (context.Response.HasStarted)
        {
            // Part of the provider's answer is on its way: the caller must see it broken, not completed.
            context.Abort();
            return;
        }

        // The provider's status and headers may already be set (it failed after them, before any body was sent):
        // they must not describe Nexus's problem.
        context.Response.Clear();
        if (context.Features.Get<BridgeAnswerSource>() is { } source)
        {
            source.FromProvider = false; // Nexus's answer now, not the provider's
        }

        await Problems.Create(type, detail, title: title, status: status).ExecuteAsync(context);
    }

    public void Dispose() => upstream.Dispose();

    /// <summary>
    /// The whole body when it is at most <see cref="ReplayableBodyBytes"/> (Buffered), else what was read of it (Prefix,
    /// positioned at its start), which is more than that.
    /// </summary>
    private static async Task<(byte[]? Buffered, MemoryStream? Prefix)> ReadUpToReplayableAsync(Stream body, CancellationToken ct)
    {
        var read = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (read.Length <= ReplayableBodyBytes)
            {
                var n = await body.ReadAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, ReplayableBodyBytes + 1 - read.Length)), ct);
                if (n == 0)
                {
                    return (read.ToArray(), null);
                }

                read.Write(chunk, 0, n);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        read.Position = 0;
        return (null, read);
    }

    /// <summary>What was read of the caller's body first, then the rest of it.</summary>
    private sealed class PrefixedStream(MemoryStream prefix, Stream rest) : ForwardReadStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = prefix.Read(buffer.Span);
            return read > 0 || buffer.Length == 0 ? read : await rest.ReadAsync(buffer, cancellationToken);
        }
    }

    /// <summary>A read-only, forward-only stream whose reads all go through <see cref="ReadAsync(Memory{byte}, CancellationToken)"/>.</summary>
    private abstract class ForwardReadStream : Stream
    {
        public abstract override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Reads through to the caller's body and starts the timeout for the answer when it is exhausted.</summary>
    private sealed class TimerAtEndStream(Stream inner, CancellationTokenSource timeout, TimeSpan limit) : ForwardReadStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            if (read == 0 && buffer.Length > 0)
            {
                timeout.CancelAfter(limit);
            }

            return read;
        }
    }
}

/// <summary>
/// Set by an in-process caller of the Bridge (the MCP tools) to learn whose answer it got: the provider's, passed on
/// as it is, or one Nexus wrote itself (a problem document such as the step-up's). A provider can write any body,
/// Nexus's problem shapes included, so only this tells them apart.
/// </summary>
internal sealed class BridgeAnswerSource
{
    public bool FromProvider { get; set; }
}
