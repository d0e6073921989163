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
/// and a DELETE of the session when the server made one (MCP transports, Session Management).
/// </summary>
internal sealed class McpRemoteCalls(McpApiCalls api, ConnectionStore store)
{
    private const string ProtocolVersion = "2025-11-25";

    /// <param name="stepUp">Whether a 403 insufficient_scope starts a step-up (BridgeConnection.ForwardAsync): not for a listing.</param>
    public async Task<RemoteMcpAnswer> RequestAsync(Connection connection, string method, object? parameters, CancellationToken ct, bool stepUp = true)
    {
        var initialize = await SendAsync(connection, null, ProtocolVersion, stepUp, new
        {
            jsonrpc = "2.0",
            id = 1,
            method = "initialize",
            @params = new { protocolVersion = ProtocolVersion, capabilities = new { }, clientInfo = new { name = "nexus", version = "1.0" } },
        }, ct);
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
        await SendAsync(connection, session, version, stepUp: false, new { jsonrpc = "2.0", method = "notifications/initialized" }, ct);
        var answer = await SendAsync(connection, session, version, stepUp, new { jsonrpc = "2.0", id = 2, method, @params = parameters }, ct);
        if (session is not null)
        {
            await api.SendAsync(await LatestAsync(connection, ct), "DELETE", "", null, Headers(session, version), null, null, ct, stepUp: false);
        }

        return answer.Answer;
    }

    /// <summary>
    /// The connection as it is now (read through the connection cache, which a refresh on this instance clears): when
    /// the initialize request was answered 401 and the Bridge refreshed the token, the requests after it carry the new one.
    /// </summary>
    private async Task<Connection> LatestAsync(Connection connection, CancellationToken ct) =>
        await store.FindCachedAsync(connection.Id, ct) is { Status: ConnectionStatus.Active } latest ? latest : connection;

    private async Task<(RemoteMcpAnswer Answer, string? Session)> SendAsync(Connection connection, string? session, string version, bool stepUp, object message, CancellationToken ct)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(message);
        // "" is the MCP endpoint itself (the provider's API base URL is the server's URL).
        var raw = await api.SendAsync(connection, "POST", "", null, Headers(session, version), body, "application/json", ct, stepUp);
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

            return (new RemoteMcpAnswer(null, raw.Status, problem, $"The MCP server answered HTTP {raw.Status}."), newSession);
        }

        return (new RemoteMcpAnswer(Parse(raw.Body), raw.Status, null, raw.Truncated ? "The MCP server's answer was too large." : null), newSession);
    }

    private static Dictionary<string, string> Headers(string? session, string version)
    {
        var headers = new Dictionary<string, string>
        {
            ["Accept"] = "application/json, text/event-stream",
            ["MCP-Protocol-Version"] = version,
        };
        if (session is not null)
        {
            headers["Mcp-Session-Id"] = session;
        }

        return headers;
    }

    /// <summary>A JSON body, or the first event of an SSE stream that is a response (has result or error).</summary>
    private static JsonElement? Parse(string? body)
    {
        if (string.IsNullOrWhiteSpace(body))
        {
            return null;
        }

        try
        {
            if (body.TrimStart().StartsWith('{'))
            {
                return JsonDocument.Parse(body).RootElement.Clone();
            }

            var data = new StringBuilder();
            foreach (var line in body.Split('\n').Append(""))
            {
                var trimmed = line.TrimEnd('\r');
                if (trimmed.StartsWith("data:", StringComparison.Ordinal))
                {
                    data.Append(trimmed.AsSpan(5).TrimStart());
                    continue;
                }

                // A blank line ends an event (WHATWG HTML, Server-sent events §9.2.6).
                if (trimmed.Length == 0 && data.Length > 0)
                {
                    var message = JsonDocument.Parse(data.ToString()).RootElement;
                    if (message.ValueKind == JsonValueKind.Object && (message.TryGetProperty("result", out _) || message.TryGetProperty("error", out _)))
                    {
                        return message.Clone();
                    }

                    data.Clear();
                }
            }
        }
        catch (JsonException)
        {
        }

        return null;
    }
}
