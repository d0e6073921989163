using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Nexus.Server.Bridge;
using Nexus.Server.Connections;
using Nexus.Server.Providers;

namespace Nexus.Server.Mcp;

/// <summary>What a provider answered to a call_api, as the tool returns it.</summary>
/// <param name="FromProvider">The provider's own answer, passed on by the Bridge; false when Nexus answered (a problem document of its own).</param>
internal sealed record ApiAnswer(int Status, IReadOnlyDictionary<string, string> Headers, string? Body, string? BodyBase64, bool Truncated, bool FromProvider);

/// <summary>
/// Sends one request of the call_api tool through the Bridge's own forwarding code, in process: a request context is
/// built from the tool's arguments and handed to <see cref="BridgeConnection.ForwardAsync"/>, so refresh on
/// expiry, refresh-and-retry on 401, credential injection, the path and redirect rules and the removal of credentials
/// from the answer's headers are the Bridge's, not a second copy. The answer's body is captured up to
/// <see cref="MaxBodyBytes"/>, and any credential of the connection that appears in it is blanked.
/// </summary>
internal sealed class McpApiCalls(IServiceProvider services, ProviderRegistry providers, ConnectionCredentials decoded, ConnectionStore store,
    Hosting.NexusOptions options, TimeProvider time)
{
    public const int MaxBodyBytes = 256 * 1024;
    private const string Redacted = "[credential removed by Nexus]";

    /// <summary>"person\nprovider" → the id of the person's active connection to the provider.</summary>
    private readonly Hosting.ShortLivedCache<string> activeIds = new(time, () => options.ConnectionCacheSeconds);

    /// <summary>
    /// The person's connection to a provider that call_api uses. Which connection is the active one is remembered for
    /// Nexus:ConnectionCacheSeconds and the row itself is read through the connection cache, the same bound on how late
    /// another instance's change is seen as the Bridge's (changes made on this instance invalidate the row at once, and
    /// a remembered connection that is gone or no longer active is looked up again). So a call does not list the
    /// person's connections, and the credential decoded for the cached row is reused, as a direct Bridge call does.
    /// <paramref name="find"/> is the full lookup (the active connection, else the newest).
    /// </summary>
    public async Task<Connection?> CurrentAsync(string person, string provider, Func<Task<Connection?>> find, CancellationToken ct)
    {
        var key = person + "\n" + provider;
        Connection? loaded = null;
        var id = await activeIds.GetAsync(key, async _ => (loaded = await find())?.Status == ConnectionStatus.Active ? loaded.Id : null);
        if (loaded is not null)
        {
            return loaded;
        }

        if (id is null)
        {
            // Another call's lookup, shared, found no active connection: the full lookup gives this call the newest one
            // too (attention_required, failed), not "not connected".
            return await find();
        }

        if (await store.FindCachedAsync(id, ct) is { Status: ConnectionStatus.Active } cached
            && cached.WorkspaceId == person && cached.ProviderName == provider)
        {
            return cached;
        }

        activeIds.Invalidate(key);
        return await find();
    }

    /// <summary>How long, in Nexus:Bridge:TimeoutSeconds, one call may take in all (the Bridge's own limit is per read of the answer).</summary>
    public const int CallBudget = 10;

    /// <param name="answered">
    /// For an answer that is an event stream: told the bytes so far each time more arrive, and true once they hold
    /// what the caller waits for (an MCP server's JSON-RPC response), when the rest is not read: a server that keeps
    /// its stream open after it answered (comments, silence) does not hold the call.
    /// </param>
    public async Task<ApiAnswer> SendAsync(Connection connection, string method, string path, IEnumerable<KeyValuePair<string, string?>>? query,
        IReadOnlyDictionary<string, string>? headers, byte[]? body, string? contentType, CancellationToken ct, bool stepUp = true,
        Func<ReadOnlyMemory<byte>, bool>? answered = null)
    {
        await using var scope = services.CreateAsyncScope();
        // The call ends at the first of: the caller gone, CallBudget × Nexus:Bridge:TimeoutSeconds, the answer complete
        // (answered), the capture full (what comes after MaxBodyBytes is not kept, so it is not read). The Bridge takes
        // the request's end as its caller leaving: it stops reading and writes nothing more.
        using var deadline = new Hosting.Deadline(TimeSpan.FromSeconds((double)CallBudget * options.Bridge.TimeoutSeconds), time, ct);
        using var enough = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
        var context = new DefaultHttpContext { RequestServices = scope.ServiceProvider, RequestAborted = enough.Token };
        var capture = new CappedStream(MaxBodyBytes, enough, answered is null ? null : bytes => IsEventStream(context.Response.ContentType) && answered(bytes));
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(capture));
        var source = new BridgeAnswerSource();
        context.Features.Set(source);
        var request = context.Request;
        request.Method = method;
        request.Scheme = "http";
        request.Host = new HostString("nexus.mcp");
        request.Path = "/";
        if (query is not null)
        {
            request.QueryString = QueryString.Create(query);
        }

        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            // The answer is read here to blank the connection's credentials in it: it must come as it is, not compressed
            // (a gzipped echo of the credential would pass the check as base64).
            if (!name.Equals("Accept-Encoding", StringComparison.OrdinalIgnoreCase))
            {
                request.Headers.Append(name, value);
            }
        }

        request.Headers.AcceptEncoding = "identity";

        if (body is not null)
        {
            request.Body = new MemoryStream(body, writable: false);
            request.ContentLength = body.Length;
            if (contentType is not null)
            {
                request.ContentType = contentType;
            }
        }

        await BridgeConnection.ForwardAsync(context, connection, path, stepUp);
        ct.ThrowIfCancellationRequested();
        if (deadline.Expired)
        {
            // The call's budget ran out: the Bridge took it for its caller leaving and wrote nothing, so what is here (a
            // status not yet set, part of a body) is no answer. Said as the Bridge says its own timeout.
            var seconds = CallBudget * options.Bridge.TimeoutSeconds;
            var timeout = Hosting.Problems.Typed(Hosting.ProblemCatalog.UpstreamTimeout, $"No complete answer within {seconds} s ({CallBudget} × Nexus:Bridge:TimeoutSeconds).");
            return new ApiAnswer(timeout.StatusCode, new Dictionary<string, string> { ["Content-Type"] = timeout.ContentType },
                System.Text.Json.JsonSerializer.Serialize(timeout.ProblemDetails), null, false, FromProvider: false);
        }

        var response = context.Response;
        var answerHeaders = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in response.Headers)
        {
            answerHeaders[name] = values.ToString();
        }

        var secrets = await SecretsAsync(connection, ct);
        var bytes = capture.ToArray();
        var textual = IsText(response.ContentType);
        string? text = null;
        string? base64 = null;
        var blank = Blanker(secrets);
        if (bytes.Length > 0 && response.Headers.ContentEncoding is { Count: > 0 } encoding && !encoding.ToString().Equals("identity", StringComparison.OrdinalIgnoreCase))
        {
            // Compressed although asked not to be: not checked for credentials, so not handed over.
            text = $"[body withheld by Nexus: compressed ({encoding}), so it cannot be checked for the connection's credentials]";
        }
        else
        {
            var decoded = Encoding.UTF8.GetString(bytes);
            var blanked = blank(decoded);
            if (textual || blanked != decoded)
            {
                // Text, or binary that held a credential: handed over as text, blanked.
                text = blanked;
            }
            else
            {
                base64 = bytes.Length == 0 ? null : Convert.ToBase64String(bytes);
            }
        }

        foreach (var (name, value) in answerHeaders.ToArray())
        {
            answerHeaders[name] = blank(value);
        }

        return new ApiAnswer(response.StatusCode, answerHeaders, text, base64, capture.Truncated, source.FromProvider);
    }

    /// <summary>The connection's credential values now (a refresh during the call may have replaced them).</summary>
    private async Task<List<string>> SecretsAsync(Connection before, CancellationToken ct)
    {
        var secrets = new List<string>();
        var provider = await providers.FindCachedAsync(before.ProviderName, ct);
        // A refresh during the call wrote the row, which dropped it from the connection cache: the cached read is the
        // current row, and the same object as before when nothing changed (then its secrets are counted once).
        var now = await store.FindCachedAsync(before.Id, ct);
        foreach (var connection in ReferenceEquals(now, before) ? new Connection?[] { before } : [before, now])
        {
            if (provider is not null && connection is { AccessToken: not null } && decoded.For(connection, provider).Stored.Credential is { } credential)
            {
                secrets.AddRange(credential.Secrets());
            }
        }

        return secrets;
    }

    /// <summary>
    /// The text with every credential of the connection blanked: as it is, and as an answer commonly carries it, with any
    /// of its characters escaped for JSON (<c>\u002B</c>, <c>\/</c>) or a URL (<c>%2B</c>), in either case of hex. What a
    /// provider transforms otherwise (base64 of it, a range of its bytes) is not recognised: the echo of a credential is
    /// the provider's doing, and docs/security.md says so.
    /// </summary>
    internal static string Blank(string value, List<string> secrets) => Blanker(secrets)(value);

    /// <summary>
    /// <see cref="Blank"/> for one answer's body and headers: the pattern is built once, on the first value with an
    /// escape in it, and only lives as long as the answer is being read.
    /// </summary>
    private static Func<string, string> Blanker(List<string> secrets)
    {
        var distinct = secrets.Where(s => s.Length > 0).Distinct(StringComparer.Ordinal).OrderByDescending(s => s.Length).ToList();
        System.Text.RegularExpressions.Regex? regex = null;
        return value =>
        {
            if (distinct.Count == 0 || value.Length == 0)
            {
                return value;
            }

            if (value.AsSpan().IndexOfAny('\\', '%') < 0)
            {
                // Nothing escaped anywhere: the credentials can only be there as they are.
                foreach (var secret in distinct)
                {
                    value = value.Replace(secret, Redacted, StringComparison.Ordinal);
                }

                return value;
            }

            // Each character as itself, \u00XX, %XX or JSON's short escape; longest credential first, so one that
            // contains another is blanked whole. A new instance, not Regex's static cache, which would keep the
            // credentials' characters after the call.
            regex ??= new System.Text.RegularExpressions.Regex(string.Join('|', distinct.Select(secret => string.Concat(secret.Select(Alternatives)))),
                System.Text.RegularExpressions.RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
            try
            {
                return regex.Replace(value, Redacted);
            }
            catch (System.Text.RegularExpressions.RegexMatchTimeoutException)
            {
                return "[withheld by Nexus: it could not be checked for the connection's credentials in time]";
            }
        };

        static string Alternatives(char c)
        {
            var literal = System.Text.RegularExpressions.Regex.Escape(c.ToString());
            var hex = ((int)c).ToString("X4", System.Globalization.CultureInfo.InvariantCulture);
            var escaped = "\\\\u" + string.Concat(hex.Select(Hex));
            var percent = c < 0x80 ? "|%" + Hex(hex[2]) + Hex(hex[3]) : "";
            // JSON's short escapes (RFC 8259 §7), and \/ which many encoders write for a slash.
            var shortEscape = c switch
            {
                '"' => "|\\\\\"",
                '\\' => "|\\\\\\\\",
                '/' => "|\\\\/",
                '\b' => "|\\\\b",
                '\f' => "|\\\\f",
                '\n' => "|\\\\n",
                '\r' => "|\\\\r",
                '\t' => "|\\\\t",
                _ => "",
            };
            return $"(?:{literal}|{escaped}{percent}{shortEscape})";
        }

        static string Hex(char digit) => char.IsAsciiLetter(digit) ? $"[{char.ToLowerInvariant(digit)}{digit}]" : digit.ToString();
    }

    private static bool IsText(string? contentType) => contentType is not null && (contentType.StartsWith("text/", StringComparison.OrdinalIgnoreCase)
        || contentType.Contains("json", StringComparison.OrdinalIgnoreCase) || contentType.Contains("xml", StringComparison.OrdinalIgnoreCase)
        || contentType.Contains("x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase) || contentType.Contains("javascript", StringComparison.OrdinalIgnoreCase));

    private static bool IsEventStream(string? contentType) => contentType is not null && contentType.AsSpan().TrimStart().StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The answer's body, kept up to <paramref name="capacity"/> bytes, so a large answer cannot fill the server's
    /// memory. Once full, or once <paramref name="complete"/>
    /// says the bytes so far are the whole answer the caller needs, it ends the call (<paramref name="enough"/>), and a
    /// write after that is refused as the request's end, so the Bridge stops reading.
    /// </summary>
    private sealed class CappedStream(int capacity, CancellationTokenSource enough, Func<ReadOnlyMemory<byte>, bool>? complete) : Stream
    {
        private readonly MemoryStream kept = new();

        public bool Truncated { get; private set; }

        public byte[] ToArray() => kept.ToArray();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (enough.IsCancellationRequested)
            {
                throw new OperationCanceledException(enough.Token);
            }

            var room = capacity - (int)kept.Length;
            if (buffer.Length > room)
            {
                Truncated = true;
            }

            kept.Write(buffer[..Math.Min(room, buffer.Length)]);
            if (Truncated || (complete is not null && complete(kept.GetBuffer().AsMemory(0, (int)kept.Length))))
            {
                enough.Cancel();
            }
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Write(buffer.AsSpan(offset, count));
            return Task.CompletedTask;
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => kept.Length;
        public override long Position { get => kept.Length; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            kept.Dispose();
            base.Dispose(disposing);
        }
    }
}
