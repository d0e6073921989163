using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// A server with something behind every kind of route: an app client and its token, a gateway key, an api_key
/// provider with an active connection (over an echo upstream), a pending one, a webhook. Every log line is captured.
/// </summary>
public sealed class HostileInputFixture : IAsyncLifetime
{
    public const string ReturnUrl = "https://app.example.test/oauth/return";

    public CapturedLogs Logs { get; } = new();

    public TestDatabase Database { get; private set; } = null!;

    public NexusTestServer Server { get; private set; } = null!;

    public EchoUpstream Echo { get; private set; } = null!;

    public string GatewayKey { get; private set; } = null!;

    public string GatewayKeyId { get; private set; } = null!;

    public string ClientId { get; private set; } = null!;

    public string ClientSecret { get; private set; } = null!;

    public string AccessToken { get; private set; } = null!;

    public string Provider { get; private set; } = null!;

    public string ConnectionId { get; private set; } = null!;

    public string PendingState { get; private set; } = null!;

    public string WebhookId { get; private set; } = null!;

    /// <summary>The stored credential of the active connection: only GET /v1/token and the Bridge (to the upstream) may show it.</summary>
    public string CredentialValue { get; } = "sk-hostile-" + Guid.NewGuid().ToString("N");

    public async ValueTask InitializeAsync()
    {
        Echo = await EchoUpstream.StartAsync();
        Database = await TestDatabase.CreateAsync();
        Server = await NexusTestServer.StartAsync(Database, s =>
        {
            s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/";
            s["Nexus:UpstreamTimeoutSeconds"] = "2";
            s["Logging:LogLevel:Default"] = "Warning";
        }, services: s => s.AddSingleton<ILoggerProvider>(Logs));

        var key = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/api-keys", new { name = "hostile gateway", workspaces = new[] { "ws_1" } }, HttpStatusCode.Created);
        GatewayKey = key.GetProperty("api_key").GetString()!;
        GatewayKeyId = key.GetProperty("id").GetString()!;
        (ClientId, ClientSecret) = await Server.CreateAppClientAsync();
        AccessToken = await Server.IssueTokenAsync(ClientId, ClientSecret);
        Provider = (await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "hostile-echo", auth_mode = "api_key", api_base_url = Echo.BaseUrl + "/v1", api_key = new { @in = "header", name = "x-api-key" },
        }, HttpStatusCode.Created)).GetProperty("name").GetString()!;
        ConnectionId = await RequestAsync();
        await Server.AdminJsonAsync(HttpMethod.Post, $"/v1/connections/{ConnectionId}/credentials", new { api_key = CredentialValue });
        var pending = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_1", provider_name = Provider, return_url = ReturnUrl }, HttpStatusCode.Created);
        PendingState = Uri.UnescapeDataString(pending.GetProperty("auth_url").GetString()!.Split("state=")[1]);
        WebhookId = (await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/webhooks", new { url = Echo.BaseUrl + "/hook", events = new[] { "connection.active" } },
            HttpStatusCode.Created)).GetProperty("id").GetString()!;
    }

    private async Task<string> RequestAsync() =>
        (await Server.AdminJsonAsync(HttpMethod.Post, "/v1/request-connection", new { workspace_id = "ws_1", provider_name = Provider, return_url = ReturnUrl },
            HttpStatusCode.Created)).GetProperty("connection_id").GetString()!;

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await Database.DisposeAsync();
        await Echo.DisposeAsync();
    }
}

/// <summary>
/// The hostile-input suite (issue 12): seeded, bounded fuzzing of every mapped route (found from the server's own
/// endpoint table, so a new route is covered without editing this file) with bad JSON, wrong types, huge bodies
/// and headers, invalid UTF-8, NUL, lone surrogates, duplicated parameters, wrong methods and content types and
/// path tricks, with and without credentials. No answer may be a 5xx or show a stack trace, a .NET type name, SQL
/// or a secret, and nothing may be logged as an unhandled error. NEXUS_HOSTILE_REQUESTS sets the number of requests
/// (default 3000), NEXUS_HOSTILE_SEED the seed (a failure names the seed and the request to replay).
/// </summary>
public sealed class HostileInputTests(HostileInputFixture fixture) : IClassFixture<HostileInputFixture>
{
    /// <summary>What no answer may show: a .NET type name, a stack frame, SQL or a database error (also SignedInHostileInputTests').</summary>
    internal static readonly Regex Leak = new(
        @"\b(System|Microsoft|Nexus|Npgsql)\.[A-Z][A-Za-z]+|\bat [A-Z][\w.]+\(|--- End of stack trace|SqliteException|PostgresException|SQLSTATE|SQLite Error|syntax error at or near|invalid byte sequence|\b(SELECT|INSERT INTO|UPDATE|DELETE FROM) [a-z_*]",
        RegexOptions.CultureInvariant);

