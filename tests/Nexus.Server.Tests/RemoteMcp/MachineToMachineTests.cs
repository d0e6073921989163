using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.Client;
using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Mcp;
using Nexus.Server.Tests.Infrastructure;
using Nexus.Server.Tests.Mcp;

namespace Nexus.Server.Tests.RemoteMcp;

/// <summary>
/// Machine-to-machine MCP servers (issue 15, SEP-1046): registered with <c>grant_type: "client_credentials"</c> and a
/// client id with its secret (client_secret_basic) or its ES256 private key (private_key_jwt, RFC 7523); a connection
/// is active at once, without a person, and a new grant replaces the token when it is refreshed. The MCP server and its
/// authorization server are one loopback stand-in that checks the client authentication as a real server would.
/// </summary>
public sealed class MachineToMachineTests(MachineToMachineTests.Fixture fixture) : IClassFixture<MachineToMachineTests.Fixture>
{
    private const string ReturnUrl = "https://app.example.test/oauth/return";
    private const string ClientId = "m2m-client";
    private const string ClientSecret = "m2m-secret-7f3a9c";

    /// <summary>The scopes the authorization server may give the machine client; it refuses any other with invalid_scope.</summary>
    private static readonly string[] MayGrant = ["reports:read", "reports:write", "audit"];

    /// <summary>The MCP server's tools that need a scope: write_report reports:write; purge admin, which the client may not have; audit_log audit.</summary>
    private static readonly Dictionary<string, string> ToolScopes = new(StringComparer.Ordinal) { ["write_report"] = "reports:write", ["purge"] = "admin", ["audit_log"] = "audit" };

    private const int McpStepUpRounds = Nexus.Server.RemoteMcp.McpStepUp.MaxRounds;

