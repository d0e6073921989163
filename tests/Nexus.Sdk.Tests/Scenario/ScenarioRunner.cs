using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Nexus.Sdk.Tests.Scenario;

/// <summary>
/// Runs sdks/scenario.json (step vocabulary: sdks/scenario/README.md) with the .NET SDK against the Nexus and the
/// scenario upstream that sdks/scenario/run.sh started. Every step's outcome is kept by id: null when it passed, else
/// why not; after a failure the remaining steps are not run (they depend on the earlier ones).
/// </summary>
internal sealed class ScenarioRunner : IDisposable
{
    private readonly JsonElement scenario;
    private readonly string nexusUrl;
    private readonly string adminKey;
    private readonly string upstream;
    private readonly HttpClient plain = new(new SocketsHttpHandler { AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(30) };
    private readonly Dictionary<string, string> connections = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> providerOf = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonElement> providers = new(StringComparer.Ordinal);
    private NexusClient? client;

    public ScenarioRunner(string scenarioPath, string nexusUrl, string adminKey, string upstream)
    {
        this.nexusUrl = nexusUrl.TrimEnd('/');
        this.adminKey = adminKey;
        this.upstream = upstream.TrimEnd('/');
        var text = File.ReadAllText(scenarioPath).Replace("{nexus}", this.nexusUrl, StringComparison.Ordinal).Replace("{upstream}", this.upstream, StringComparison.Ordinal);
        scenario = JsonDocument.Parse(text).RootElement.Clone();
        foreach (var provider in scenario.GetProperty("providers").EnumerateArray())
        {
            providers[provider.GetProperty("name").GetString()!] = provider;
        }
    }

    public Dictionary<string, string?> Results { get; } = new(StringComparer.Ordinal);

    public static IEnumerable<string> StepIds(string scenarioPath)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(scenarioPath));
        return [.. document.RootElement.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("id").GetString()!)];
    }

    private NexusClient Client => client ?? throw new InvalidOperationException("create_api_key has not run");

    private string Workspace => scenario.GetProperty("workspace_id").GetString()!;

    private Uri ReturnUrl => new(scenario.GetProperty("return_url").GetString()!);

    public async Task RunAsync(CancellationToken ct)
    {
        foreach (var step in scenario.GetProperty("steps").EnumerateArray())
        {
            var id = step.GetProperty("id").GetString()!;
            try
            {
                await RunStepAsync(step, ct);
                Results[id] = null;
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                Results[id] = $"{e.GetType().Name}: {e.Message}";
                return;
            }
        }
    }

    private async Task RunStepAsync(JsonElement step, CancellationToken ct)
    {
        var expect = step.TryGetProperty("expect", out var e) ? e : default;
        switch (step.GetProperty("op").GetString())
        {
            case "create_api_key":
            {
                using var response = await Admin(HttpMethod.Post, "/v1/admin/api-keys", scenario.GetProperty("api_key"), ct);
                Check(response.StatusCode == HttpStatusCode.Created, $"POST /v1/admin/api-keys answered {(int)response.StatusCode}");
                var key = (await response.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("api_key").GetString()!;
                client = new NexusClient(new NexusClientOptions { BaseUrl = new Uri(nexusUrl), ApiKey = key });
                break;
            }

            case "register_providers":
                foreach (var provider in providers.Values)
                {
                    using var response = await Admin(HttpMethod.Post, "/v1/providers", provider.GetProperty("registration"), ct);
                    Check(response.StatusCode == HttpStatusCode.Created, $"registering {provider.GetProperty("name")} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
                }

                break;

            case "request_connection":
            {
                var scopes = step.TryGetProperty("scopes", out var s) ? s.EnumerateArray().Select(x => x.GetString()!).ToArray() : null;
                var config = step.TryGetProperty("connection_config", out var c) ? c.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!) : null;
                var requested = await Client.RequestConnectionAsync(new ConnectionRequest(Workspace, Str(step, "provider"), ReturnUrl, scopes, config), ct);
                Check(requested.AuthUrl is not null, "request-connection answered no auth_url");
                if (expect.ValueKind == JsonValueKind.Object && expect.TryGetProperty("auth_url_prefix", out var prefix))
                {
                    Check(requested.AuthUrl.AbsoluteUri.StartsWith(prefix.GetString()!, StringComparison.Ordinal), $"auth_url does not start with {prefix}");
                }

                connections[Str(step, "save_as")] = requested.ConnectionId;
                providerOf[Str(step, "save_as")] = Str(step, "provider");
                authUrls[Str(step, "save_as")] = requested.AuthUrl;
                break;
            }

            case "get_connection":
                await ExpectAsync(expect, async () =>
                {
                    var connection = await Client.GetConnectionAsync(Connection(step), ct);
                    CheckStatus(expect, connection.Status);
                    CheckHealth(expect, connection);
                });
                break;

            case "reconnect":
            {
                var scopes = step.TryGetProperty("scopes", out var s) ? s.EnumerateArray().Select(x => x.GetString()!).ToArray() : null;
                var again = await Client.ReconnectAsync(Connection(step), scopes, cancellationToken: ct);
                Check(again.ConnectionId == Connection(step), $"reconnect answered connection {again.ConnectionId}, not the same id");
                Check(again.AuthUrl is not null, "reconnect answered no auth_url");
                Check(again.AuthUrl.AbsoluteUri.StartsWith(Str(expect, "auth_url_prefix"), StringComparison.Ordinal), "auth_url does not start with the expected prefix");
                authUrls[Str(step, "connection")] = again.AuthUrl;
                break;
            }

            case "complete_consent":
            {
                using var requested = await plain.GetAsync(authUrls[Str(step, "connection")], ct);
                Check(requested.StatusCode == HttpStatusCode.Redirect || requested.StatusCode == HttpStatusCode.Found, $"the upstream's authorize answered {(int)requested.StatusCode}");
                var callback = requested.Headers.Location!;
                Check(callback.AbsoluteUri.StartsWith(nexusUrl + "/auth/callback", StringComparison.Ordinal), "the upstream did not redirect to Nexus's /auth/callback");
                using var back = await plain.GetAsync(callback, ct);
                var location = back.Headers.Location ?? throw new InvalidOperationException($"/auth/callback answered {(int)back.StatusCode} without a redirect");
                var status = location.Query.TrimStart('?').Split('&').Select(p => p.Split('=', 2)).Where(p => p[0] == "status").Select(p => Uri.UnescapeDataString(p[1])).FirstOrDefault();
                Check(status == Str(expect, "return_status"), $"return_url status is '{status}'");
                break;
            }

            case "wait_until_active":
            {
                var connection = await Client.WaitUntilActiveAsync(Connection(step), TimeSpan.FromSeconds(step.GetProperty("timeout_seconds").GetDouble()), ct);
                Check(connection.IsActive, "not active");
                break;
            }

            case "capture_credentials":
            {
                var name = Str(step, "provider");
                var requested = await Client.RequestConnectionAsync(new ConnectionRequest(Workspace, name, ReturnUrl), ct);
                connections[Str(step, "save_as")] = requested.ConnectionId;
                providerOf[Str(step, "save_as")] = name;
                var connection = await Client.SubmitCredentialsAsync(requested.ConnectionId, Captured(name), ct);
                Check(connection.IsActive, $"after capture the connection is {connection.Status}");
                break;
            }

            case "list_connections":
            {
                var listed = new Dictionary<string, Connection>(StringComparer.Ordinal);
                await foreach (var c in Client.ListAllConnectionsAsync(Workspace, Optional(step, "status"), Optional(step, "provider"),
                                   step.TryGetProperty("page_size", out var size) ? size.GetInt32() : null, ct))
                {
                    Check(listed.TryAdd(c.ConnectionId, c), $"{c.ConnectionId} is listed twice");
                }

                foreach (var name in expect.GetProperty("includes").EnumerateArray().Select(n => n.GetString()!))
                {
                    Check(listed.TryGetValue(connections[name], out var c), $"{name} is not listed");
                    CheckStatus(expect, c!.Status);
                }

                if (expect.TryGetProperty("excludes", out var excludes))
                {
                    foreach (var name in excludes.EnumerateArray().Select(n => n.GetString()!))
                    {
                        Check(!listed.ContainsKey(connections[name]), $"{name} is listed");
                    }
                }

                if (expect.TryGetProperty("count", out var count))
                {
                    Check(listed.Count == count.GetInt32(), $"{listed.Count} connections listed, expected {count.GetInt32()}");
                }

                break;
            }

            case "get_credentials":
                await ExpectAsync(expect, async () =>
                {
                    var credential = await Client.GetCredentialsAsync(Connection(step), ct);
                    CheckCredential(step, expect, credential);
                });
                break;

            case "call":
                await CallAsync(step, expect, ct);
                break;

            case "upstream_control":
            {
                var path = Str(step, "action") switch
                {
                    "revoke_all_grants" => "/control/revoke-all-grants",
                    "expire_access_tokens" => "/control/expire-access-tokens",
                    var other => throw new InvalidOperationException($"unknown action {other}"),
                };
                using var response = await plain.PostAsync(new Uri(upstream + path), null, ct);
                Check(response.IsSuccessStatusCode, $"{path} answered {(int)response.StatusCode}");
                break;
            }

            case "force_refresh":
                await ExpectAsync(expect, async () => CheckStatus(expect, (await Client.RefreshAsync(Connection(step), ct)).Status));
                break;

            case "delete_connection":
                foreach (var name in step.TryGetProperty("connections", out var many) ? many.EnumerateArray().Select(n => n.GetString()!) : [Str(step, "connection")])
                {
                    await Client.DeleteConnectionAsync(connections[name], ct);
                }

                break;

            default:
                throw new InvalidOperationException($"unknown op {step.GetProperty("op")}");
        }
    }

    private async Task CallAsync(JsonElement step, JsonElement expect, CancellationToken ct)
    {
        var name = Str(step, "connection");
        var id = connections[name];
        var baseUrl = providers[providerOf[name]].GetProperty("registration").GetProperty("api_base_url").GetString()!;
        var path = Str(step, "path");
        var via = Str(step, "via");
        using var request = new HttpRequestMessage(new HttpMethod(Str(step, "method")), via == "bridge" ? new Uri(path, UriKind.Relative) : new Uri(baseUrl + path));
        string? contentType = null;
        if (step.TryGetProperty("headers", out var headers))
        {
            foreach (var header in headers.EnumerateObject())
            {
                if (header.Name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase))
                {
                    contentType = header.Value.GetString();
                }
                else
                {
                    request.Headers.TryAddWithoutValidation(header.Name, header.Value.GetString());
                }
            }
        }

        if (step.TryGetProperty("body", out var body))
        {
            request.Content = new StringContent(body.GetString()!, Encoding.UTF8);
            request.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(contentType ?? "text/plain; charset=utf-8");
        }

        async Task<HttpResponseMessage> SendAsync()
        {
            switch (via)
            {
                case "direct":
                    // The idiomatic hook: a DelegatingHandler that applies the connection's credential.
                    using (var http = new HttpClient(new NexusCredentialHandler(Client, id) { InnerHandler = new SocketsHttpHandler() }))
                    {
                        return await http.SendAsync(request, ct);
                    }

                case "bridge":
                    return await Client.SendThroughBridgeAsync(id, request, ct);
                case "unauthenticated":
                    return await plain.SendAsync(request, ct);
                default:
                    throw new InvalidOperationException($"unknown via {via}");
            }
        }

        if (expect.TryGetProperty("error", out _))
        {
            // expect.error: the call fails with the SDK's typed error.
            await ExpectAsync(expect, async () =>
            {
                using var unexpected = await SendAsync();
            });
            return;
        }

        var refreshesBefore = await RefreshCountAsync(ct);
        var response = await SendAsync();
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct);
            Check((int)response.StatusCode == expect.GetProperty("status").GetInt32(), $"status {(int)response.StatusCode}: {text}");
            if (expect.TryGetProperty("json", out var json))
            {
                using var actual = JsonDocument.Parse(text);
                Check(Subset(json, actual.RootElement, out var where), $"the answer differs at {where}: {text}");
            }
        }

        if (expect.TryGetProperty("refreshed_once", out var once) && once.GetBoolean())
        {
            var refreshes = await RefreshCountAsync(ct) - refreshesBefore;
            Check(refreshes == 1, $"the upstream saw {refreshes} refreshes, not 1");
        }
    }

    private void CheckCredential(JsonElement step, JsonElement expect, NexusCredential credential)
    {
        if (expect.TryGetProperty("strategy", out var strategy))
        {
            var s = credential.Strategy;
            foreach (var field in strategy.EnumerateObject())
            {
                var actual = field.Name switch
                {
                    "type" => s.Type, "in" => s.In, "name" => s.Name, "prefix" => s.Prefix, "region" => s.Region, "service" => s.Service, "role_arn" => s.RoleArn,
                    _ => throw new InvalidOperationException($"unknown strategy field {field.Name}"),
                };
                Check(actual == (field.Value.ValueKind == JsonValueKind.Null ? null : field.Value.GetString()), $"strategy.{field.Name} is '{actual}'");
            }
        }

        if (expect.TryGetProperty("credential_fields", out var fields))
        {
            foreach (var field in fields.EnumerateArray())
            {
                Check(!string.IsNullOrEmpty(credential.GetValue(field.GetString()!)), $"credentials.{field} is missing");
            }
        }

        if (expect.TryGetProperty("credentials_equal_captured", out var equal) && equal.GetBoolean())
        {
            foreach (var (field, value) in Captured(providerOf[Str(step, "connection")]))
            {
                Check(credential.GetValue(field) == value, $"credentials.{field} is not what was captured");
            }
        }

        if (expect.TryGetProperty("expires_in_future", out var future) && future.GetBoolean())
        {
            Check(credential.ExpiresAt > DateTimeOffset.UtcNow, "expires_at is not in the future");
        }
    }

    /// <summary>Runs <paramref name="action"/>; with expect.error, it must throw the SDK's typed error of that kind.</summary>
    private static async Task ExpectAsync(JsonElement expect, Func<Task> action)
    {
        var wanted = expect.ValueKind == JsonValueKind.Object && expect.TryGetProperty("error", out var error) ? error.GetString() : null;
        if (wanted is null)
        {
            await action();
            return;
        }

        try
        {
            await action();
        }
        catch (NexusException e)
        {
            var kind = e switch
            {
                NexusAttentionRequiredException => "attention_required",
                NexusConnectionNotActiveException => "not_active",
                NexusNotFoundException => "not_found",
                NexusForbiddenException => "forbidden",
                NexusRateLimitedException => "rate_limited",
                NexusUnavailableException => "unavailable",
                _ => "other (" + e.Code + ")",
            };
            Check(kind == wanted, $"expected {wanted}, got {kind}: {e.Message}");
            if (expect.TryGetProperty("reason", out var reason))
            {
                var actual = e switch { NexusAttentionRequiredException a => a.Reason, NexusConnectionNotActiveException n => n.Reason, _ => null };
                Check(actual == reason.GetString(), $"reason is '{actual}'");
            }

            if (e is NexusConnectionNotActiveException notActive)
            {
                CheckStatus(expect, notActive.Status);
            }

            if (e is NexusAttentionRequiredException attention)
            {
                Check(!string.IsNullOrEmpty(attention.ConnectionId), "the error carries no connection id");
            }

            return;
        }

        throw new InvalidOperationException($"expected the typed error {wanted}, but the call succeeded");
    }

    /// <summary>expect.health (sdks/scenario/README.md) against the SDK's <see cref="Sdk.Connection"/>.</summary>
    private static void CheckHealth(JsonElement expect, Connection c)
    {
        if (expect.ValueKind != JsonValueKind.Object || !expect.TryGetProperty("health", out var health))
        {
            return;
        }

        foreach (var field in health.EnumerateObject())
        {
            var want = field.Value;
            var ok = field.Name switch
            {
                "granted_scopes" => c.GrantedScopes is { } granted && granted.SequenceEqual(want.EnumerateArray().Select(s => s.GetString()!)),
                "consecutive_failures" => c.ConsecutiveFailures == want.GetInt64(),
                "last_error" => want.ValueKind == JsonValueKind.Null && c.LastError is null,
                "last_refreshed" => (c.LastRefreshedAt is not null) == want.GetBoolean(),
                "reconnecting" => c.Reconnecting == want.GetBoolean(),
                "connection_config" => want.EnumerateObject().Count() == c.ConnectionConfig.Count
                    && want.EnumerateObject().All(p => c.ConnectionConfig.GetValueOrDefault(p.Name) == p.Value.GetString()),
                _ => throw new InvalidOperationException($"unknown health key {field.Name}"),
            };
            Check(ok, $"health {field.Name}: expected {want.GetRawText()}, the connection has another value");
        }
    }

    private static string? Optional(JsonElement step, string name) => step.TryGetProperty(name, out var v) ? v.GetString() : null;

    private static void CheckStatus(JsonElement expect, string status)
    {
        if (expect.ValueKind == JsonValueKind.Object && expect.TryGetProperty("status", out var wanted) && wanted.ValueKind == JsonValueKind.String)
        {
            Check(status == wanted.GetString(), $"status is '{status}', expected '{wanted.GetString()}'");
        }
    }

    /// <summary>Whether every member of <paramref name="expected"/> is in <paramref name="actual"/> (objects key by key, recursively).</summary>
    private static bool Subset(JsonElement expected, JsonElement actual, out string where)
    {
        where = "";
        if (expected.ValueKind == JsonValueKind.Object)
        {
            if (actual.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            foreach (var field in expected.EnumerateObject())
            {
                var inner = "";
                if (!actual.TryGetProperty(field.Name, out var value) || !Subset(field.Value, value, out inner))
                {
                    where = field.Name + (inner.Length > 0 ? "." + inner : "");
                    return false;
                }
            }

            return true;
        }

        return JsonElement.DeepEquals(expected, actual);
    }

    private async Task<HttpResponseMessage> Admin(HttpMethod method, string path, JsonElement body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, nexusUrl + path) { Content = JsonContent.Create(body) };
        request.Headers.Add(NexusClient.ApiKeyHeader, adminKey);
        return await plain.SendAsync(request, ct);
    }

    private readonly Dictionary<string, Uri> authUrls = new(StringComparer.Ordinal);

    private async Task<long> RefreshCountAsync(CancellationToken ct) =>
        (await plain.GetFromJsonAsync<JsonElement>(new Uri(upstream + "/control/stats"), ct)).GetProperty("refreshes").GetInt64();

    private Dictionary<string, string> Captured(string provider) =>
        providers[provider].GetProperty("credentials").EnumerateObject().ToDictionary(f => f.Name, f => f.Value.GetString()!, StringComparer.Ordinal);

    private string Connection(JsonElement step) => connections[Str(step, "connection")];

    private static string Str(JsonElement e, string name) => e.GetProperty(name).GetString()!;

    private static void Check([DoesNotReturnIf(false)] bool condition, string message)
    {
        if (!condition)
        {
            throw new InvalidOperationException(message);
        }
    }

    public void Dispose()
    {
        plain.Dispose();
        client?.Dispose();
    }
}