    private static readonly string[] Methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO"];

    private static readonly string[] ParameterNames =
    [
        "client_id", "client_secret", "redirect_uri", "response_type", "scope", "state", "code", "code_challenge", "code_challenge_method", "code_verifier", "nonce",
        "prompt", "grant_type", "refresh_token", "token", "token_type_hint", "expiration", "id_token_hint", "post_logout_redirect_uri", "returnUrl", "workspace_id",
        "connection_id", "event", "limit", "auth_mode", "category", "status", "replaces", "error", "error_description", "iss", "__csrf", "decision", "email", "password",
        "name", "api_key", "username", "provider", "return_url", "access_key_id", "secret_access_key", "session_token", "role_arn",
    ];

    private static readonly string[] JsonFields =
    [
        "name", "workspaces", "can_read_credentials", "scopes", "grant_types", "access_token_lifetime_seconds", "workspace_id", "provider_name", "return_url", "api_key",
        "username", "password", "access_key_id", "secret_access_key", "session_token", "region", "role_arn", "url", "events", "email", "redirect_uris", "catalog",
        "display_name", "auth_mode", "issuer", "authorization_url", "token_url", "client_id", "client_secret", "pkce", "credential_schema", "aws", "api_base_url",
        "token_endpoint_auth", "sign_up_enabled", "description", "base_url", "is_admin", "refresh_margin_seconds", "mcp_url", "send_resource", "grant_type", "private_key_pem",
    ];

    private NexusTestServer Server => fixture.Server;

    private sealed record Route(string Pattern, string[] Methods);

    private sealed record Attempt(int Index, string Method, string Target, List<(string Name, string Value)> Headers, byte[]? Body, string? ContentType, bool Raw)
    {
        public override string ToString()
        {
            var body = Body is null ? "" : Encoding.UTF8.GetString(Body.AsSpan(0, Math.Min(Body.Length, 300)));
            return $"#{Index} {Method} {(Target.Length > 300 ? Target[..300] + "…" : Target)} raw={Raw} headers=[{string.Join("; ", Headers.Select(h => $"{h.Name}: {(h.Value.Length > 80 ? h.Value[..80] + "…" : h.Value)}"))}] content-type={ContentType} body({Body?.Length ?? 0})={body}";
        }
    }

    private List<Route> Routes()
    {
        var sources = Server.Services.GetServices<EndpointDataSource>();
        return sources.SelectMany(s => s.Endpoints).OfType<RouteEndpoint>()
            .Select(e => new Route(e.RoutePattern.RawText ?? "/", e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods.ToArray() ?? ["GET", "POST"]))
            .Where(r => !r.Pattern.Contains("signing-keys/rotate", StringComparison.Ordinal)) // Each call makes an RSA key: slow, and not input-driven.
            .DistinctBy(r => r.Pattern + string.Join(',', r.Methods))
            .ToList();
    }