    /// <summary>The tool the server refuses even with its scope (it wants more than any token the client can get).</summary>
    private const string StubbornTool = "audit_log";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public sealed class Fixture : IAsyncLifetime
    {
        private TestDatabase database = null!;

        public NexusTestServer Client { get; private set; } = null!;

        public FakeMcpServer Server { get; private set; } = null!;

        public ECDsa Key { get; } = ECDsa.Create(ECCurve.NamedCurves.nistP256);

        /// <summary>Every token request the authorization server accepted: the grant, how the client authenticated, the token issued, the scope asked.</summary>
        public ConcurrentQueue<(string Grant, string Method, string? Resource, string Token, string Scope)> Grants { get; } = new();

        /// <summary>The scope of every token request it refused with invalid_scope.</summary>
        public ConcurrentQueue<string> RefusedScopes { get; } = new();

        /// <summary>
        /// Failures the token endpoint answers the next token requests with, one each, before it looks at them: an HTTP
        /// status (503, 429), 0 for a connection closed without an answer, or 400 for invalid_grant.
        /// </summary>
        public ConcurrentQueue<int> Outages { get; } = new();

        /// <summary>When set, the next token request waits at it (and clears it: the requests after pass).</summary>
        public Gate? TokenGate { get => Volatile.Read(ref tokenGate); set => Volatile.Write(ref tokenGate, value); }

        private Gate? tokenGate;

        /// <summary>Tokens revoked at the authorization server's revocation endpoint (RFC 7009), in order.</summary>
        public ConcurrentQueue<string> Revoked { get; } = new();

        /// <summary>The Retry-After its 503 and 429 carry: far longer than the refresh engine's own first backoff (1 to 2 s).</summary>
        public const int RetryAfterSeconds = 120;

        /// <summary>Every assertion it verified, decoded (iss, sub, aud).</summary>
        public ConcurrentQueue<JsonElement> Assertions { get; } = new();

        /// <summary>The tokens it issued, with their scopes.</summary>
        private readonly ConcurrentDictionary<string, string[]> issued = new();

        public async ValueTask InitializeAsync()
        {
            database = await TestDatabase.CreateAsync();
            Client = await NexusTestServer.StartAsync(database, s => s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/");
            Server = await FakeMcpServer.StartAsync();
            var issuer = Server.BaseUrl;
            Server.Routes["/mcp"] = McpAsync;
            Server.Routes["/.well-known/oauth-protected-resource/mcp"] = c => c.Response.WriteAsJsonAsync(new { resource = issuer + "/mcp", authorization_servers = new[] { issuer } });
            Server.Routes["/.well-known/oauth-authorization-server"] = c => c.Response.WriteAsJsonAsync(new Dictionary<string, object>
            {
                ["issuer"] = issuer,
                ["authorization_endpoint"] = issuer + "/authorize",
                ["token_endpoint"] = issuer + "/token",
                ["revocation_endpoint"] = issuer + "/revoke",
                ["grant_types_supported"] = new[] { "client_credentials" },
                ["token_endpoint_auth_methods_supported"] = new[] { "client_secret_basic", "private_key_jwt" },
                ["token_endpoint_auth_signing_alg_values_supported"] = new[] { "ES256" },
                ["code_challenge_methods_supported"] = new[] { "S256" },
            });
            Server.Routes["/token"] = TokenAsync;
            Server.Routes["/revoke"] = async c =>
            {
                Revoked.Enqueue((await c.Request.ReadFormAsync())["token"].ToString());
                c.Response.StatusCode = 200;
            };
        }

        private async Task TokenAsync(HttpContext context)
        {
            var form = await context.Request.ReadFormAsync();
            if (Interlocked.Exchange(ref tokenGate, null) is { } gate)
            {
                await gate.PassAsync(context.RequestAborted);
            }

            if (Outages.TryDequeue(out var outage))
            {
                if (outage == 0)
                {
                    context.Abort();
                    return;
                }

                context.Response.StatusCode = outage;
                if (outage == 400)
                {
                    await context.Response.WriteAsJsonAsync(new { error = "invalid_grant", error_description = "Refused by the test." });
                    return;
                }

                context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await context.Response.WriteAsync("<html>unavailable</html>");
                return;
            }

            string method;
            if (context.Request.Headers.Authorization.ToString() is { Length: > 6 } basic && basic.StartsWith("Basic ", StringComparison.Ordinal))
            {
                var pair = Encoding.UTF8.GetString(Convert.FromBase64String(basic[6..])).Split(':', 2);
                if (pair[0] != ClientId || pair[1] != ClientSecret)
                {
                    context.Response.StatusCode = 401;
                    await context.Response.WriteAsJsonAsync(new { error = "invalid_client" });
                    return;
                }

                method = "client_secret_basic";
            }
            else if (form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" && Verify(form["client_assertion"].ToString()) is { } claims)
            {
                Assertions.Enqueue(claims);
                method = "private_key_jwt";
            }
            else
            {
                context.Response.StatusCode = 401;
                await context.Response.WriteAsJsonAsync(new { error = "invalid_client" });
                return;
            }

            // The client may be given MayGrant's scopes, no others (RFC 6749 §5.2 invalid_scope).
            var scope = form["scope"].ToString();
            var scopes = scope.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (scopes.Except(MayGrant).Any())
            {
                RefusedScopes.Enqueue(scope);
                context.Response.StatusCode = 400;
                await context.Response.WriteAsJsonAsync(new { error = "invalid_scope", error_description = $"{ClientId} may not have {string.Join(' ', scopes.Except(MayGrant))}." });
                return;
            }

            var token = "cc-" + Guid.NewGuid().ToString("N");
            issued[token] = scopes;
            Grants.Enqueue((form["grant_type"].ToString(), method, form["resource"].ToString(), token, scope));
            await context.Response.WriteAsJsonAsync(new { access_token = token, token_type = "Bearer", expires_in = 3600 });
        }

        /// <summary>When set, answers to tools/call are gzipped (Content-Encoding: gzip, application/octet-stream), whatever the request accepts.</summary>
        public bool CompressCalls { get; set; }

        /// <summary>The Accept-Encoding of each MCP request that carried a token it issued.</summary>
        public ConcurrentQueue<string> AcceptEncodings { get; } = new();

        /// <summary>When set, tools/list needs this scope too (403 insufficient_scope naming it without).</summary>
        public string? ListScope { get; set; }

        /// <summary>When set, tools/list is answered with this body as it is (content type: SSE when it starts with "data:").</summary>
        public string? ListBody { get; set; }

        /// <summary>The cursor of the second (last) page of the MCP server's tools.</summary>
        public const string SecondPage = "page-2/opaque==";

        /// <summary>The MCP server stops accepting every token issued so far (as after its authorization server's keys rotated).</summary>
        public void ForgetTokens() => issued.Clear();

        /// <summary>RFC 7515 with ES256 (RFC 7518 §3.4): the signature over header.payload, with the public key the client registered.</summary>
        private JsonElement? Verify(string jwt)
        {
            var parts = jwt.Split('.');
            if (parts.Length != 3)
            {
                return null;
            }

            var valid = Key.VerifyData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), System.Buffers.Text.Base64Url.DecodeFromChars(parts[2]),
                HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            return valid ? JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1])).RootElement.Clone() : null;
        }

        /// <summary>
        /// A minimal MCP server: 401 with the resource metadata without a token it issued; tools/list and tools/call
        /// with one, where a tool of <see cref="ToolScopes"/> needs its scope (403 insufficient_scope naming it, RFC 6750
        /// §3.1, without), and <see cref="StubbornTool"/> is refused whatever the token.
        /// </summary>
        private async Task McpAsync(HttpContext context)
        {
            var auth = context.Request.Headers.Authorization.ToString();
            if (!auth.StartsWith("Bearer ", StringComparison.Ordinal) || !issued.TryGetValue(auth[7..], out var scopes))
            {
                context.Response.StatusCode = 401;
                context.Response.Headers.WWWAuthenticate = $"Bearer resource_metadata=\"{Server.BaseUrl}/.well-known/oauth-protected-resource/mcp\"";
                return;
            }

            AcceptEncodings.Enqueue(context.Request.Headers.AcceptEncoding.ToString());
            using var message = await JsonDocument.ParseAsync(context.Request.Body);
            var tool = message.RootElement.TryGetProperty("params", out var p) && p.TryGetProperty("name", out var n) ? n.GetString() : null;
            if (tool is not null && ToolScopes.TryGetValue(tool, out var needed) && (tool == StubbornTool || !scopes.Contains(needed)))
            {
                context.Response.StatusCode = 403;
                context.Response.Headers.WWWAuthenticate =
                    $"Bearer error=\"insufficient_scope\", scope=\"{needed}\", resource_metadata=\"{Server.BaseUrl}/.well-known/oauth-protected-resource/mcp\"";
                return;
            }

            var method = message.RootElement.GetProperty("method").GetString();
            if (method == "tools/list" && ListScope is { } listScope && !scopes.Contains(listScope))
            {
                context.Response.StatusCode = 403;
                context.Response.Headers.WWWAuthenticate =
                    $"Bearer error=\"insufficient_scope\", scope=\"{listScope}\", resource_metadata=\"{Server.BaseUrl}/.well-known/oauth-protected-resource/mcp\"";
                return;
            }

            if (method == "tools/list" && ListBody is { } listBody)
            {
                context.Response.ContentType = listBody.StartsWith("data:", StringComparison.Ordinal) ? "text/event-stream" : "application/json";
                await context.Response.WriteAsync(listBody);
                return;
            }

            if (!message.RootElement.TryGetProperty("id", out var idElement))
            {
                context.Response.StatusCode = 202; // a notification (MCP transports: 202 Accepted, no body)
                return;
            }

            var id = idElement.GetInt32();
            if (method == "tools/list")
            {
                // Two pages (MCP 2025-11-25, Pagination): the first ends with a cursor for the second; another cursor is
                // the server's -32602.
                var cursor = message.RootElement.TryGetProperty("params", out var listParams) && listParams.ValueKind == JsonValueKind.Object
                    && listParams.TryGetProperty("cursor", out var c) ? c.GetString() : null;
                await context.Response.WriteAsJsonAsync<object>(cursor switch
                {
                    null => new { jsonrpc = "2.0", id, result = (object)new { tools = new[] { new { name = "echo_token", inputSchema = new { type = "object" } } }, nextCursor = SecondPage } },
                    SecondPage => new { jsonrpc = "2.0", id, result = (object)new { tools = new[] { new { name = "write_report", inputSchema = new { type = "object" } } } } },
                    _ => new { jsonrpc = "2.0", id, error = (object)new { code = -32602, message = "Invalid cursor" } },
                });
                return;
            }

            object result = new { content = new[] { new { type = "text", text = auth[7..] } } };
            if (CompressCalls && method == "tools/call")
            {
                context.Response.ContentType = "application/octet-stream";
                context.Response.Headers.ContentEncoding = "gzip";
                await using var gzip = new System.IO.Compression.GZipStream(context.Response.Body, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true);
                await JsonSerializer.SerializeAsync(gzip, new { jsonrpc = "2.0", id, result });
                return;
            }

            await context.Response.WriteAsJsonAsync(new { jsonrpc = "2.0", id, result });
        }

        public async ValueTask DisposeAsync()
        {
            await Server.DisposeAsync();
            await Client.DisposeAsync();
            await database.DisposeAsync();
            Key.Dispose();
        }
    }

    [Fact]
    public async Task AClientCredentialsServerWithASecretIsConnectedWithoutAPersonAndItsToolsAreCalledThroughTheBridge()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var provider = await fixture.Client.AdminJsonAsync(HttpMethod.Get, "/v1/providers/" + name);
        Assert.Equal("client_credentials", provider.GetProperty("mcp").GetProperty("grant_type").GetString());
        Assert.Equal("client_secret_basic", provider.GetProperty("token_endpoint_auth").GetString());

        var connectionId = await ConnectAsync(name);
        var grant = fixture.Grants.Last();
        Assert.Equal(("client_credentials", "client_secret_basic", fixture.Server.BaseUrl + "/mcp"), (grant.Grant, grant.Method, grant.Resource));
        Assert.Equal(grant.Token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task AClientCredentialsServerWithAPrivateKeyGetsASignedAssertionAndANewGrantOnRefresh()
    {
        var pem = fixture.Key.ExportPkcs8PrivateKeyPem();
        var name = await RegisterAsync(new { client_id = ClientId, private_key_pem = pem });
        var provider = await fixture.Client.AdminJsonAsync(HttpMethod.Get, "/v1/providers/" + name);
        Assert.Equal("private_key_jwt", provider.GetProperty("token_endpoint_auth").GetString());
        Assert.DoesNotContain("PRIVATE KEY", provider.ToString(), StringComparison.Ordinal);

        // The key is stored encrypted by the Vault, never in plain text.
        var stored = (byte[])(await fixture.Client.Database.ScalarAsync("SELECT client_secret FROM providers WHERE name = @name", ("name", name)))!;
        Assert.DoesNotContain("PRIVATE KEY", Encoding.UTF8.GetString(stored), StringComparison.Ordinal);

        var connectionId = await ConnectAsync(name);
        var claims = fixture.Assertions.Last();
        Assert.Equal(ClientId, claims.GetProperty("iss").GetString());
        Assert.Equal(ClientId, claims.GetProperty("sub").GetString());
        Assert.Equal(fixture.Server.BaseUrl, claims.GetProperty("aud").GetString());
        Assert.True(claims.GetProperty("exp").GetInt64() > claims.GetProperty("iat").GetInt64());
        var first = fixture.Grants.Last().Token;
        Assert.Equal(first, await CallToolAsync(connectionId));

        // No refresh token: a refresh is a new client_credentials grant, with a new assertion (a new jti).
        var refreshed = await fixture.Client.AdminJsonAsync(HttpMethod.Post, "/v1/refresh/" + connectionId);
        Assert.Equal("active", refreshed.GetProperty("status").GetString());
        var second = fixture.Grants.Last();
        Assert.Equal("client_credentials", second.Grant);
        Assert.NotEqual(first, second.Token);
        Assert.NotEqual(claims.GetProperty("jti").GetString(), fixture.Assertions.Last().GetProperty("jti").GetString());
        Assert.Equal(second.Token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task ARefreshOfAMachineConnectionAsksForTheConnectionsOwnScopesNotTheProviders()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret, scopes = new[] { "reports:read" } });
        var connectionId = await ConnectAsync(name, ["reports:write"]);
        Assert.Equal("reports:write", fixture.Grants.Last().Scope);

        var refreshed = await fixture.Client.AdminJsonAsync(HttpMethod.Post, "/v1/refresh/" + connectionId);
        Assert.Equal("active", refreshed.GetProperty("status").GetString());
        var grant = fixture.Grants.Last();
        Assert.Equal(("client_credentials", "reports:write"), (grant.Grant, grant.Scope));
        Assert.Equal(grant.Token, await CallToolAsync(connectionId, "write_report"));
    }

    [Fact]
    public async Task ARefreshOfAMachineConnectionRefusedWith401AndNoOAuthErrorIsRetriedAsTheDeploymentsToFixNotAskedToReconnect()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name);
        var token = fixture.Grants.Last().Token;

        // RFC 6749 §5.2: invalid_client may come as a bare 401. It blames the client registration, not a grant, as for
        // an ordinary refresh: the connection stays active with its token and is retried; it is not attention_required.
        fixture.Outages.Enqueue(401);
        var problem = await fixture.Client.AdminJsonAsync(HttpMethod.Post, "/v1/refresh/" + connectionId, null, HttpStatusCode.ServiceUnavailable);
        Assert.Equal("refresh_unavailable", problem.GetProperty("code").GetString());
        Assert.Empty(fixture.Outages);
        var connection = await ConnectionAsync(connectionId);
        Assert.Equal("active", connection.GetProperty("status").GetString());
        Assert.Equal(1, connection.GetProperty("consecutive_failures").GetInt64());
        Assert.Equal(token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task ARefreshOfAMachineConnectionThatMeetsAnOutageOfItsAuthorizationServerIsRetriedLaterAndTheConnectionStaysActive()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name);
        var token = fixture.Grants.Last().Token;

        // The authorization server is down (503, then 429; no OAuth error body): a transient failure, not a refusal.
        // The connection stays active with its token, counts the failure and has a retry scheduled, never attention_required,
        // and not before the authorization server's Retry-After.
        var failures = 0;
        foreach (var outage in new[] { 503, 429 })
        {
            fixture.Outages.Enqueue(outage);
            var before = fixture.Client.Time.GetUtcNow().ToUnixTimeSeconds();
            var problem = await fixture.Client.AdminJsonAsync(HttpMethod.Post, "/v1/refresh/" + connectionId, null, HttpStatusCode.ServiceUnavailable);
            Assert.Equal("refresh_unavailable", problem.GetProperty("code").GetString());
            Assert.Empty(fixture.Outages);
            var connection = await ConnectionAsync(connectionId);
            Assert.Equal("active", connection.GetProperty("status").GetString());
            Assert.Equal(++failures, connection.GetProperty("consecutive_failures").GetInt64());
            Assert.True(connection.GetProperty("next_refresh_at").GetInt64() >= before + Fixture.RetryAfterSeconds, connection.ToString());
            Assert.Equal("token_request_failed", connection.GetProperty("last_error").GetProperty("code").GetString());
            Assert.Equal(token, await CallToolAsync(connectionId));
        }

        // The authorization server answers again: the next refresh is a new grant, and the failures are over.
        var refreshed = await fixture.Client.AdminJsonAsync(HttpMethod.Post, "/v1/refresh/" + connectionId);
        Assert.Equal("active", refreshed.GetProperty("status").GetString());
        Assert.Equal(0, (await ConnectionAsync(connectionId)).GetProperty("consecutive_failures").GetInt64());
        var grant = fixture.Grants.Last();
        Assert.NotEqual(token, grant.Token);
        Assert.Equal(grant.Token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task AWrongSecretFailsTheConnectionWithTheAuthorizationServersError()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = "not-the-secret" });
        using var request = fixture.Client.Admin(HttpMethod.Post, "/v1/request-connection", new { workspace_id = "ws_m2m", provider_name = name, return_url = ReturnUrl });
        using var response = await fixture.Client.Http.SendAsync(request, Ct);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("token_request_failed", problem.GetProperty("code").GetString());
        var connection = await fixture.Client.AdminJsonAsync(HttpMethod.Get, "/v1/connections/" + problem.GetProperty("connection_id").GetString());
        Assert.Equal("failed", connection.GetProperty("status").GetString());
    }

    [Fact]
    public async Task PatchRotatesTheClientSecretOfAClientCredentialsServerAndTheNextTokenRequestUsesOnlyTheNewOne()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name);

        // Rotated to a secret the authorization server does not know: the next token request (a refresh is a new
        // client_credentials grant) sends it, and fails; the old, still valid secret is never sent again.
        var wrong = await fixture.Client.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/" + name, new { client_secret = "rotated-but-unknown" });
        Assert.True(wrong.GetProperty("has_client_secret").GetBoolean());
        Assert.DoesNotContain("rotated-but-unknown", wrong.ToString(), StringComparison.Ordinal);
        var stored = (byte[])(await fixture.Client.Database.ScalarAsync("SELECT client_secret FROM providers WHERE name = @name", ("name", name)))!;
        Assert.DoesNotContain("rotated-but-unknown", Encoding.UTF8.GetString(stored), StringComparison.Ordinal);
        var grants = fixture.Grants.Count;
        using (var refresh = fixture.Client.Admin(HttpMethod.Post, "/v1/refresh/" + connectionId))
        using (var refused = await fixture.Client.Http.SendAsync(refresh, Ct))
        {
            Assert.NotEqual(HttpStatusCode.OK, refused.StatusCode);
        }

        Assert.Equal(grants, fixture.Grants.Count);

        // Rotated back to the secret the server knows: the next grant succeeds with it.
        await fixture.Client.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/" + name, new { client_secret = ClientSecret });
        var again = await ConnectAsync(name);
        var grant = fixture.Grants.Last();
        Assert.Equal("client_secret_basic", grant.Method);
        Assert.Equal(grant.Token, await CallToolAsync(again));
    }

    [Fact]
    public async Task PatchRotatesThePrivateKeyOfAClientCredentialsServerAndTheNextAssertionIsSignedWithTheNewKey()
    {
        using var oldKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var name = await RegisterAsync(new { client_id = ClientId, private_key_pem = oldKey.ExportPkcs8PrivateKeyPem() });

        // The server knows only the fixture's key: with the old key the assertion is refused.
        using (var request = fixture.Client.Admin(HttpMethod.Post, "/v1/request-connection", new { workspace_id = "ws_m2m", provider_name = name, return_url = ReturnUrl }))
        using (var refused = await fixture.Client.Http.SendAsync(request, Ct))
        {
            Assert.Equal(HttpStatusCode.BadGateway, refused.StatusCode);
        }

        var pem = fixture.Key.ExportPkcs8PrivateKeyPem();
        var patched = await fixture.Client.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/" + name, new { private_key_pem = pem });
        Assert.Equal("private_key_jwt", patched.GetProperty("token_endpoint_auth").GetString());
        Assert.DoesNotContain("PRIVATE KEY", patched.ToString(), StringComparison.Ordinal);
        var stored = (byte[])(await fixture.Client.Database.ScalarAsync("SELECT client_secret FROM providers WHERE name = @name", ("name", name)))!;
        Assert.DoesNotContain("PRIVATE KEY", Encoding.UTF8.GetString(stored), StringComparison.Ordinal);

        var connectionId = await ConnectAsync(name);
        Assert.Equal(ClientId, fixture.Assertions.Last().GetProperty("sub").GetString());
        Assert.Equal("private_key_jwt", fixture.Grants.Last().Method);
        Assert.Equal(fixture.Grants.Last().Token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task BadKeyRotationsAreRefusedAsValidationProblemsAndChangeNothing()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        foreach (var (body, field) in new (object, string)[]
        {
            (new { client_secret = ClientSecret, private_key_pem = fixture.Key.ExportPkcs8PrivateKeyPem() }, "client_secret"),
            (new { private_key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----" }, "private_key_pem"),
            (new { client_secret = "" }, "client_secret"),
            (new { client_id = " " }, "client_id"),
            (new { grant_type = "authorization_code" }, "grant_type"),
        })
        {
            var problem = await fixture.Client.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/" + name, body, HttpStatusCode.BadRequest);
            Assert.Equal("validation_failed", problem.GetProperty("code").GetString());
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
        }

        // The registered secret still works.
        var connectionId = await ConnectAsync(name);
        Assert.Equal(fixture.Grants.Last().Token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task BadMachineToMachineRegistrationsAreRefusedAsValidationProblems()
    {
        var url = fixture.Server.BaseUrl + "/mcp";
        foreach (var (body, field) in new (object, string)[]
        {
            (new { name = "m2m-bad1", auth_mode = "mcp_oauth2", mcp_url = url, grant_type = "client_credentials", client_id = ClientId, private_key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----" }, "private_key_pem"),
            (new { name = "m2m-bad2", auth_mode = "mcp_oauth2", mcp_url = url, grant_type = "client_credentials", client_id = ClientId }, "client_id"),
            (new { name = "m2m-bad3", auth_mode = "mcp_oauth2", mcp_url = url, grant_type = "password" }, "grant_type"),
            (new { name = "m2m-bad4", auth_mode = "mcp_oauth2", mcp_url = url, private_key_pem = fixture.Key.ExportPkcs8PrivateKeyPem() }, "private_key_pem"),
            (new { name = "m2m-bad5", authorization_url = "https://a.example/authorize", token_url = "https://a.example/token", client_id = "x", grant_type = "client_credentials" }, "grant_type"),
        })
        {
            var problem = await fixture.Client.AdminJsonAsync(HttpMethod.Post, "/v1/providers", body, HttpStatusCode.BadRequest);
            Assert.Equal("validation_failed", problem.GetProperty("code").GetString());
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
            // Never the key material back (its first base64 line stands for all of it).
            var pem = JsonSerializer.SerializeToElement(body).TryGetProperty("private_key_pem", out var given) ? given.GetString()!.Split('\n')[1] : null;
            Assert.True(pem is null || !problem.ToString().Contains(pem, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task AReconnectOfAMachineConnectionIsANewClientCredentialsGrantAtOnceAndAnswersItsStatusWithoutAnAuthUrl()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);
        var first = fixture.Grants.Last().Token;

        // Other scopes, as a person's reconnect may ask: granted at once, for the same connection id.
        var answer = await fixture.Client.AdminJsonAsync(HttpMethod.Post, $"/v1/connections/{connectionId}/reconnect", new { scopes = new[] { "reports:read", "reports:write" } });
        Assert.Equal(connectionId, answer.GetProperty("connection_id").GetString());
        Assert.Equal("active", answer.GetProperty("status").GetString());
        AssertNoAuthUrl(answer);
        var grant = fixture.Grants.Last();
        Assert.Equal(("client_credentials", "reports:read reports:write"), (grant.Grant, grant.Scope));
        Assert.NotEqual(first, grant.Token);

        var connection = await ConnectionAsync(connectionId);
        Assert.Equal("active", connection.GetProperty("status").GetString());
        Assert.Equal(["reports:read", "reports:write"], Scopes(connection));
        Assert.False(connection.TryGetProperty("reconnecting", out _), connection.ToString());

        // The new token is the one the Bridge sends, and it has the scope the server wants: no step-up, no other grant.
        var grants = fixture.Grants.Count;
        Assert.Equal(grant.Token, await CallToolAsync(connectionId, "write_report"));
        Assert.Equal(grants, fixture.Grants.Count);
    }

    [Fact]
    public async Task AMachineConnectionWhoseGrantIsStillAtTheAuthorizationServerIsNotTakenForAnExpiredConsent()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var gate = fixture.TokenGate = new Gate();
        var connecting = fixture.Client.AdminJsonAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_m2m_window", provider_name = name, return_url = ReturnUrl }, HttpStatusCode.Created);
        await gate.Arrived.WaitAsync(TimeSpan.FromSeconds(30), Ct);

        // Meanwhile pending connections whose consent window closed are ended, as a listing or another instance's start
        // does: the connection being granted has a window too, and is not among them.
        var expired = await fixture.Client.Services.GetRequiredService<Nexus.Server.Connections.ConnectionStore>().ExpireStaleAsync(null, null, Ct);
        Assert.DoesNotContain(expired, c => c.ProviderName == name);

        gate.Release();
        Assert.Equal("active", (await connecting).GetProperty("status").GetString());
    }

    [Fact]
    public async Task AReconnectRevokesTheTokenItReplacedAlsoWhenARefreshReplacedTheOneItReadMeanwhile()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);
        var first = fixture.Grants.Last().Token;

        // The reconnect's grant is held at the authorization server; meanwhile a refresh replaces the first token.
        var gate = fixture.TokenGate = new Gate();
        var reconnect = fixture.Client.AdminJsonAsync(HttpMethod.Post, $"/v1/connections/{connectionId}/reconnect", new { scopes = new[] { "reports:read" } });
        await gate.Arrived.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        var refreshed = await fixture.Client.AdminJsonAsync(HttpMethod.Post, $"/v1/refresh/{connectionId}");
        Assert.Equal("active", refreshed.GetProperty("status").GetString());
        var between = fixture.Grants.Last().Token;
        Assert.NotEqual(first, between);

        gate.Release();
        Assert.Equal("active", (await reconnect).GetProperty("status").GetString());
        var latest = fixture.Grants.Last().Token;

        // The token the row held when the reconnect's replaced it is the one revoked (the first was replaced already),
        // and the connection calls with the reconnect's.
        Assert.Contains(between, fixture.Revoked);
        Assert.DoesNotContain(latest, fixture.Revoked);
        Assert.Equal(latest, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task AFailedMachineConnectionKeepsTheRealErrorOfARefusedReconnectAndIsActiveAfterTheNextOnceTheSecretIsRotated()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = "not-the-secret" });
        string connectionId;
        using (var request = fixture.Client.Admin(HttpMethod.Post, "/v1/request-connection", new { workspace_id = "ws_m2m", provider_name = name, return_url = ReturnUrl }))
        using (var refused = await fixture.Client.Http.SendAsync(request, Ct))
        {
            Assert.Equal(HttpStatusCode.BadGateway, refused.StatusCode);
            connectionId = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("connection_id").GetString()!;
        }

        // Still the wrong secret: refused again, and the connection says why (never pending, waiting for a consent
        // nobody can give, to fail later as "expired").
        var problem = await fixture.Client.AdminJsonAsync(HttpMethod.Post, $"/v1/connections/{connectionId}/reconnect", null, HttpStatusCode.BadGateway);
        Assert.Equal("token_request_failed", problem.GetProperty("code").GetString());
        Assert.Equal((connectionId, "failed"), (problem.GetProperty("connection_id").GetString(), problem.GetProperty("connection_status").GetString()));
        AssertNoAuthUrl(problem);
        var failed = await ConnectionAsync(connectionId);
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal("invalid_client", failed.GetProperty("error").GetString());
        Assert.Equal("invalid_client", failed.GetProperty("last_error").GetProperty("code").GetString());

        // The administrator rotates the secret to the right one: the next reconnect brings the same connection back.
        await fixture.Client.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/" + name, new { client_secret = ClientSecret });
        var answer = await fixture.Client.AdminJsonAsync(HttpMethod.Post, $"/v1/connections/{connectionId}/reconnect");
        Assert.Equal((connectionId, "active"), (answer.GetProperty("connection_id").GetString(), answer.GetProperty("status").GetString()));
        AssertNoAuthUrl(answer);
        var connection = await ConnectionAsync(connectionId);
        Assert.Equal("active", connection.GetProperty("status").GetString());
        Assert.False(connection.TryGetProperty("error", out var error) && error.ValueKind != JsonValueKind.Null, connection.ToString());
        Assert.Equal(fixture.Grants.Last().Token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task ARefusedReconnectOfAnActiveMachineConnectionLeavesItWorkingWithItsTokenAndScopes()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);
        var token = fixture.Grants.Last().Token;

        var problem = await fixture.Client.AdminJsonAsync(HttpMethod.Post, $"/v1/connections/{connectionId}/reconnect", new { scopes = new[] { "admin" } }, HttpStatusCode.BadGateway);
        Assert.Equal("token_request_failed", problem.GetProperty("code").GetString());
        Assert.Equal("active", problem.GetProperty("connection_status").GetString());
        Assert.StartsWith("invalid_scope", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        AssertNoAuthUrl(problem);

        var connection = await ConnectionAsync(connectionId);
        Assert.Equal("active", connection.GetProperty("status").GetString());
        Assert.Equal(["reports:read"], Scopes(connection));
        Assert.Equal(token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task ThePersonsConnectOfAMachineServerFromTheDashboardOrAnAssistantsLinkIsActiveAtOnceWithoutAConsentPage()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;

        // The page an assistant's connect link and My connections both show, then its form.
        await browser.NavigateAsync("/dashboard/connect/" + name);
        Assert.Contains("nobody approves it", browser.LastPage, StringComparison.Ordinal);
        var landed = await browser.SubmitAsync("/dashboard/connect/" + name, new Dictionary<string, string> { ["scope"] = "reports:read" });
        Assert.Equal((fixture.Client.BaseUrl, "/dashboard"), (landed.GetLeftPart(UriPartial.Authority), landed.AbsolutePath));

        var connection = Assert.Single((await fixture.Client.AdminJsonAsync(HttpMethod.Get, "/v1/connections?workspace_id=" + userId)).GetProperty("connections").EnumerateArray());
        Assert.Equal("active", connection.GetProperty("status").GetString());
        var grant = fixture.Grants.Last();
        Assert.Equal("reports:read", grant.Scope);
        Assert.Equal(grant.Token, await CallToolAsync(connection.GetProperty("connection_id").GetString()!));
    }

    [Fact]
    public async Task TheDashboardReconnectsAPersonsMachineConnectionWithoutSendingThemToAConsentPage()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        var connectionId = await ConnectAsync(name, ["reports:read"], workspace: userId);
        var first = fixture.Grants.Last().Token;

        await browser.NavigateAsync($"/dashboard/connections/{connectionId}/reconnect");
        Assert.Contains("nobody approves it", browser.LastPage, StringComparison.Ordinal);
        var landed = await browser.SubmitAsync($"/dashboard/connections/{connectionId}/reconnect", new Dictionary<string, string> { ["scope"] = "reports:read" });
        Assert.Equal((fixture.Client.BaseUrl, "/dashboard"), (landed.GetLeftPart(UriPartial.Authority), landed.AbsolutePath));
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);

        var grant = fixture.Grants.Last();
        Assert.NotEqual(first, grant.Token);
        Assert.Equal("active", (await ConnectionAsync(connectionId)).GetProperty("status").GetString());
        Assert.Equal(grant.Token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task AMachineServersInsufficientScopeIsAnsweredByANewGrantForTheWiderScopeAndTheRequestIsSentOnceMore()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);
        var first = fixture.Grants.Last().Token;

        // The server answers 403 insufficient_scope naming reports:write: the caller gets the tool's answer, not a consent URL.
        var answered = await CallToolAsync(connectionId, "write_report");
        var grant = fixture.Grants.Last();
        Assert.Equal(("client_credentials", "reports:read reports:write"), (grant.Grant, grant.Scope));
        Assert.NotEqual(first, grant.Token);
        Assert.Equal(grant.Token, answered);

        // The connection has the wider scopes now: the next call needs no grant, and neither does a tool it had before.
        var connection = await ConnectionAsync(connectionId);
        Assert.Equal("active", connection.GetProperty("status").GetString());
        Assert.Equal(["reports:read", "reports:write"], Scopes(connection));
        var grants = fixture.Grants.Count;
        Assert.Equal(grant.Token, await CallToolAsync(connectionId, "write_report"));
        Assert.Equal(grant.Token, await CallToolAsync(connectionId));
        Assert.Equal(grants, fixture.Grants.Count);
    }

    [Fact]
    public async Task ARequestTooLargeToSendAgainGetsTheWiderTokenAndIsAskedToBeSentAgain()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);

        // Over the Bridge's replay buffer (1 MiB), the body streams through and cannot be sent a second time.
        var padding = new string('x', Nexus.Server.Bridge.BridgeForwarder.ReplayableBodyBytes + 1);
        var (status, problem) = await BridgeToolAsync(connectionId, "write_report", padding);
        // Its own code (not step_up_busy, "another step-up is starting"), still 409 as that code answered it before.
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("step_up_send_again", problem.GetProperty("code").GetString());
        Assert.Equal("The connection was given the wider scopes; send the request again.", problem.GetProperty("title").GetString());
        AssertNoAuthUrl(problem);
        var grant = fixture.Grants.Last();
        Assert.Equal("reports:read reports:write", grant.Scope);

        // Sent again, it goes with the new token at once.
        var grants = fixture.Grants.Count;
        Assert.Equal(grant.Token, await CallToolAsync(connectionId, "write_report"));
        Assert.Equal(grants, fixture.Grants.Count);
    }

    [Fact]
    public async Task AStepUpGrantRefusedForAnotherReasonThanTheScopeIsATokenRequestFailureNotScopeNotAllowed()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);
        var token = fixture.Grants.Last().Token;

        // The machine client's secret was rotated at Nexus but not at the authorization server: invalid_client, which
        // says nothing about the scope, and which an administrator of the authorization server cannot fix by allowing it.
        await fixture.Client.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/" + name, new { client_secret = "rotated-but-unknown" });
        try
        {
            var (status, problem) = await BridgeToolAsync(connectionId, "write_report");
            Assert.Equal(HttpStatusCode.BadGateway, status);
            Assert.Equal("token_request_failed", problem.GetProperty("code").GetString());
            Assert.Equal(("invalid_client", connectionId), (problem.GetProperty("error").GetString(), problem.GetProperty("connection_id").GetString()));
            AssertNoAuthUrl(problem);
            var connection = await ConnectionAsync(connectionId);
            Assert.Equal("active", connection.GetProperty("status").GetString());
            Assert.Equal(["reports:read"], Scopes(connection));
        }
        finally
        {
            await fixture.Client.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/" + name, new { client_secret = ClientSecret });
        }

        Assert.Equal(token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task AScopeTheMachineClientMayNotHaveIsAProblemWithoutAConsentUrlAndTheConnectionKeepsItsToken()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);
        var token = fixture.Grants.Last().Token;
        var grants = fixture.Grants.Count;

        // The authorization server refuses the wider scope (invalid_scope): nothing changes, and the caller is told why.
        var (status, problem) = await BridgeToolAsync(connectionId, "purge");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("scope_not_allowed", problem.GetProperty("code").GetString());
        Assert.Equal(("invalid_scope", connectionId), (problem.GetProperty("error").GetString(), problem.GetProperty("connection_id").GetString()));
        Assert.Contains("admin", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        AssertNoAuthUrl(problem);
        Assert.Equal("reports:read admin", fixture.RefusedScopes.Last());
        Assert.Equal(grants, fixture.Grants.Count);
        var connection = await ConnectionAsync(connectionId);
        Assert.Equal("active", connection.GetProperty("status").GetString());
        Assert.Equal(["reports:read"], Scopes(connection));
        Assert.Equal(token, await CallToolAsync(connectionId));
    }

    [Fact]
    public async Task AMachineServerThatStillRefusesTheWiderTokenIsAnsweredScopeNotAllowedAndAskedForAtMostThreeRoundsPerOperation()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);

        // The authorization server grants audit, the server refuses the new token all the same: one grant, one retry, a problem.
        for (var round = 1; round <= McpStepUpRounds; round++)
        {
            var grants = fixture.Grants.Count;
            var (status, problem) = await BridgeToolAsync(connectionId, "audit_log");
            Assert.Equal(HttpStatusCode.Forbidden, status);
            Assert.Equal("scope_not_allowed", problem.GetProperty("code").GetString());
            AssertNoAuthUrl(problem);
            Assert.Equal(grants + 1, fixture.Grants.Count);
            Assert.Equal("reports:read audit", fixture.Grants.Last().Scope);
        }

        // The same need a fourth time within the hour: refused by the round limit, without asking the authorization server.
        var before = fixture.Grants.Count;
        var (limited, limit) = await BridgeToolAsync(connectionId, "audit_log");
        Assert.Equal(HttpStatusCode.Forbidden, limited);
        Assert.Equal("step_up_limit", limit.GetProperty("code").GetString());
        Assert.Equal(McpStepUpRounds, limit.GetProperty("rounds").GetInt32());
        AssertNoAuthUrl(limit);
        Assert.Equal(before, fixture.Grants.Count);
        Assert.Equal(fixture.Grants.Last().Token, await CallToolAsync(connectionId));

        // A reconnect begins a new operation: the server's challenge is worth a grant again.
        await fixture.Client.AdminJsonAsync(HttpMethod.Post, $"/v1/connections/{connectionId}/reconnect");
        var afterReconnect = fixture.Grants.Count;
        Assert.Equal("scope_not_allowed", (await BridgeToolAsync(connectionId, "audit_log")).Body.GetProperty("code").GetString());
        Assert.Equal(afterReconnect + 1, fixture.Grants.Count);
    }

    [Fact]
    public async Task AStepUpGrantThatFailsTransientlyDoesNotCountAsOneOfTheOperationsRounds()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);

        // The authorization server is down (503), throttling (429) or unreachable when the server asks for audit: no
        // token, a 502 token_request_failed each time, and the connection keeps its token and scopes.
        foreach (var outage in new[] { 503, 429, 0 })
        {
            fixture.Outages.Enqueue(outage);
            var grants = fixture.Grants.Count;
            var (status, problem) = await BridgeToolAsync(connectionId, StubbornTool);
            Assert.True(status == HttpStatusCode.BadGateway, problem.ToString());
            Assert.Equal("token_request_failed", problem.GetProperty("code").GetString());
            Assert.Empty(fixture.Outages);
            Assert.Equal(grants, fixture.Grants.Count);
        }

        Assert.Equal(["reports:read"], Scopes(await ConnectionAsync(connectionId)));

        // None of them counted: the authorization server answering again, the operation still has all its rounds, each a
        // granted token the server refuses all the same, and only then the limit.
        for (var round = 1; round <= McpStepUpRounds; round++)
        {
            var grants = fixture.Grants.Count;
            var (status, problem) = await BridgeToolAsync(connectionId, StubbornTool);
            Assert.True(status == HttpStatusCode.Forbidden, problem.ToString());
            Assert.Equal("scope_not_allowed", problem.GetProperty("code").GetString());
            Assert.Equal(grants + 1, fixture.Grants.Count);
        }

        var before = fixture.Grants.Count;
        var (limited, limit) = await BridgeToolAsync(connectionId, StubbornTool);
        Assert.Equal(HttpStatusCode.Forbidden, limited);
        Assert.Equal("step_up_limit", limit.GetProperty("code").GetString());
        Assert.Equal(before, fixture.Grants.Count);
    }

    [Fact]
    public async Task TheAuditLogSaysWhichMachineStepUpRoundsCountedAndWhichWereGivenBack()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);

        // Round 1 of the need for audit meets an outage and is given back; the next request's round 1 is granted (the
        // server refuses the token all the same), and so is round 2.
        fixture.Outages.Enqueue(503);
        Assert.Equal("token_request_failed", (await BridgeToolAsync(connectionId, StubbornTool)).Body.GetProperty("code").GetString());
        Assert.Equal("scope_not_allowed", (await BridgeToolAsync(connectionId, StubbornTool)).Body.GetProperty("code").GetString());
        Assert.Equal("scope_not_allowed", (await BridgeToolAsync(connectionId, StubbornTool)).Body.GetProperty("code").GetString());

        // Oldest first, the step-up's entries only: each request names the round it is to be, and its outcome whether it counted.
        var entries = (await fixture.Client.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={connectionId}"))
            .GetProperty("events").EnumerateArray().Reverse()
            .Where(e => e.GetProperty("detail").TryGetProperty("step_up", out var s) && s.ValueKind == JsonValueKind.True)
            .Select(e => (Event: e.GetProperty("event").GetString(), Detail: e.GetProperty("detail"))).ToList();
        Assert.Equal(["requested", "failed", "requested", "activated", "requested", "activated"], entries.Select(e => e.Event));
        Assert.Equal([1, 1, 1, 1, 2, 2], entries.Select(e => e.Detail.GetProperty("round").GetInt32()));
        var failed = entries[1].Detail;
        Assert.Equal("token_request_failed", failed.GetProperty("error").GetString());
        Assert.True(failed.GetProperty("round_given_back").GetBoolean(), failed.ToString());
    }

    [Fact]
    public async Task AStepUpGrantTheAuthorizationServerRefusesCountsAsARoundAndTheAuditLogSaysSo()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var connectionId = await ConnectAsync(name, ["reports:read"]);

        // invalid_scope is a real refusal: each one is a round, and the fourth is refused by the limit without asking.
        for (var round = 1; round <= McpStepUpRounds; round++)
        {
            Assert.Equal("scope_not_allowed", (await BridgeToolAsync(connectionId, "purge")).Body.GetProperty("code").GetString());
        }

        var refused = fixture.RefusedScopes.Count;
        Assert.Equal("step_up_limit", (await BridgeToolAsync(connectionId, "purge")).Body.GetProperty("code").GetString());
        Assert.Equal(refused, fixture.RefusedScopes.Count);

        // Each refusal's entry names its round, which it did not give back.
        var failures = (await fixture.Client.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={connectionId}&event=failed"))
            .GetProperty("events").EnumerateArray().Reverse().Select(e => e.GetProperty("detail")).ToList();
        Assert.Equal(Enumerable.Range(1, McpStepUpRounds), failures.Select(d => d.GetProperty("round").GetInt32()));
        Assert.All(failures, d => Assert.False(d.GetProperty("round_given_back").GetBoolean(), d.ToString()));
    }

    [Fact]
    public async Task CallRemoteToolReconnectsAFailedMachineConnectionItselfInsteadOfHandingThePersonALink()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = "not-the-secret" });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        var connectionId = await FailedConnectionAsync(name, userId);

        // The administrator fixes the secret; the assistant calls a tool: Nexus gets a new token by the client_credentials
        // grant (nobody approves anything) and the call goes through with it.
        await fixture.Client.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/" + name, new { client_secret = ClientSecret });
        await using var client = await AssistantAsync(userId);
        var grants = fixture.Grants.Count;
        var called = await client.CallToolAsync("call_remote_tool", new Dictionary<string, object?> { ["service"] = name, ["tool"] = "echo_token" }, cancellationToken: Ct);
        var answer = McpFixture.Structured(called);
        Assert.True(called.IsError != true, answer.ToString());
        Assert.False(answer.TryGetProperty("connect_url", out var _), answer.ToString());
        // The server echoed the token it was sent, the connection's current one, which Nexus keeps from the assistant.
        Assert.Equal("[credential removed by Nexus]", answer.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(grants + 1, fixture.Grants.Count);
        Assert.Equal("active", (await ConnectionAsync(connectionId)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task CallRemoteToolSaysPlainlyWhenItCouldNotReconnectAMachineConnectionAndGivesNoLink()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = "not-the-secret" });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        var connectionId = await FailedConnectionAsync(name, userId);

        await using var client = await AssistantAsync(userId);
        var called = await client.CallToolAsync("call_remote_tool", new Dictionary<string, object?> { ["service"] = name, ["tool"] = "echo_token" }, cancellationToken: Ct);
        var answer = McpFixture.Structured(called);
        Assert.True(called.IsError);
        Assert.Equal(("error", "reconnect_failed"), (answer.GetProperty("status").GetString(), answer.GetProperty("error").GetString()));
        Assert.False(answer.TryGetProperty("connect_url", out var _), answer.ToString());
        Assert.Contains("invalid_client", answer.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("failed", (await ConnectionAsync(connectionId)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task CallRemoteToolReconnectsAMachineConnectionTheCallLeftNeedingAttentionAndCallsOnceMore()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        var connectionId = await ConnectAsync(name, ["reports:read"], workspace: userId);
        await using var client = await AssistantAsync(userId);

        // The server stops accepting the token, and the authorization server refuses the refresh the Bridge asks for on
        // its 401 (invalid_grant: attention_required); the next grant, the reconnect's, is issued.
        fixture.ForgetTokens();
        fixture.Outages.Enqueue(400);
        var grants = fixture.Grants.Count;
        var called = await client.CallToolAsync("call_remote_tool", new Dictionary<string, object?> { ["service"] = name, ["tool"] = "echo_token" }, cancellationToken: Ct);
        var answer = McpFixture.Structured(called);
        Assert.True(called.IsError != true, answer.ToString());
        Assert.Empty(fixture.Outages);
        // The server echoed the token it was sent, the connection's current one, which Nexus keeps from the assistant.
        Assert.Equal("[credential removed by Nexus]", answer.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(grants + 1, fixture.Grants.Count);
        Assert.Equal("active", (await ConnectionAsync(connectionId)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task CallApiReconnectsAFailedMachineConnectionItselfInsteadOfHandingThePersonALink()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = "not-the-secret" });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        var connectionId = await FailedConnectionAsync(name, userId);

        // As call_remote_tool does: the secret fixed, the assistant's call_api gets a new token by the client_credentials
        // grant (nobody approves anything) and the request goes through with it.
        await fixture.Client.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/" + name, new { client_secret = ClientSecret });
        await using var client = await AssistantAsync(userId);
        var grants = fixture.Grants.Count;
        var answer = await CallApiToolAsync(client, name);
        Assert.Equal(200, answer.GetProperty("status").GetInt32());
        // The server echoed the token it was sent, the connection's current one, which Nexus keeps from the assistant.
        Assert.Contains("[credential removed by Nexus]", answer.GetProperty("body").GetString(), StringComparison.Ordinal);
        Assert.Equal(grants + 1, fixture.Grants.Count);
        Assert.Equal("active", (await ConnectionAsync(connectionId)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task ListRemoteToolsOfAMachineServerReconnectsItsFailedConnectionItselfInsteadOfHandingThePersonALink()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = "not-the-secret" });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        var connectionId = await FailedConnectionAsync(name, userId);

        await fixture.Client.AdminJsonAsync(HttpMethod.Patch, "/v1/providers/" + name, new { client_secret = ClientSecret });
        await using var client = await AssistantAsync(userId);
        var grants = fixture.Grants.Count;
        var answer = await ListRemoteToolsAsync(client, name);
        var server = Assert.Single(answer.GetProperty("servers").EnumerateArray());
        Assert.Equal("echo_token", Assert.Single(server.GetProperty("tools").EnumerateArray()).GetProperty("name").GetString());
        Assert.Equal(grants + 1, fixture.Grants.Count);
        Assert.Equal("active", (await ConnectionAsync(connectionId)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task CallApiAndListRemoteToolsSayPlainlyWhenTheyCouldNotReconnectAMachineConnectionAndGiveNoLink()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = "not-the-secret" });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        var connectionId = await FailedConnectionAsync(name, userId);

        await using var client = await AssistantAsync(userId);
        foreach (var tool in new[] { "call_api", "list_remote_tools" })
        {
            var called = await client.CallToolAsync(tool, ToolArguments(tool, name), cancellationToken: Ct);
            var answer = McpFixture.Structured(called);
            Assert.True(called.IsError, answer.ToString());
            Assert.Equal(("error", "reconnect_failed"), (answer.GetProperty("status").GetString(), answer.GetProperty("error").GetString()));
            Assert.False(answer.TryGetProperty("connect_url", out var _), answer.ToString());
            Assert.Contains("invalid_client", answer.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal("failed", (await ConnectionAsync(connectionId)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task CallApiAndListRemoteToolsReconnectAMachineConnectionTheRequestLeftNeedingAttentionAndSendItOnceMore()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        var connectionId = await ConnectAsync(name, ["reports:read"], workspace: userId);
        await using var client = await AssistantAsync(userId);

        foreach (var tool in new[] { "call_api", "list_remote_tools" })
        {
            // The server stops accepting the token, and the authorization server refuses the refresh the Bridge asks for
            // on its 401 (invalid_grant: attention_required); the next grant, the reconnect's, is issued.
            fixture.ForgetTokens();
            fixture.Outages.Enqueue(400);
            var grants = fixture.Grants.Count;
            var called = await client.CallToolAsync(tool, ToolArguments(tool, name), cancellationToken: Ct);
            var answer = McpFixture.Structured(called);
            Assert.True(called.IsError != true, answer.ToString());
            Assert.False(answer.TryGetProperty("connect_url", out var _), answer.ToString());
            Assert.Empty(fixture.Outages);
            Assert.Equal(grants + 1, fixture.Grants.Count);
            Assert.Equal("active", (await ConnectionAsync(connectionId)).GetProperty("status").GetString());
        }
    }

    [Fact]
    public async Task ACallRemoteToolWhoseTokenTheServerStoppedAcceptingGetsOneNewTokenNotOnePerRequestOfItsSession()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        await ConnectAsync(name, ["reports:read"], workspace: userId);
        await using var client = await AssistantAsync(userId);

        // initialize is refused and the Bridge gets a new token; the notification and the call that follow in the same
        // short session carry the new one (they were sent with the row read before, each getting a grant of its own).
        fixture.ForgetTokens();
        var grants = fixture.Grants.Count;
        var called = await client.CallToolAsync("call_remote_tool", new Dictionary<string, object?> { ["service"] = name, ["tool"] = "echo_token" }, cancellationToken: Ct);
        Assert.True(called.IsError != true, McpFixture.Structured(called).ToString());
        Assert.Equal(grants + 1, fixture.Grants.Count);
    }

    [Fact]
    public async Task CallApiAsksForAnUncompressedAnswerAndWithholdsOneCompressedAnywaySinceItCannotBeCheckedForTheCredential()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        await ConnectAsync(name, ["reports:read"], workspace: userId);
        await using var client = await AssistantAsync(userId);
        var arguments = ToolArguments("call_api", name);
        arguments["headers"] = new Dictionary<string, string> { ["Accept-Encoding"] = "gzip" };
        try
        {
            fixture.CompressCalls = true;
            fixture.AcceptEncodings.Clear();
            var called = await client.CallToolAsync("call_api", arguments, cancellationToken: Ct);
            var answer = McpFixture.Structured(called);
            Assert.Equal(200, answer.GetProperty("status").GetInt32());
            Assert.Equal("identity", Assert.Single(fixture.AcceptEncodings));
            Assert.StartsWith("[body withheld by Nexus: compressed (gzip)", answer.GetProperty("body").GetString(), StringComparison.Ordinal);
            Assert.False(answer.TryGetProperty("body_base64", out var base64) && base64.ValueKind != JsonValueKind.Null, answer.ToString());
        }
        finally
        {
            fixture.CompressCalls = false;
        }
    }

    [Fact]
    public async Task ListingTheToolsStartsNoStepUpAndAServersTroubleIsItsOwnEntry()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        var connectionId = await ConnectAsync(name, ["reports:read"], workspace: userId);
        await using var client = await AssistantAsync(userId);
        var grants = fixture.Grants.Count;
        try
        {
            // The server wants more scope for tools/list: the listing says so for that server, and asks nobody for anything
            // (a step-up here would count one of the operation's rounds and make a link nobody is given).
            fixture.ListScope = "reports:write";
            foreach (var arguments in new[] { new Dictionary<string, object?>(), new Dictionary<string, object?> { ["service"] = name } })
            {
                var listed = await client.CallToolAsync("list_remote_tools", arguments, cancellationToken: Ct);
                var server = McpFixture.Structured(listed).GetProperty("servers").EnumerateArray().Single(s => s.GetProperty("service").GetString() == name);
                Assert.Contains("HTTP 403", server.GetProperty("error").GetString(), StringComparison.Ordinal);
            }

            Assert.Equal(grants, fixture.Grants.Count);
            var connection = await ConnectionAsync(connectionId);
            Assert.Equal(("active", "reports:read"), (connection.GetProperty("status").GetString(), string.Join(" ", Scopes(connection))));

            // An answer that is JSON but not MCP's is that server's error in the listing, not a failure of the tool.
            fixture.ListScope = null;
            foreach (var odd in new[] { "data: \"x\"\n\n", """{"jsonrpc":"2.0","id":2,"result":null}""", """{"jsonrpc":"2.0","id":2,"result":{"tools":"none"}}""",
                """{"jsonrpc":"2.0","id":2,"error":"x"}""", """{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":7}}""" })
            {
                fixture.ListBody = odd;
                var listed = await client.CallToolAsync("list_remote_tools", new Dictionary<string, object?>(), cancellationToken: Ct);
                var answer = McpFixture.Structured(listed);
                Assert.True(listed.IsError != true, answer.ToString());
                var server = answer.GetProperty("servers").EnumerateArray().Single(s => s.GetProperty("service").GetString() == name);
                Assert.False(server.TryGetProperty("tools", out var _), odd);
                Assert.StartsWith("The MCP server", server.GetProperty("error").GetString(), StringComparison.Ordinal);
            }
        }
        finally
        {
            fixture.ListScope = null;
            fixture.ListBody = null;
        }
    }

    [Fact]
    public async Task ListRemoteToolsGivesAServersNextCursorAndTakesItBackForTheNextPage()
    {
        var name = await RegisterAsync(new { client_id = ClientId, client_secret = ClientSecret });
        var (browser, userId) = await PersonAsync();
        using var _ = browser;
        await ConnectAsync(name, workspace: userId);
        await using var client = await AssistantAsync(userId);

        // Without a cursor: the first page and the server's cursor for the next, for one service or for all.
        foreach (var arguments in new[] { new Dictionary<string, object?>(), new Dictionary<string, object?> { ["service"] = name } })
        {
            var first = McpFixture.Structured(await client.CallToolAsync("list_remote_tools", arguments, cancellationToken: Ct))
                .GetProperty("servers").EnumerateArray().Single(s => s.GetProperty("service").GetString() == name);
            Assert.Equal("echo_token", Assert.Single(first.GetProperty("tools").EnumerateArray()).GetProperty("name").GetString());
            Assert.Equal(Fixture.SecondPage, first.GetProperty("next_cursor").GetString());
        }

        // With it: the next page, the last (no next_cursor).
        var second = Assert.Single(McpFixture.Structured(await client.CallToolAsync("list_remote_tools",
            new Dictionary<string, object?> { ["service"] = name, ["cursor"] = Fixture.SecondPage }, cancellationToken: Ct)).GetProperty("servers").EnumerateArray());
        Assert.Equal("write_report", Assert.Single(second.GetProperty("tools").EnumerateArray()).GetProperty("name").GetString());
        Assert.False(second.TryGetProperty("next_cursor", out var _), second.ToString());

        // A cursor the server does not know is its error in the listing; a cursor without its service is refused by Nexus.
        var unknown = Assert.Single(McpFixture.Structured(await client.CallToolAsync("list_remote_tools",
            new Dictionary<string, object?> { ["service"] = name, ["cursor"] = "page-9" }, cancellationToken: Ct)).GetProperty("servers").EnumerateArray());
        Assert.Contains("Invalid cursor", unknown.GetProperty("error").GetString(), StringComparison.Ordinal);
        var alone = await client.CallToolAsync("list_remote_tools", new Dictionary<string, object?> { ["cursor"] = Fixture.SecondPage }, cancellationToken: Ct);
        Assert.True(alone.IsError);
        Assert.Equal("invalid_arguments", McpFixture.Structured(alone).GetProperty("error").GetString());
    }

    /// <summary>The arguments of call_api (a tools/call of echo_token, as JSON-RPC to the server's URL) or list_remote_tools, for the service.</summary>
    private static Dictionary<string, object?> ToolArguments(string tool, string service) => tool == "call_api"
        ? new Dictionary<string, object?>
        {
            ["service"] = service,
            ["method"] = "POST",
            ["path"] = "/",
            ["body"] = new { jsonrpc = "2.0", id = 1, method = "tools/call", @params = new { name = "echo_token", arguments = new { } } },
        }
        : new Dictionary<string, object?> { ["service"] = service };

    private static async Task<JsonElement> CallApiToolAsync(McpClient client, string service)
    {
        var called = await client.CallToolAsync("call_api", ToolArguments("call_api", service), cancellationToken: Ct);
        var answer = McpFixture.Structured(called);
        Assert.True(called.IsError != true, answer.ToString());
        Assert.False(answer.TryGetProperty("connect_url", out var _), answer.ToString());
        return answer;
    }

    private static async Task<JsonElement> ListRemoteToolsAsync(McpClient client, string service)
    {
        var called = await client.CallToolAsync("list_remote_tools", ToolArguments("list_remote_tools", service), cancellationToken: Ct);
        var answer = McpFixture.Structured(called);
        Assert.True(called.IsError != true, answer.ToString());
        Assert.False(answer.TryGetProperty("connect_url", out var _), answer.ToString());
        return answer;
    }

    /// <summary>A connection of the person's workspace that failed at once: the machine client's secret is wrong.</summary>
    private async Task<string> FailedConnectionAsync(string provider, string workspace)
    {
        using var request = fixture.Client.Admin(HttpMethod.Post, "/v1/request-connection", new { workspace_id = workspace, provider_name = provider, return_url = ReturnUrl });
        using var refused = await fixture.Client.Http.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.BadGateway, refused.StatusCode);
        var connectionId = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("connection_id").GetString()!;
        Assert.Equal("failed", (await ConnectionAsync(connectionId)).GetProperty("status").GetString());
        return connectionId;
    }

    /// <summary>An assistant at Nexus's own /mcp with an access token for the person.</summary>
    private async Task<McpClient> AssistantAsync(string userId)
    {
        var (assistant, _) = await fixture.Client.CreateAppClientAsync(name: "an assistant " + Guid.NewGuid().ToString("N")[..6]);
        var token = fixture.Client.Services.GetRequiredService<AccessTokenIssuer>()
            .Issue(userId, assistant, string.Join(" ", McpResource.Scopes), 600, audience: fixture.Client.Issuer + McpResource.Path).Token;
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(fixture.Client.Issuer + McpResource.Path),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + token },
        });
        return await McpClient.CreateAsync(transport, cancellationToken: Ct);
    }

    private async Task<string> RegisterAsync(object credentials)
    {
        var name = "m2m-" + Guid.NewGuid().ToString("N")[..8];
        var body = JsonSerializer.SerializeToElement(credentials).EnumerateObject().ToDictionary(p => p.Name, p => (object)p.Value);
        body["name"] = name;
        body["auth_mode"] = "mcp_oauth2";
        body["mcp_url"] = fixture.Server.BaseUrl + "/mcp";
        body["grant_type"] = "client_credentials";
        await fixture.Client.AdminJsonAsync(HttpMethod.Post, "/v1/providers", body, HttpStatusCode.Created);
        return name;
    }

    /// <summary>request-connection answers with an active connection and no auth_url: nobody consents.</summary>
    private async Task<string> ConnectAsync(string provider, string[]? scopes = null, string workspace = "ws_m2m")
    {
        var answer = await fixture.Client.AdminJsonAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = workspace, provider_name = provider, return_url = ReturnUrl, scopes }, HttpStatusCode.Created);
        Assert.Equal("active", answer.GetProperty("status").GetString());
        AssertNoAuthUrl(answer);
        return answer.GetProperty("connection_id").GetString()!;
    }

    private static void AssertNoAuthUrl(JsonElement answer) =>
        Assert.False(answer.TryGetProperty("auth_url", out var authUrl) && authUrl.ValueKind != JsonValueKind.Null, answer.ToString());

    /// <summary>tools/call through the Bridge; the stand-in answers with the token it received.</summary>
    private async Task<string> CallToolAsync(string connectionId, string tool = "echo_token")
    {
        var (status, body) = await BridgeToolAsync(connectionId, tool);
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        return body.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString()!;
    }

    /// <summary>tools/call through the Bridge, with whatever it answers.</summary>
    private async Task<(HttpStatusCode Status, JsonElement Body)> BridgeToolAsync(string connectionId, string tool, string? padding = null)
    {
        object arguments = padding is null ? new { } : new { padding };
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{fixture.Client.BaseUrl}/v1/bridge/{connectionId}")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { jsonrpc = "2.0", id = 7, method = "tools/call", @params = new { name = tool, arguments } }),
                Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-API-Key", fixture.Client.ApiKey);
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        using var response = await fixture.Client.Http.SendAsync(request, Ct);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.Clone());
    }

    private async Task<JsonElement> ConnectionAsync(string connectionId) => await fixture.Client.AdminJsonAsync(HttpMethod.Get, "/v1/connections/" + connectionId);

    /// <summary>A person signed up in a browser; returns the browser and their user id (their workspace).</summary>
    private async Task<(Browser Browser, string UserId)> PersonAsync()
    {
        var email = $"m2m-{Guid.NewGuid():N}@example.com";
        var browser = new Browser(fixture.Client);
        await browser.SignUpAsync(email, "correct horse battery");
        using var scope = fixture.Client.Services.CreateScope();
        var user = await scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>().FindByEmailAsync(email);
        return (browser, user!.Id);
    }

    private static string[] Scopes(JsonElement connection) => [.. connection.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()!)];
}
