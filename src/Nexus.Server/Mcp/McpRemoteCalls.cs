using System.Text;
using System.Text.Json;
using Nexus.Server.Connections;

namespace Nexus.Server.Mcp;

/// <summary>One JSON-RPC answer of a remote MCP server, or why there is none.</summary>
/// <param name="Message">The JSON-RPC response (with result or error); null when the server did not give one.</param>
/// <param name="Status">The HTTP status of the request that failed, or 200.</param>
/// <param name="Problem">Nexus's problem document when the Bridge answered instead of the server (409 not active, 403 step-up, …); never the server's own body.</param>
internal sealed record RemoteMcpAnswer(JsonElement? Message, int Status, JsonElement? Problem, string? Detail);

/// <summary>
/// Speaks MCP (Streamable HTTP, 2025-11-25) to a person's connected MCP server for the list_remote_tools and
/// call_remote_tool tools, every request through <see cref="McpApiCalls"/>, i.e. the Bridge's own forwarding: the
/// stored token injected, refreshed on expiry, refreshed and retried once on a 401, and a 403 insufficient_scope
/// answered with the step-up problem. Each call is a short session: initialize, notifications/initialized, the request,
/// and a DELETE of the session when the server made one (MCP transports, Session Management). A server that ends the
/// request's event stream before its answer, after an event id, is asked again with GET and Last-Event-ID. A server
/// that speaks only the 2026-07-28 revision (no initialize, no sessions) refuses the initialize with
/// UnsupportedProtocolVersion naming it: that server is asked in that revision's way, and once it has answered so, from
/// then on at once.
/// </summary>
internal sealed class McpRemoteCalls(McpApiCalls api, ConnectionStore store, Hosting.NexusOptions options, TimeProvider time, IHostApplicationLifetime lifetime,
    ILogger<McpRemoteCalls> logger)
{
    private const string ProtocolVersion = "2025-11-25";

    /// <summary>The stateless revision (SEP-2575, SEP-2567): each request carries its protocol version and capabilities in _meta.</summary>
    internal const string StatelessVersion = "2026-07-28";

    /// <summary>MCP 2026-07-28, schema: UnsupportedProtocolVersionError, whose data lists the versions the server supports.</summary>
    private const int UnsupportedProtocolVersion = -32022;

    /// <summary>How many times a request the server answers "input_required" with only a requestState (load shedding) is sent again.</summary>
    private const int MaxRequestStateRetries = 3;

    /// <summary>
    /// Providers whose server refused the initialize handshake for the stateless revision: asked in that revision at once
    /// (the spec's advice to cache the era found per server). An answer of the old era there drops the entry.
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> statelessServers = new(StringComparer.Ordinal);

    /// <summary>
    /// The arguments each stateless server's tools mirror into Mcp-Param-* headers (x-mcp-header), by provider and tool,
    /// as its last listing said: only tools that mirror some, at most <see cref="MaxMirroringTools"/> per provider.
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, System.Collections.Concurrent.ConcurrentDictionary<string, IReadOnlyList<McpParamHeaders.Mirrored>>> mirroring =
        new(StringComparer.Ordinal);

    private const int MaxMirroringTools = 1000;

    /// <summary>
    /// Tools whose server refused a call for its headers and whose listing then taught nothing new, when that was (a
    /// timestamp): not listed again for <see cref="RelistPause"/>, so a server that refuses every call costs one
    /// listing a minute, not one per call.
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Provider, string Tool), long> fruitlessRelists = new();

    private static readonly TimeSpan RelistPause = TimeSpan.FromMinutes(1);

    /// <summary>How many pages of tools/list are read to learn a tool's x-mcp-header annotations after a header mismatch.</summary>
    private const int MaxListingPages = 10;

    /// <summary>MCP 2026-07-28, schema: HeaderMismatchError (a Mcp-* header disagrees with the body, or is missing).</summary>
    private const int HeaderMismatch = -32020;

    /// <summary>How many times a server that keeps ending its stream without the answer is asked again.</summary>
    internal const int MaxResumptions = 100;

    /// <summary>How long, in Nexus:Bridge:TimeoutSeconds, a request may go on being resumed in all.</summary>
    internal const int ResumptionBudget = 10;

    /// <summary>The most of a remote server's own error message quoted to the assistant.</summary>
    private const int MaxQuotedLength = 300;

    /// <summary>The wait before asking again when the stream set no retry interval (WHATWG HTML §9.2: the user agent's choice).</summary>
    private static readonly TimeSpan DefaultRetry = TimeSpan.FromSeconds(1);

    /// <param name="stepUp">Whether a 403 insufficient_scope starts a step-up (BridgeConnection.ForwardAsync): not for a listing.</param>
    public async Task<RemoteMcpAnswer> RequestAsync(Connection connection, string method, object? parameters, CancellationToken ct, bool stepUp = true)
    {
        // A remembered server of the stateless revision is asked that way first; an answer of the initialize era there
        // (a rollback) sends the request through the handshake, unless the handshake is refused again for the stateless
        // revision, when that first answer is the answer (the request is never sent twice that way).
        RemoteMcpAnswer? statelessFirst = null;
        if (statelessServers.ContainsKey(connection.ProviderName))
        {
            var (known, older) = await StatelessAsync(connection, method, parameters, stepUp, ct);
            if (!older)
            {
                return known;
            }

            statelessServers.TryRemove(connection.ProviderName, out _);
            statelessFirst = known;
        }

        var initialize = await SendAsync(connection, Headers(null, ProtocolVersion, null), stepUp, new
        {
            jsonrpc = "2.0",
            id = 1,
            method = "initialize",
            @params = new { protocolVersion = ProtocolVersion, capabilities = new { }, clientInfo = new { name = "nexus", version = "1.0" } },
        }, ct);
        if (initialize.ServerError is { } refused && Supports(refused, StatelessVersion))
        {
            // MCP 2026-07-28, Versioning: a server of the stateless revision only answers the initialize with 400 and
            // UnsupportedProtocolVersion listing what it supports. It is asked that revision's way, and remembered once
            // it has answered a request that way; its answer is the answer, whatever it is.
            var stateless = statelessFirst ?? (await StatelessAsync(connection, method, parameters, stepUp, ct)).Answer;
            if (statelessFirst is not null || stateless.Status is >= 200 and < 300)
            {
                statelessServers[connection.ProviderName] = true;
            }

            return stateless;
        }

        if (initialize.Answer.Message is not { } init || !init.TryGetProperty("result", out var initResult))
        {
            return initialize.Answer;
        }

        var session = initialize.Session;
        var version = initResult.ValueKind == JsonValueKind.Object && initResult.TryGetProperty("protocolVersion", out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()!
            : ProtocolVersion;
        connection = await LatestAsync(connection, ct);
        // The notification's and the DELETE's answers are not read: a step-up started by them would count a round and
        // make a link nobody is given.
        await SendAsync(connection, Headers(session, version, null), stepUp: false, new { jsonrpc = "2.0", method = "notifications/initialized" }, ct);
        var answer = await SendAsync(connection, Headers(session, version, null), stepUp, new { jsonrpc = "2.0", id = 2, method, @params = parameters }, ct);
        answer = await ResumeAsync(connection, session, version, stepUp, answer, ct);
        if (session is not null)
        {
            await api.SendAsync(await LatestAsync(connection, ct), "DELETE", "", null, Headers(session, version, null), null, null, ct, stepUp: false);
        }

        return answer.Answer;
    }

    /// <summary>
    /// MCP 2025-11-25, Streamable HTTP, "Resumability and Redelivery": a server that has sent an event id may close the
    /// stream before it answers (SSE polling, SEP-1699); the client waits the stream's retry interval and asks again with
    /// GET and Last-Event-ID, and the server replays what came after that event, the answer among it. Asked again at most
    /// <see cref="MaxResumptions"/> times, and not when the server asks for a wait longer than the Bridge waits for a
    /// provider's next piece of an answer (Nexus:Bridge:TimeoutSeconds). The 2026-07-28 revision has no such streams.
    /// </summary>
    private async Task<Sent> ResumeAsync(Connection connection, string? session, string version, bool stepUp, Sent answer, CancellationToken ct)
    {
        // All of it within ResumptionBudget × Nexus:Bridge:TimeoutSeconds, and not past the start of a shutdown (the
        // shutdown's time is for the refreshes in flight, RefreshWorker.StopAsync).
        var deadline = time.GetUtcNow() + TimeSpan.FromSeconds((double)ResumptionBudget * options.Bridge.TimeoutSeconds);
        using var resuming = CancellationTokenSource.CreateLinkedTokenSource(ct, lifetime.ApplicationStopping);
        var retry = DefaultRetry;
        for (var asked = 0; answer.Answer.Message is null && answer.LastEventId is { } lastEventId; asked++)
        {
            // WHATWG HTML §9.2.6: a retry field sets the reconnection time for every later reconnection.
            retry = answer.Retry ?? retry;
            string? why = null;
            if (lifetime.ApplicationStopping.IsCancellationRequested)
            {
                why = "before Nexus began to stop";
            }
            else if (asked == MaxResumptions)
            {
                why = $"after being asked again {MaxResumptions} times";
            }
            else if (retry > TimeSpan.FromSeconds(options.Bridge.TimeoutSeconds))
            {
                why = $"and asked to be asked again after {retry.TotalSeconds:0.###} s, longer than Nexus waits (Nexus:Bridge:TimeoutSeconds)";
            }
            else if (time.GetUtcNow() + retry > deadline)
            {
                why = $"within {ResumptionBudget} times Nexus:Bridge:TimeoutSeconds";
            }

            if (why is not null)
            {
                return answer with { Answer = answer.Answer with { Detail = $"The MCP server ended its stream without an answer {why}." } };
            }

            try
            {
                await Task.Delay(retry, time, resuming.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return answer with { Answer = answer.Answer with { Detail = "The MCP server ended its stream without an answer before Nexus began to stop." } };
            }

            answer = await SendAsync(await LatestAsync(connection, ct), Headers(session, version, lastEventId), stepUp, null, ct);
        }

        return answer;
    }

    /// <summary>A remote server's own text as quoted to the assistant: one line, at most <see cref="MaxQuotedLength"/> characters.</summary>
    internal static string Quote(string text) => Hosting.QuotedText.OneLine(text, MaxQuotedLength);

    /// <summary>
    /// One request in the 2026-07-28 revision (Basic, Per-request protocol fields; Streamable HTTP, Request headers): no
    /// handshake and no session; the protocol version, capabilities (none: Nexus answers no server requests) and client
    /// in the request's _meta, the version again in MCP-Protocol-Version and the method (and a tool's name) in Mcp-Method
    /// and Mcp-Name. A result that is not "complete" (Basic, Multi round-trip requests) is sent again with its
    /// requestState when it asks nothing else (load shedding), else answered as input Nexus cannot give. Older when the
    /// server answered as one of the initialize era (see the check below).
    /// </summary>
    private async Task<(RemoteMcpAnswer Answer, bool Older)> StatelessAsync(Connection connection, string method, object? parameters, bool stepUp, CancellationToken ct)
    {
        var body = (parameters is null ? null : JsonSerializer.SerializeToNode(parameters)) as System.Text.Json.Nodes.JsonObject ?? [];
        body["_meta"] = new System.Text.Json.Nodes.JsonObject
        {
            ["io.modelcontextprotocol/protocolVersion"] = StatelessVersion,
            ["io.modelcontextprotocol/clientCapabilities"] = new System.Text.Json.Nodes.JsonObject(),
            ["io.modelcontextprotocol/clientInfo"] = new System.Text.Json.Nodes.JsonObject { ["name"] = "nexus", ["version"] = "1.0" },
        };
        var headers = Headers(null, StatelessVersion, null);
        headers["Mcp-Method"] = method;
        string? named = null;
        if (body["name"] is System.Text.Json.Nodes.JsonValue name && name.TryGetValue(out named))
        {
            headers["Mcp-Name"] = HeaderValue(named);
        }

        var calling = method == "tools/call" && named is not null;
        var mirrored = calling ? Mirroring(connection.ProviderName, named!) : [];
        Mirror(headers, mirrored, body);
        var relisted = false;
        for (var attempt = 1; ; attempt++)
        {
            var sent = await SendAsync(await LatestAsync(connection, ct), headers, stepUp,
                new System.Text.Json.Nodes.JsonObject { ["jsonrpc"] = "2.0", ["id"] = attempt, ["method"] = method, ["params"] = body.DeepClone() }, ct);
            // MCP 2026-07-28, Versioning: a 400, 404 or 405 that answers no request (no JSON-RPC error, or one without the
            // request's id: refused before it was read as one) and is none of this revision's own refusals (-32020 header
            // mismatch, -32021 missing capability, -32022 unsupported version) is the old era's answer to a request
            // without a session. An error for the request itself (its id echoed: an unknown tool, bad arguments) is an answer.
            if (sent.Answer.Problem is null && sent.Answer.Status is 400 or 404 or 405 && !sent.ServerErrorAnswersRequest
                && !(sent.ServerError is { } error && error.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.Number
                    && code.TryGetInt32(out var value) && value is -32020 or -32021 or UnsupportedProtocolVersion))
            {
                return (sent.Answer, true);
            }

            // Streamable HTTP, Custom Headers from Tool Parameters: after a header mismatch the client SHOULD list the tools
            // again (their annotations may have changed, or were never seen here) and retry. Once: the server refused the
            // call before running it, so it is safe to send again.
            if (calling && !relisted && sent.ServerError is { } mismatch && Code(mismatch) == HeaderMismatch
                && !(fruitlessRelists.TryGetValue((connection.ProviderName, named!), out var at) && time.GetElapsedTime(at) < RelistPause))
            {
                relisted = true;
                var learned = await LearnAsync(connection, named!, ct);
                if (McpParamHeaders.Same(learned, mirrored))
                {
                    if (fruitlessRelists.Count >= MaxMirroringTools)
                    {
                        fruitlessRelists.Clear();
                    }

                    fruitlessRelists[(connection.ProviderName, named!)] = time.GetTimestamp();
                }
                else
                {
                    foreach (var stale in headers.Keys.Where(k => k.StartsWith(McpParamHeaders.Prefix, StringComparison.OrdinalIgnoreCase)).ToList())
                    {
                        headers.Remove(stale);
                    }

                    mirrored = learned;
                    Mirror(headers, mirrored, body);
                    continue;
                }
            }

            if (sent.Answer.Message is not { } message || !message.TryGetProperty("result", out var result) || result.ValueKind != JsonValueKind.Object
                || !result.TryGetProperty("resultType", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() == "complete")
            {
                return (method == "tools/list" ? Listed(connection.ProviderName, sent.Answer) : sent.Answer, false);
            }

            // An incomplete result: only a bare requestState is something Nexus can answer (by asking again with it).
            if (type.GetString() == "input_required" && !result.TryGetProperty("inputRequests", out _) && result.TryGetProperty("requestState", out var state)
                && attempt <= MaxRequestStateRetries)
            {
                body["requestState"] = System.Text.Json.Nodes.JsonNode.Parse(state.GetRawText());
                continue;
            }

            return (sent.Answer with { Message = null, Detail = $"The MCP server asked for more before it answers (resultType {Quote(type.GetString()!)}), which Nexus cannot give through this tool." }, false);
        }
    }

    private static int? Code(JsonElement error) =>
        error.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.Number && code.TryGetInt32(out var value) ? value : null;

    /// <summary>What a stateless server's tool mirrors into headers, as far as its listings told.</summary>
    private IReadOnlyList<McpParamHeaders.Mirrored> Mirroring(string provider, string tool) =>
        mirroring.TryGetValue(provider, out var tools) && tools.TryGetValue(tool, out var mirrored) ? mirrored : [];

    private static void Mirror(Dictionary<string, string> headers, IReadOnlyList<McpParamHeaders.Mirrored> mirrored, System.Text.Json.Nodes.JsonObject body)
    {
        if (mirrored.Count > 0 && body["arguments"] is System.Text.Json.Nodes.JsonObject arguments)
        {
            foreach (var (header, value) in McpParamHeaders.For(mirrored, JsonSerializer.SerializeToElement(arguments)))
            {
                headers[header] = value;
            }
        }
    }

    /// <summary>
    /// A stateless server's tools/list answer, read for its tools' x-mcp-header annotations (remembered for their calls);
    /// a tool whose annotations break the rules is left out of the listing (Streamable HTTP: a client MUST drop it).
    /// </summary>
    private RemoteMcpAnswer Listed(string provider, RemoteMcpAnswer answer)
    {
        if (answer.Message is not { } message || !message.TryGetProperty("result", out var result) || result.ValueKind != JsonValueKind.Object
            || !result.TryGetProperty("tools", out var tools) || tools.ValueKind != JsonValueKind.Array)
        {
            return answer;
        }

        var known = mirroring.GetOrAdd(provider, _ => new(StringComparer.Ordinal));
        var dropped = new List<int>();
        var invalidTools = new List<string>();
        string? firstReason = null;
        var index = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            if (tool.ValueKind == JsonValueKind.Object && tool.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String)
            {
                var name = n.GetString()!;
                var (mirrored, invalid) = tool.TryGetProperty("inputSchema", out var schema) ? McpParamHeaders.Read(schema) : ([], null);
                if (invalid is not null)
                {
                    firstReason ??= invalid;
                    if (invalidTools.Count < 10)
                    {
                        invalidTools.Add(Quote(name));
                    }

                    dropped.Add(index);
                    known.TryRemove(name, out _);
                }
                else if (mirrored.Count == 0)
                {
                    known.TryRemove(name, out _);
                }
                else if (known.Count < MaxMirroringTools || known.ContainsKey(name))
                {
                    known[name] = mirrored;
                }
            }

            index++;
        }

        if (dropped.Count == 0)
        {
            return answer;
        }

        // One line per listing (the server may list many such tools, and be listed often).
        logger.LogWarning("The MCP server of {Provider} lists {Count} tool(s) with invalid x-mcp-header annotations, left out: {Tools} (the first: {Reason}).",
            provider, dropped.Count, string.Join(", ", invalidTools), Quote(firstReason!));

        var rewritten = System.Text.Json.Nodes.JsonNode.Parse(message.GetRawText())!;
        var list = rewritten["result"]!["tools"]!.AsArray();
        foreach (var at in Enumerable.Reverse(dropped))
        {
            list.RemoveAt(at);
        }

        return answer with { Message = JsonSerializer.SerializeToElement(rewritten) };
    }

    /// <summary>Lists a stateless server's tools (page after page, up to <see cref="MaxListingPages"/>) until <paramref name="tool"/> is among them.</summary>
    /// <remarks>Within twice Nexus:Bridge:TimeoutSeconds in all: past that the call's refusal is its answer.</remarks>
    private async Task<IReadOnlyList<McpParamHeaders.Mirrored>> LearnAsync(Connection connection, string tool, CancellationToken ct)
    {
        using var budget = new Hosting.Deadline(TimeSpan.FromSeconds(2 * Math.Max(1, options.Bridge.TimeoutSeconds)), time, ct);
        try
        {
            string? cursor = null;
            for (var page = 0; page < MaxListingPages; page++)
            {
                var (listing, _) = await StatelessAsync(connection, "tools/list", cursor is null ? new { } : new { cursor }, stepUp: false, budget.Token);
                if (listing.Message is not { } message || !message.TryGetProperty("result", out var result) || result.ValueKind != JsonValueKind.Object)
                {
                    break;
                }

                if (result.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array
                    && tools.EnumerateArray().Any(t => t.ValueKind == JsonValueKind.Object && t.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && n.GetString() == tool))
                {
                    break;
                }

                cursor = result.TryGetProperty("nextCursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
                if (cursor is null)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // Out of time: what was learned so far is what there is.
        }

        return Mirroring(connection.ProviderName, tool);
    }

    /// <summary>Whether a JSON-RPC error is UnsupportedProtocolVersion whose data lists <paramref name="version"/> among the supported ones.</summary>
    private static bool Supports(JsonElement error, string version) =>
        error.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.Number && code.TryGetInt32(out var value) && value == UnsupportedProtocolVersion
        && error.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object
        && data.TryGetProperty("supported", out var supported) && supported.ValueKind == JsonValueKind.Array
        && supported.EnumerateArray().Any(v => v.ValueKind == JsonValueKind.String && v.GetString() == version);

    /// <summary>
    /// A header value as MCP 2026-07-28 (Streamable HTTP, Request headers) carries a name: as it is when it is visible
    /// ASCII without leading or trailing spaces, else <c>=?base64?…?=</c> of its UTF-8 bytes.
    /// </summary>
    internal static string HeaderValue(string value) =>
        value.Length > 0 && value.All(c => c is >= ' ' and <= '~') && value[0] != ' ' && value[^1] != ' ' && !value.StartsWith("=?", StringComparison.Ordinal)
            ? value
            : "=?base64?" + Convert.ToBase64String(Encoding.UTF8.GetBytes(value)) + "?=";

    /// <summary>
    /// The connection as it is now (read through the connection cache, which a refresh on this instance clears): when
    /// the initialize request was answered 401 and the Bridge refreshed the token, the requests after it carry the new one.
    /// </summary>
    private async Task<Connection> LatestAsync(Connection connection, CancellationToken ct) =>
        await store.FindCachedAsync(connection.Id, ct) is { Status: ConnectionStatus.Active } latest ? latest : connection;

    /// <summary>
    /// One request's answer; <paramref name="LastEventId"/> set when its event stream ended, whole, after an event id and
    /// without the answer; <paramref name="ServerError"/> the JSON-RPC error the server's own 4xx body held, if any.
    /// </summary>
    private sealed record Sent(RemoteMcpAnswer Answer, string? Session, string? LastEventId, TimeSpan? Retry, JsonElement? ServerError = null,
        bool ServerErrorAnswersRequest = false);

    /// <summary>POSTs <paramref name="message"/>, or with none GETs the stream (after the Last-Event-ID in <paramref name="headers"/>).</summary>
    private async Task<Sent> SendAsync(Connection connection, Dictionary<string, string> headers, bool stepUp, object? message, CancellationToken ct)
    {
        var body = message is null ? null : JsonSerializer.SerializeToUtf8Bytes(message);
        // "" is the MCP endpoint itself (the provider's API base URL is the server's URL).
        var raw = await api.SendAsync(connection, body is null ? "GET" : "POST", "", null, headers, body, body is null ? null : "application/json", ct, stepUp, AnswerSeen());
        var session = headers.GetValueOrDefault("Mcp-Session-Id");
        var newSession = raw.Headers.TryGetValue("Mcp-Session-Id", out var s) && s.Length > 0 ? s : session;
        if (raw.Status is < 200 or >= 300)
        {
            // Only a problem Nexus wrote is read as one: the server's own error body may imitate Nexus's step-up
            // answer (code insufficient_scope with an auth_url of its choosing), which must not become a link that
            // the assistant shows the person as Nexus's.
            JsonElement? problem = null;
            try
            {
                problem = !raw.FromProvider && raw.Body is { } text && text.TrimStart().StartsWith('{') ? JsonDocument.Parse(text).RootElement.Clone() : null;
            }
            catch (JsonException)
            {
            }

            // The server's own JSON-RPC error, read for what it says about protocol versions, never shown as Nexus's.
            var rpc = raw.FromProvider && raw.Status is >= 400 and < 500 ? Parse(raw.Body).Response : null;
            var serverError = rpc is { } reply && reply.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object ? error : (JsonElement?)null;
            var answersRequest = serverError is not null && rpc!.Value.TryGetProperty("id", out var id) && id.ValueKind is JsonValueKind.Number or JsonValueKind.String;
            var detail = serverError is { } e && e.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String
                ? $"The MCP server answered HTTP {raw.Status}: {Quote(m.GetString()!)}"
                : $"The MCP server answered HTTP {raw.Status}.";
            return new Sent(new RemoteMcpAnswer(null, raw.Status, problem, detail), newSession, null, null, serverError, answersRequest);
        }

        var stream = Parse(raw.Body);
        var answer = new RemoteMcpAnswer(stream.Response, raw.Status, null, raw.Truncated ? "The MCP server's answer was too large." : null);
        // A cut answer is not resumed: what was cut is not known to be the end of the stream.
        return new Sent(answer, newSession, raw.Truncated ? null : stream.LastEventId, stream.Retry);
    }

    private static Dictionary<string, string> Headers(string? session, string version, string? lastEventId)
    {
        var headers = new Dictionary<string, string>
        {
            // A GET opens an event stream only (MCP transports, Listening for Messages from the Server).
            ["Accept"] = lastEventId is null ? "application/json, text/event-stream" : "text/event-stream",
            ["MCP-Protocol-Version"] = version,
        };
        if (session is not null)
        {
            headers["Mcp-Session-Id"] = session;
        }

        if (lastEventId is not null)
        {
            headers["Last-Event-ID"] = lastEventId;
        }

        return headers;
    }

    /// <summary>What a body says: its JSON-RPC response, else (an event stream without one) the last event id and retry interval.</summary>
    private readonly record struct EventStream(JsonElement? Response, string? LastEventId, TimeSpan? Retry);

    /// <summary>
    /// Whether an event stream's bytes so far hold a JSON-RPC response (MCP 2025-11-25, Streamable HTTP: the server
    /// SHOULD close the stream once it has sent it; one that does not is not waited for). Each call reads only what
    /// came since the last: the bytes up to the last blank line (WHATWG HTML §9.2.6, an event's end; lines end at CRLF,
    /// LF or CR) not yet read are parsed as events, once.
    /// </summary>
    internal static Func<ReadOnlyMemory<byte>, bool> AnswerSeen()
    {
        var scanned = 0;
        var eventsFrom = 0;
        var lineLength = 0;
        var afterCr = false;
        return bytes =>
        {
            var span = bytes.Span;
            var boundary = eventsFrom;
            for (var i = scanned; i < span.Length; i++)
            {
                var b = span[i];
                if (b == (byte)'\n' && afterCr)
                {
                    afterCr = false; // the LF of a CRLF, whose CR ended the line
                    continue;
                }

                afterCr = b == (byte)'\r';
                if (b is (byte)'\n' or (byte)'\r')
                {
                    if (lineLength == 0)
                    {
                        boundary = i + 1;
                    }

                    lineLength = 0;
                }
                else
                {
                    lineLength++;
                }
            }

            scanned = span.Length;
            if (boundary == eventsFrom)
            {
                return false;
            }

            var events = Encoding.UTF8.GetString(span[eventsFrom..boundary]);
            eventsFrom = boundary;
            return !events.TrimStart().StartsWith('{') && Parse(events).Response is not null;
        };
    }

    /// <summary>
    /// A JSON body, or an SSE stream read as WHATWG HTML §9.2.6 says: fields <c>data</c> (lines joined by a line feed),
    /// <c>id</c> and <c>retry</c>, comments skipped, an event dispatched at a blank line and skipped when its data is
    /// empty (the priming event), the first event that is a response (has result or error) taken.
    /// </summary>
    private static EventStream Parse(string? body)
    {
        if (string.IsNullOrWhiteSpace(body))
        {
            return default;
        }

        if (body.TrimStart().StartsWith('{'))
        {
            try
            {
                return new EventStream(JsonDocument.Parse(body).RootElement.Clone(), null, null);
            }
            catch (JsonException)
            {
                return default;
            }
        }

        var data = new StringBuilder();
        string? idBuffer = null;
        string? lastEventId = null;
        TimeSpan? retry = null;
        // Lines end at CRLF, LF or CR only (WHATWG HTML §9.2.5): JSON carries U+2028, U+2029 and U+0085 raw in strings. A
        // last event without its blank line is still read (the stream ended there; WHATWG would drop it).
        foreach (var line in body.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n').Split('\n').Append(""))
        {
            if (line.Length == 0)
            {
                lastEventId = idBuffer;
                if (data.Length > 0 && Response(data.ToString(0, data.Length - 1)) is { } response)
                {
                    return new EventStream(response, null, null);
                }

                data.Clear();
                continue;
            }

            var colon = line.IndexOf(':');
            if (colon == 0)
            {
                continue; // a comment
            }

            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..];
            if (value.StartsWith(' '))
            {
                value = value[1..];
            }

            switch (field)
            {
                case "data":
                    data.Append(value).Append('\n');
                    break;
                case "id" when !value.Contains('\0'):
                    idBuffer = value;
                    break;
                case "retry" when value.Length is > 0 and <= 9 && value.All(char.IsAsciiDigit):
                    retry = TimeSpan.FromMilliseconds(int.Parse(value, System.Globalization.CultureInfo.InvariantCulture));
                    break;
            }
        }

        return new EventStream(null, string.IsNullOrEmpty(lastEventId) ? null : lastEventId, retry);

        static JsonElement? Response(string json)
        {
            try
            {
                var message = JsonDocument.Parse(json).RootElement;
                return message.ValueKind == JsonValueKind.Object && (message.TryGetProperty("result", out _) || message.TryGetProperty("error", out _))
                    ? message.Clone()
                    : null;
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }
}