    [Fact]
    public async Task NoHostileRequestGetsA5xxALeakOrAnUnhandledError()
    {
        var count = int.TryParse(Environment.GetEnvironmentVariable("NEXUS_HOSTILE_REQUESTS"), CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 3000;
        var seed = int.TryParse(Environment.GetEnvironmentVariable("NEXUS_HOSTILE_SEED"), CultureInfo.InvariantCulture, out var s) ? s : 12;
        var routes = Routes();
        Assert.True(routes.Count > 60, $"Only {routes.Count} routes found.");
        var random = new Random(seed);
        var templates = Templates();
        var attempts = Enumerable.Range(0, count).Select(i => Generate(i, random, routes, templates)).ToList();
        var secrets = new[] { Server.ApiKey, Server.EncryptionKey, fixture.GatewayKey, fixture.ClientSecret };

        using var handler = new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false, ConnectTimeout = TimeSpan.FromSeconds(5) };
        using var http = new HttpClient(handler) { BaseAddress = new Uri(Server.BaseUrl), Timeout = TimeSpan.FromSeconds(20) };
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        var watch = Stopwatch.StartNew();
        await Parallel.ForEachAsync(attempts, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (attempt, ct) =>
        {
            var (status, body) = attempt.Raw ? await SendRawAsync(attempt) : await SendAsync(http, attempt);
            statuses.AddOrUpdate(status, 1, (_, c) => c + 1);
            if (status >= 500)
            {
                failures.Add($"{status} for {attempt}: {Trim(body)}");
                return;
            }

            // Two answers name .NET types by design: Scalar's bundled script (/docs/api) and the Prometheus scrape
            // for the admin key (meter names such as Microsoft.AspNetCore.Hosting). Neither depends on the input.
            // (Contains: a target may spell its path with dot segments, /%2e/docs/api/…, that Kestrel removes; in any
            // case: routes match paths case-insensitively, /DOCS/API/SCALAR.JS is the same script.)
            var namesTypesByDesign = attempt.Target.Contains("/docs/api/", StringComparison.OrdinalIgnoreCase)
                || (attempt.Target.Contains("/metrics", StringComparison.OrdinalIgnoreCase) && status == 200);
            if (!namesTypesByDesign && Leak.Match(body) is { Success: true } leak)
            {
                failures.Add($"'{leak.Value}' in the {status} answer to {attempt}: {Trim(body)}");
            }

            // The stored credential may reach the one who reads it (GET /v1/token) and, through the Bridge, the upstream (which echoes it).
            var mayShowCredential = attempt.Target.StartsWith("/v1/token/", StringComparison.Ordinal) || attempt.Target.StartsWith("/v1/bridge/", StringComparison.Ordinal)
                || attempt.Target.StartsWith("/v1/proxy", StringComparison.Ordinal);
            foreach (var secret in mayShowCredential ? secrets : secrets.Append(fixture.CredentialValue))
            {
                if (body.Contains(secret, StringComparison.Ordinal))
                {
                    failures.Add($"A secret in the {status} answer to {attempt}");
                }
            }
        });

        var errors = fixture.Logs.Lines.Where(l => l.StartsWith("Error ", StringComparison.Ordinal) || l.StartsWith("Critical ", StringComparison.Ordinal)).ToList();
        var summary = $"seed {seed}, {count} requests over {routes.Count} routes on {fixture.Database.Engine} in {watch.Elapsed.TotalSeconds:F1} s; statuses "
            + string.Join(", ", statuses.OrderBy(p => p.Key).Select(p => $"{p.Key}×{p.Value}"));
        TestContext.Current.SendDiagnosticMessage(summary);
        Assert.True(failures.IsEmpty, $"{summary}\n{failures.Count} failures, first ones:\n{string.Join("\n", failures.Take(15))}");
        Assert.True(errors.Count == 0, $"{summary}\nUnhandled errors were logged:\n{string.Join("\n", errors.Take(5).Select(Trim))}");
    }

    private static string Trim(string text) => text.Length > 600 ? text[..600] + "…" : text;

    private async Task<(int Status, string Body)> SendAsync(HttpClient http, Attempt attempt)
    {
        // Always absolute: a target such as //x/y would otherwise name another host.
        if (!Uri.TryCreate(Server.BaseUrl + attempt.Target, UriKind.Absolute, out var uri) || uri.Authority != new Uri(Server.BaseUrl).Authority)
        {
            return await SendRawAsync(attempt);
        }

        using var request = new HttpRequestMessage(new HttpMethod(attempt.Method), uri);
        // One connection per request: Kestrel closes a connection after a 414 or 431, and a pooled client would then
        // fail its next request on that connection with a broken pipe that says nothing about the server.
        request.Headers.ConnectionClose = true;
        if (attempt.Body is not null)
        {
            request.Content = new ByteArrayContent(attempt.Body);
            if (attempt.ContentType is not null)
            {
                request.Content.Headers.TryAddWithoutValidation("Content-Type", attempt.ContentType);
            }
        }

        foreach (var (name, value) in attempt.Headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        try
        {
            using var response = await http.SendAsync(request);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        catch (HttpRequestException) when (attempt.Body?.Length > 1024 * 1024 || attempt.Headers.Any(h => h.Value.Length > 16 * 1024) || attempt.Target.Length > 8 * 1024)
        {
            // Kestrel may answer 413/431/414 and close the connection while the client is still sending.
            return (499, "");
        }
        catch (HttpRequestException e)
        {
            // The server dropped the connection on an ordinary request: as bad as a 500 (an error after the answer started).
            return (598, $"(connection failed: {e.InnerException?.Message ?? e.Message})");
        }
    }

    /// <summary>Bytes no well-behaved client library would send: raw control and invalid UTF-8 bytes in the request line and headers.</summary>
    private async Task<(int Status, string Body)> SendRawAsync(Attempt attempt)
    {
        using var tcp = new TcpClient();
        var uri = new Uri(Server.BaseUrl);
        await tcp.ConnectAsync(uri.Host, uri.Port);
        var stream = tcp.GetStream();
        var head = new List<byte>();
        head.AddRange(Encoding.Latin1.GetBytes($"{attempt.Method} "));
        head.AddRange(Encoding.Latin1.GetBytes(attempt.Target));
        head.AddRange(Encoding.Latin1.GetBytes($" HTTP/1.1\r\nHost: {uri.Authority}\r\nConnection: close\r\n"));
        foreach (var (name, value) in attempt.Headers)
        {
            head.AddRange(Encoding.Latin1.GetBytes($"{name}: {value}\r\n"));
        }

        if (attempt.Body is not null)
        {
            head.AddRange(Encoding.Latin1.GetBytes($"Content-Length: {attempt.Body.Length}\r\n"));
            if (attempt.ContentType is not null)
            {
                head.AddRange(Encoding.Latin1.GetBytes($"Content-Type: {attempt.ContentType}\r\n"));
            }
        }

        head.AddRange("\r\n"u8.ToArray());
        try
        {
            await stream.WriteAsync(head.ToArray());
            if (attempt.Body is not null)
            {
                await stream.WriteAsync(attempt.Body);
            }

            using var reader = new MemoryStream();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            await stream.CopyToAsync(reader, timeout.Token);
            var text = Encoding.UTF8.GetString(reader.ToArray());
            var match = Regex.Match(text, @"^HTTP/1\.[01] (\d{3})");
            if (!match.Success)
            {
                // Kestrel may close a connection it refuses outright; that is not a server error.
                return (text.Length == 0 ? 499 : 599, text);
            }

            var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            return (int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), split < 0 ? "" : text[(split + 4)..]);
        }
        catch (IOException)
        {
            return (499, "");
        }
    }

    private enum Auth
    {
        None,
        Admin,
        Gateway,
        Basic,
        Bearer,
    }

    /// <summary>A request a route accepts (or nearly): the hostile version changes one value of it, so the handler's own code runs.</summary>
    private sealed record Template(string RouteContains, Auth Auth, Dictionary<string, string>? Query = null, Dictionary<string, object?>? Json = null, Dictionary<string, string>? Form = null);

    private List<Template> Templates()
    {
        var f = fixture;
        return
        [
            new("/v1/admin/audit", Auth.Admin, Query: new() { ["workspace_id"] = "ws_1", ["connection_id"] = f.ConnectionId, ["event"] = "connection.active", ["limit"] = "10" }),
            new("/v1/admin/api-keys", Auth.Admin, Json: new() { ["name"] = "k", ["workspaces"] = new[] { "ws_1" }, ["can_read_credentials"] = true }),
            new("/v1/admin/clients", Auth.Admin, Json: new() { ["name"] = "c", ["scopes"] = new[] { "read" }, ["grant_types"] = new[] { "client_credentials" }, ["access_token_lifetime_seconds"] = 300 }),
            new("/v1/admin/applications", Auth.Admin, Json: new() { ["name"] = "a", ["redirect_uris"] = new[] { "https://app.example.test/cb" } }),
            new("/v1/admin/users", Auth.Admin, Json: new() { ["email"] = "u@example.test", ["password"] = "Correct-Horse-9" }),
            new("/v1/admin/settings", Auth.Admin, Json: new() { ["sign_up_enabled"] = false }),
            new("/v1/admin/webhooks", Auth.Admin, Json: new() { ["url"] = f.Echo.BaseUrl + "/hook", ["events"] = new[] { "connection.active" }, ["workspace_id"] = "ws_1" }),
            new("/v1/providers", Auth.Admin, Json: new()
            {
                ["name"] = "p-x", ["auth_mode"] = "api_key", ["api_base_url"] = f.Echo.BaseUrl, ["api_key"] = new { @in = "header", name = "x-api-key" },
                ["credential_schema"] = new { type = "object", required = new[] { "api_key" }, properties = new { api_key = new { type = "string", title = "Key", pattern = "^[a-z]+$" } } },
            }),
            new("/v1/request-connection", Auth.Gateway, Json: new()
            {
                ["workspace_id"] = "ws_1", ["provider_name"] = f.Provider, ["return_url"] = HostileInputFixture.ReturnUrl, ["scopes"] = new[] { "read" },
                ["connection_config"] = new Dictionary<string, string> { ["shop"] = "acme" },
            }),
            new("/reconnect", Auth.Gateway, Json: new() { ["scopes"] = new[] { "read" }, ["return_url"] = HostileInputFixture.ReturnUrl }),
            new("/connect/values", Auth.None, Form: new() { ["state"] = f.PendingState, ["shop"] = "acme" }, Query: new() { ["state"] = f.PendingState }),
            new("/credentials", Auth.Gateway, Json: new() { ["api_key"] = "sk-new" }, Form: new() { ["state"] = f.PendingState, ["api_key"] = "sk-new" }, Query: new() { ["state"] = f.PendingState }),
            new("/v1/connections", Auth.Gateway, Query: new() { ["workspace_id"] = "ws_1", ["provider"] = f.Provider, ["status"] = "active", ["cursor"] = "djE6MTpjb25uX3g", ["limit"] = "5" }),
            new("/v1/token/", Auth.Gateway, Query: new() { ["force_refresh"] = "true" }),
            new("/v1/refresh/", Auth.Gateway),
            new("/v1/catalog", Auth.None, Query: new() { ["auth_mode"] = "api_key", ["category"] = "ai" }),
            new("/oauth2/register", Auth.None, Json: new() { ["redirect_uris"] = new[] { "https://app.example.test/cb" }, ["client_name"] = "x", ["token_endpoint_auth_method"] = "none" }),
            new("/oauth2/token", Auth.Basic, Form: new() { ["grant_type"] = "client_credentials", ["scope"] = "read" }),
            new("/oauth2/introspect", Auth.Basic, Form: new() { ["token"] = f.AccessToken, ["token_type_hint"] = "access_token" }),
            new("/oauth2/revoke", Auth.Basic, Form: new() { ["token"] = "nope", ["token_type_hint"] = "refresh_token" }),
            new("/api/v1/oauth/exchange", Auth.None, Form: new() { ["client_id"] = f.ClientId, ["client_secret"] = f.ClientSecret, ["code"] = "nxa_nope", ["expiration"] = "5" }),
            new("/authorize", Auth.None, Query: new()
            {
                ["response_type"] = "code", ["client_id"] = f.ClientId, ["redirect_uri"] = "https://app.example.test/cb", ["scope"] = "openid", ["state"] = "s",
                ["code_challenge"] = new string('a', 43), ["code_challenge_method"] = "S256", ["nonce"] = "n", ["prompt"] = "none",
            }),
            new("/auth/callback", Auth.None, Query: new() { ["state"] = f.PendingState, ["code"] = "x", ["iss"] = "https://issuer.example.test" }),
            new("/oauth2/userinfo", Auth.Bearer),
            new("/api/v1/me", Auth.Bearer),
            new("/logout", Auth.None, Query: new() { ["id_token_hint"] = "a.b.c", ["post_logout_redirect_uri"] = "https://app.example.test/", ["state"] = "s", ["client_id"] = f.ClientId }),
            new("/account/signin", Auth.None, Query: new() { ["returnUrl"] = "/dashboard" }, Form: new() { ["email"] = "u@example.test", ["password"] = "Correct-Horse-9" }),
            new("/account/signup", Auth.None, Form: new() { ["email"] = "new@example.test", ["password"] = "Correct-Horse-9" }),
            new("/dashboard/returned", Auth.None, Query: new() { ["connection_id"] = f.ConnectionId, ["status"] = "active" }),
            new("/v1/bridge/", Auth.Gateway, Query: new() { ["q"] = "1" }),
            new("/v1/proxy", Auth.Gateway, Query: new() { ["q"] = "1" }),
        ];
    }

    private Attempt Mutate(int index, Random random, Route route, Template template)
    {
        var raw = random.Next(20) == 0;
        var method = random.Next(10) == 0 ? Pick(random, Methods) : Pick(random, route.Methods);
        var query = template.Query is null ? [] : new Dictionary<string, string>(template.Query);
        var form = template.Form is null ? null : new Dictionary<string, string>(template.Form);
        var json = template.Json is null ? null : new Dictionary<string, object?>(template.Json);
        // Change one value (or add one parameter) where the handler reads it.
        var target = random.Next(3);
        if (target == 0 || (form is null && json is null))
        {
            var name = query.Count > 0 && random.Next(5) != 0 ? Pick(random, query.Keys.ToArray()) : Pick(random, ParameterNames);
            query[name] = HostileText(random, ascii: false);
        }
        else if (json is not null && (form is null || random.Next(2) == 0))
        {
            var name = json.Count > 0 && random.Next(6) != 0 ? Pick(random, json.Keys.ToArray()) : Pick(random, JsonFields);
            json[name] = new RawJson(JsonValue(random, 0));
        }
        else if (form is not null)
        {
            var name = form.Count > 0 && random.Next(6) != 0 ? Pick(random, form.Keys.ToArray()) : Pick(random, ParameterNames);
            form[name] = HostileText(random, ascii: false);
        }

        var queryText = query.Count == 0 ? "" : "?" + string.Join('&', query.Select(p => $"{Uri.EscapeDataString(p.Key)}={Escape(p.Value, raw)}"));
        var headers = new List<(string, string)>();
        switch (random.Next(8) == 0 ? (Auth)random.Next(5) : template.Auth)
        {
            case Auth.Admin:
                headers.Add(("X-API-Key", Server.ApiKey));
                break;
            case Auth.Gateway:
                headers.Add(("X-API-Key", random.Next(2) == 0 ? fixture.GatewayKey : Server.ApiKey));
                break;
            case Auth.Basic:
                headers.Add(("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{fixture.ClientId}:{fixture.ClientSecret}"))));
                break;
            case Auth.Bearer:
                headers.Add(("Authorization", "Bearer " + fixture.AccessToken));
                break;
        }

        byte[]? body = null;
        string? contentType = null;
        if (json is not null && method is not ("GET" or "HEAD" or "TRACE"))
        {
            body = Encoding.UTF8.GetBytes("{" + string.Join(',', json.Select(p => $"{JsonSerializer.Serialize(p.Key)}:{(p.Value is RawJson r ? r.Text : JsonSerializer.Serialize(p.Value))}")) + "}");
            contentType = "application/json";
        }
        else if (form is not null && method is not ("GET" or "HEAD" or "TRACE"))
        {
            body = Encoding.ASCII.GetBytes(string.Join('&', form.Select(p => $"{Uri.EscapeDataString(p.Key)}={Escape(p.Value, raw: false)}")));
            contentType = "application/x-www-form-urlencoded";
        }

        return new Attempt(index, method, FillRoute(route.Pattern, random, raw, hostile: random.Next(6) == 0) + queryText, headers, body, contentType, raw);
    }

    private sealed record RawJson(string Text);

    private Attempt Generate(int index, Random random, List<Route> routes, List<Template> templates)
    {
        var route = routes[random.Next(routes.Count)];
        if (random.Next(3) != 0 && templates.FirstOrDefault(t => route.Pattern.Contains(t.RouteContains, StringComparison.OrdinalIgnoreCase)) is { } template)
        {
            return Mutate(index, random, route, template);
        }

        var raw = random.Next(20) == 0;
        var method = random.Next(8) == 0 ? Pick(random, Methods) : Pick(random, route.Methods);
        var path = FillRoute(route.Pattern, random, raw);
        if (random.Next(8) == 0)
        {
            path = PathTrick(path, random, raw);
        }

        var query = random.Next(3) == 0 ? "" : "?" + string.Join('&', Enumerable.Range(0, random.Next(1, 6)).Select(_ => QueryPair(random, raw)));
        if (random.Next(10) == 0)
        {
            // A duplicated parameter (RFC 6749 §3.1 forbids it on OAuth endpoints).
            var pair = QueryPair(random, raw);
            query += (query.Length == 0 ? "?" : "&") + pair + "&" + pair;
        }

        var headers = new List<(string, string)>();
        AddAuthentication(headers, random, raw);
        if (random.Next(15) == 0)
        {
            headers.Add(("X-Padding", new string('a', random.Next(2) == 0 ? 20_000 : 70_000)));
        }

        if (random.Next(12) == 0)
        {
            headers.Add(("Nexus-Connection-Id", random.Next(2) == 0 ? fixture.ConnectionId : HostileText(random, ascii: true)));
        }

        if (random.Next(15) == 0)
        {
            headers.Add(("Cookie", ".AspNetCore.Identity.Application=" + HostileText(random, ascii: true) + "; __Host-nexus-csrf=x"));
        }

        if (raw && random.Next(3) == 0)
        {
            // Control and non-ASCII bytes in a header value.
            headers.Add(("X-Odd", random.Next(2) == 0 ? "a\u0001b" : "\u00ff\u00fe"));
        }

        // HttpClient refuses content on TRACE; GET and HEAD get a body now and then.
        var (body, contentType) = method == "TRACE" || (method is "GET" or "HEAD" && random.Next(4) != 0) ? (null, null) : Body(random, route.Pattern);
        return new Attempt(index, method, path + query, headers, body, contentType, raw);
    }

    private void AddAuthentication(List<(string, string)> headers, Random random, bool raw)
    {
        switch (random.Next(9))
        {
            case 0 or 1:
                headers.Add(("X-API-Key", Server.ApiKey));
                break;
            case 2 or 3:
                headers.Add(("X-API-Key", fixture.GatewayKey));
                break;
            case 4:
                headers.Add(("Authorization", "Bearer " + (random.Next(2) == 0 ? fixture.AccessToken : HostileToken(random))));
                break;
            case 5:
                var id = random.Next(2) == 0 ? fixture.ClientId : Uri.EscapeDataString(HostileText(random, ascii: false));
                var secret = random.Next(2) == 0 ? fixture.ClientSecret : "%00" + HostileText(random, ascii: true);
                headers.Add(("Authorization", "Basic " + (random.Next(5) == 0 ? "!!!" + HostileText(random, ascii: true) : Convert.ToBase64String(Encoding.UTF8.GetBytes($"{id}:{secret}")))));
                break;
            case 6:
                headers.Add(("X-API-Key", HostileText(random, ascii: !raw)));
                if (random.Next(2) == 0)
                {
                    headers.Add(("X-API-Key", Server.ApiKey));
                }

                break;
            case 7:
                headers.Add(("Authorization", Pick(random, ["Bearer", "Bearer ", "Basic", "Negotiate abc", "Bearer a.b.c", "Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer " + new string('x', 9000)])));
                break;
        }
    }

    private static string HostileToken(Random random)
    {
        var parts = Enumerable.Range(0, random.Next(1, 5)).Select(_ => Pick(random, ["eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ", "!!!", "", "a", "e30", "eyJ0eXAiOiJhdCtqd3QifQ", new string('A', 4001)]));
        return string.Join('.', parts);
    }

    private string FillRoute(string pattern, Random random, bool raw, bool hostile = true)
    {
        var path = Regex.Replace(pattern, @"\{\*{0,2}([a-zA-Z]+)[^}]*\}", m =>
        {
            var name = m.Groups[1].Value;
            if (hostile && random.Next(3) == 0)
            {
                return Escape(HostileText(random, ascii: false), raw);
            }

            return name switch
            {
                "connectionId" => random.Next(4) == 0 ? "conn_01AAAAAAAAAAAAAAAAAAAAAAAA" : fixture.ConnectionId,
                "clientId" => fixture.ClientId,
                "name" or "provider" => random.Next(4) == 0 ? "google" : fixture.Provider,
                "id" => Pick(random, [fixture.GatewayKeyId, fixture.WebhookId, "ak_nope", "wh_nope"]),
                "path" => Pick(random, ["", "items", "a/b/c", "x?y", "%2e%2e/%2e%2e/admin", "..%2f..%2fslow", "%252e", "a%00b", "%ff%fe", "%ED%A0%80"]),
                _ => "x",
            };
        });
        return path.Length == 0 ? "/" : path;
    }

    private static string PathTrick(string path, Random random, bool raw) => Pick(random,
    [
        path + "/", path + "//", "/" + path.TrimStart('/').ToUpperInvariant(), path + "/../v1/admin/audit", path + "/%2e%2e/%2e%2e/v1/admin/audit", path + "%2F..%2Fx",
        path + ";jsessionid=1", path + "%00", path + "%ff", path + "%ED%A0%80", path + "/" + new string('a', 9000), path.Replace("/", "//", StringComparison.Ordinal),
        path + "%", path + "%zz", raw ? path + "\u00e9" : path + "/%C0%AE%C0%AE/", "/%2e/" + path.TrimStart('/'),
    ]);

    private static string QueryPair(Random random, bool raw)
    {
        var name = random.Next(10) == 0 ? Escape(HostileText(random, ascii: false), raw) : Pick(random, ParameterNames);
        return name + "=" + Escape(HostileText(random, ascii: false), raw);
    }

    /// <summary>Percent-encodes text for a URL, sometimes leaving hostile encodings as they are (already encoded).</summary>
    private static string Escape(string text, bool raw)
    {
        if (Regex.IsMatch(text, "%[0-9A-Fa-f]{2}"))
        {
            return text; // Already an encoding trick: %00, %ff, %ED%A0%80…
        }

        // Raw requests sometimes carry the text unencoded (Latin-1 bytes in the request line, spaces and all).
        return raw && text.All(c => c is > ' ' and <= '\u00ff' and not '#' and not '?' and not '&') ? text : Uri.EscapeDataString(ToValidUtf16(text));
    }

    private static string ToValidUtf16(string text) => new(text.Select(c => char.IsSurrogate(c) ? '\uFFFD' : c).ToArray());

    private static string HostileText(Random random, bool ascii) => random.Next(ascii ? 12 : 18) switch
    {
        0 => "",
        1 => "%00",
        2 => "a%00b",
        3 => "%ff%fe",
        4 => "%ED%A0%80", // A UTF-8-encoded lone surrogate.
        5 => "' OR '1'='1",
        6 => "<script>alert(1)</script>",
        7 => new string('x', random.Next(2) == 0 ? 300 : 20_000),
        8 => "../../etc/passwd",
        9 => "-1",
        10 => "99999999999999999999999",
        11 => "javascript:alert(1)",
        12 => "\r\nSet-Cookie: a=b",
        13 => "é中文🙂",
        14 => "\t \u000b\u000c",
        15 => "http://127.0.0.1:1/x",
        16 => "\u202e\u200b",
        _ => "null",
    };

    private (byte[]? Body, string? ContentType) Body(Random random, string pattern)
    {
        var json = pattern.StartsWith("/v1/", StringComparison.Ordinal) || pattern.StartsWith("/api/", StringComparison.Ordinal);
        var contentType = random.Next(6) switch
        {
            0 => Pick(random, ["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json; charset=latin1", "application/x-www-form-urlencoded; charset=iso-8859-1", "", "application/*", "application/json; charset=utf-16"]),
            1 => json ? "application/x-www-form-urlencoded" : "application/json",
            _ => json ? "application/json" : "application/x-www-form-urlencoded",
        };
        var bytes = contentType.Contains("json", StringComparison.Ordinal) ? JsonBody(random) : FormBody(random);
        return (bytes, contentType.Length == 0 ? null : contentType);
    }

    private byte[] JsonBody(Random random)
    {
        switch (random.Next(14))
        {
            case 0:
                return Encoding.UTF8.GetBytes(Pick(random, ["", "{", "}", "[", "nul", "{\"a\":}", "{\"a\" 1}", "{'a':1}", "{\"a\":1,}", "\"str\"", "[1,2]", "null", "1e400", "{\"a\":1}{\"b\":2}"]));
            case 1:
                return [.. "{\"name\":\""u8.ToArray(), 0xff, 0xfe, 0xc0, 0xaf, .. "\"}"u8.ToArray()]; // Invalid UTF-8.
            case 2:
                return Encoding.UTF8.GetBytes(new string('[', 5000) + new string(']', 5000)); // Deep nesting.
            case 3:
                return Encoding.UTF8.GetBytes("{\"name\":\"" + new string('a', random.Next(2) == 0 ? 200_000 : 1_100_000) + "\"}"); // Large, and over the 1 MB limit.
            case 4:
                return [0xEF, 0xBB, 0xBF, .. "{\"name\":\"bom\"}"u8.ToArray()];
            case 5:
                return Encoding.Unicode.GetBytes("{\"name\":\"utf16\"}");
            default:
                var fields = Enumerable.Range(0, random.Next(1, 7)).Select(_ => $"\"{Pick(random, JsonFields)}\":{JsonValue(random, 0)}");
                if (random.Next(8) == 0)
                {
                    fields = fields.Append("\"name\":\"dup\"").Append("\"name\":\"dup2\"");
                }

                return Encoding.UTF8.GetBytes("{" + string.Join(',', fields) + "}");
        }
    }

    private string JsonValue(Random random, int depth) => random.Next(depth > 2 ? 10 : 14) switch
    {
        0 => "\"a\\u0000b\"",
        1 => "\"\\ud800\"",
        2 => "\"x\\udc00y\"",
        3 => Pick(random, ["0", "-1", "1.5", "1e400", "99999999999999999999", "true", "false", "null"]),
        4 => "\"" + new string('x', random.Next(2) == 0 ? 9000 : 70_000) + "\"",
        5 => JsonSerializer.Serialize(ToValidUtf16(HostileText(random, ascii: false))),
        6 => Pick(random, ["\"ws_1\"", $"\"{fixture.Provider}\"", $"\"{HostileInputFixture.ReturnUrl}\"", "\"api_key\"", "\"https://app.example.test/oauth/x\r\n\"", "\"^(a+)+$\""]),
        7 => "\"" + fixture.CredentialValue[..4] + "\"",
        8 => "\"\\u0000\"",
        9 => "\"plain\"",
        10 => "[" + string.Join(',', Enumerable.Range(0, random.Next(4)).Select(_ => JsonValue(random, depth + 1))) + "]",
        11 => "{\"type\":\"object\",\"properties\":{\"api_key\":{\"type\":\"string\",\"pattern\":" + Pick(random, ["\"^(a+)+$\"", "\"(\"", "\"(?=a)\"", "5"]) + "}},\"required\":[\"api_key\"]}",
        _ => "{" + string.Join(',', Enumerable.Range(0, random.Next(3)).Select(_ => $"\"{Pick(random, JsonFields)}\":{JsonValue(random, depth + 1)}")) + "}",
    };

    private byte[] FormBody(Random random)
    {
        switch (random.Next(8))
        {
            case 0:
                return [.. "a="u8.ToArray(), 0xff, 0x00, 0xfe, .. "&b=%"u8.ToArray()];
            case 1:
                return Encoding.ASCII.GetBytes("client_id=" + new string('a', random.Next(2) == 0 ? 20_000 : 1_100_000));
            case 2:
                return Encoding.ASCII.GetBytes(string.Join('&', Enumerable.Range(0, 3000).Select(i => $"k{i}=v")));
            default:
                var pairs = Enumerable.Range(0, random.Next(1, 8)).Select(_ => QueryPair(random, raw: false)).ToList();
                if (random.Next(3) == 0)
                {
                    pairs.Add($"grant_type={Pick(random, ["client_credentials", "authorization_code", "refresh_token", "password"])}");
                    pairs.Add($"client_id={fixture.ClientId}");
                }

                if (random.Next(4) == 0)
                {
                    pairs.Add($"state={Uri.EscapeDataString(fixture.PendingState)}");
                }

                if (random.Next(6) == 0)
                {
                    pairs.Add(pairs[0]); // Duplicated.
                }

                return Encoding.ASCII.GetBytes(string.Join('&', pairs));
        }
    }

    private static T Pick<T>(Random random, T[] items) => items[random.Next(items.Length)];
}
