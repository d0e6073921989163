using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Providers;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections.Refresh;

/// <summary>
/// Issue 15, Microsoft Entra ID with several resources: one consent's refresh token mints a token per resource
/// (GET /v1/token/{id}?resource=…, the Bridge's Nexus-Resource header), each cached and refreshed on its own, against
/// a local Entra-like authorization server whose refresh tokens are single-use (so a rotated one must be stored).
/// </summary>
public sealed class ResourceTokensTests(ResourceTokensTests.EntraFixture fixture) : IClassFixture<ResourceTokensTests.EntraFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TwoResourcesGetDistinctTokensFromOneConsentEachRefreshedOnItsOwn()
    {
        var (id, _) = await fixture.Kit.ConnectAsync(EntraFixture.Provider, workspace: "ws-" + Guid.NewGuid().ToString("N")[..8]);
        var main = await fixture.TokenAsync(id);

        var short1 = await fixture.TokenAsync(id, "short");
        var long1 = await fixture.TokenAsync(id, "long");
        Assert.StartsWith("at-short-", short1);
        Assert.StartsWith("at-long-", long1);
        Assert.NotEqual(short1, long1);

        // "long" lives an hour: served from storage, no new token request. "short" expires within the refresh margin,
        // so every read mints a new one, each time with the refresh token the previous answer rotated in.
        var mintsBefore = fixture.Entra.Mints("long");
        Assert.Equal(long1, await fixture.TokenAsync(id, "long"));
        Assert.Equal(mintsBefore, fixture.Entra.Mints("long"));
        var short2 = await fixture.TokenAsync(id, "short");
        var short3 = await fixture.TokenAsync(id, "short");
        Assert.Equal(3, new[] { short1, short2, short3 }.Distinct().Count());
        Assert.Equal(long1, await fixture.TokenAsync(id, "long"));

        // The connection's own token is untouched by the resources' mints.
        Assert.Equal(main, await fixture.TokenAsync(id));
        Assert.Equal(0, fixture.Entra.ReusedRefreshTokens);
    }

    [Fact]
    public async Task TheBridgeSendsTheResourcesTokenToTheResourcesBaseUrlAndKeepsTheHeaderToItself()
    {
        var (id, _) = await fixture.Kit.ConnectAsync(EntraFixture.Provider, workspace: "ws-" + Guid.NewGuid().ToString("N")[..8]);
        var token = await fixture.TokenAsync(id, "long");

        using var request = fixture.Kit.Gateway(HttpMethod.Get, $"/v1/bridge/{id}/items?top=1");
        request.Headers.Add("Nexus-Resource", "long");
        using var response = await fixture.Server.Http.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = fixture.Entra.ApiCalls.Last();
        Assert.Equal("/long-api/items", seen.Path);
        Assert.Equal("Bearer " + token, seen.Authorization);
        Assert.False(seen.HadResourceHeader);

        // Without the header: the connection's own token and the provider's base URL.
        using var plain = fixture.Kit.Gateway(HttpMethod.Get, $"/v1/bridge/{id}/items");
        using var plainResponse = await fixture.Server.Http.SendAsync(plain, Ct);
        Assert.Equal(HttpStatusCode.OK, plainResponse.StatusCode);
        Assert.Equal("/api/items", fixture.Entra.ApiCalls.Last().Path);
        Assert.Equal("Bearer " + await fixture.TokenAsync(id), fixture.Entra.ApiCalls.Last().Authorization);
    }

    [Fact]
    public async Task AnUnconfiguredResourceIsAClear400AndARefusedOneA409ThatLeavesTheConnectionActive()
    {
        var (id, _) = await fixture.Kit.ConnectAsync(EntraFixture.Provider, workspace: "ws-" + Guid.NewGuid().ToString("N")[..8]);

        var (status, body) = await fixture.Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}?resource=nope");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("unknown_resource", body.GetProperty("code").GetString());
        Assert.Contains("long, refused, short", body.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // Hostile names: NUL, a lone surrogate's bytes, a huge name, an empty one: a 400 problem (from the input guard
        // in front of every route, or from the endpoint), never more of the name than 64 characters.
        foreach (var hostile in new[] { "%00", "%ED%A0%80", new string('a', 1_000), "" })
        {
            (status, body) = await fixture.Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}?resource={hostile}");
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains(body.GetProperty("code").GetString(), new[] { "unknown_resource", "invalid_input" });
            Assert.True(body.GetRawText().Length < 1_000);
        }

        (status, body) = await fixture.Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}?resource=refused");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("resource_not_granted", body.GetProperty("code").GetString());
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());

        (status, body) = await fixture.Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("active", body.GetProperty("status").GetString());
        Assert.StartsWith("at-long-", await fixture.TokenAsync(id, "long"));
    }

    [Fact]
    public async Task ResourceTokensAreStoredEncryptedAndGoWithTheirConnection()
    {
        var (id, _) = await fixture.Kit.ConnectAsync(EntraFixture.Provider, workspace: "ws-" + Guid.NewGuid().ToString("N")[..8]);
        var token = await fixture.TokenAsync(id, "long");

        var stored = await fixture.StoredAsync(id);
        var ciphertext = Assert.Single(stored);
        Assert.DoesNotContain(token, System.Text.Encoding.UTF8.GetString(ciphertext), StringComparison.Ordinal);

        var (status, _) = await fixture.Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}");
        Assert.True(status is HttpStatusCode.OK or HttpStatusCode.NoContent, $"delete answered {(int)status}");
        Assert.Empty(await fixture.StoredAsync(id));
    }

    [Fact]
    public async Task AResourceTokensMintAndARefreshOfTheConnectionTakeTurnsSoTheSingleUseRefreshTokenIsPresentedOnce()
    {
        var (id, _) = await fixture.Kit.ConnectAsync(EntraFixture.Provider, workspace: "ws-" + Guid.NewGuid().ToString("N")[..8]);
        await fixture.TokenAsync(id, "short");
        var (reusedBefore, refreshesBefore) = (fixture.Entra.ReusedRefreshTokens, fixture.Entra.MainRefreshes);

        // A mint is at the authorization server with the refresh token; a refresh of the connection's own token starts.
        var gate = fixture.Entra.MintGate = new Gate();
        var mint = fixture.TokenAsync(id, "short");
        await gate.Arrived;
        var refresh = fixture.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");

        // The refresh waits for the mint (SQLite: this instance's lock of the connection; PostgreSQL: the row lock), or,
        // without that, reaches the authorization server with the same refresh token.
        await RefreshKit.EventuallyAsync(async () => fixture.Entra.MainRefreshes > refreshesBefore || await fixture.RefreshWaitsForTheLockAsync(id),
            "the refresh waiting for the mint, or at the authorization server");
        gate.Release();

        Assert.StartsWith("at-short-", await mint);
        var (status, body) = await refresh;
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.Equal(reusedBefore, fixture.Entra.ReusedRefreshTokens);
        Assert.StartsWith("at-main-", await fixture.TokenAsync(id));
        Assert.StartsWith("at-long-", await fixture.TokenAsync(id, "long"));
    }

    [Fact]
    public async Task AMintThatEndsAfterTheConnectionWasConsentedToAgainKeepsNothingOfTheOldGrant()
    {
        var (id, _) = await fixture.Kit.ConnectAsync(EntraFixture.Provider, workspace: "ws-" + Guid.NewGuid().ToString("N")[..8]);
        var gate = fixture.Entra.MintGate = new Gate();
        var mint = fixture.Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}?resource=long");
        await gate.Arrived;

        // The person consents again meanwhile: new tokens, the old grant's resource tokens gone. On SQLite a consent takes
        // no refresh lock and completes first, and the mint, made with the old grant's refresh token, ends after it; on
        // PostgreSQL the consent's write waits for the mint's row lock, and removes what the mint stored.
        var (reconnectStatus, reconnect) = await fixture.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { return_url = BrokerFixture.ReturnUrl });
        Assert.True(reconnectStatus == HttpStatusCode.OK, reconnect.ToString());
        var callback = fixture.Kit.CallbackAsync(await fixture.Kit.ConsentAsync(reconnect.GetProperty("auth_url").GetString()!));
        await RefreshKit.EventuallyAsync(async () => callback.IsCompleted || await fixture.RefreshWaitsForTheLockAsync(id), "the consent done, or waiting for the mint");
        gate.Release();
        using (var back = await callback)
        {
            Assert.Equal("active", BrokerKit.ReturnedQuery(back)["status"]);
        }

        var consented = fixture.Entra.LastConsentRefreshToken;
        var (status, body) = await mint;
        if (fixture.Server.Services.GetRequiredService<Nexus.Server.Data.NexusDatabase>().Engine != Nexus.Server.Data.DatabaseEngine.Postgres)
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
            Assert.Equal("connection_changed", body.GetProperty("error").GetString());
        }

        // The connection keeps the new consent's refresh token, and no resource token of the old grant.
        Assert.Empty(await fixture.StoredAsync(id));
        var store = fixture.Server.Services.GetRequiredService<Nexus.Server.Connections.ConnectionStore>();
        var row = (await store.FindAsync(id, Ct))!;
        Assert.Equal(consented, store.Decrypt(Nexus.Server.Connections.ConnectionStore.RefreshTokenColumn, id, row.RefreshToken!));
        Assert.StartsWith("at-long-", await fixture.TokenAsync(id, "long"));
    }

    /// <summary>A Nexus whose catalog holds one Entra-like entry with three resources, registered once.</summary>
    public sealed class EntraFixture : IAsyncLifetime
    {
        public const string Provider = "entra";

        public EntraLike Entra { get; private set; } = null!;

        public NexusTestServer Server { get; private set; } = null!;

        public TestDatabase Database { get; private set; } = null!;

        public BrokerKit Kit { get; private set; } = null!;

        /// <summary>The catalog with the Entra-like entry (another Nexus on the same database needs it too).</summary>
        internal ProviderCatalog Catalog { get; private set; } = null!;

        /// <summary>More settings and services for the Nexus (a fixture made by a test for itself).</summary>
        public Action<Dictionary<string, string?>>? Configure { get; init; }

        public Action<IServiceCollection>? Services { get; init; }

        public async ValueTask InitializeAsync()
        {
            Entra = await EntraLike.StartAsync();
            Database = await TestDatabase.CreateAsync();
            var resource = (string name, string? apiBase) => new ProviderResource { Description = name, Scopes = [EntraLike.ResourceScope(name), "offline_access"], ApiBaseUrl = apiBase };
            var catalog = Catalog = new ProviderCatalog(new CatalogDocument
            {
                Version = 1,
                Providers = new()
                {
                    ["entralike"] = new CatalogEntry
                    {
                        DisplayName = "Entra-like",
                        AuthMode = AuthModes.OAuth2,
                        Categories = ["test"],
                        DocsUrl = "https://example.test/docs",
                        AuthorizationUrl = Entra.Url("/authorize"),
                        TokenUrl = Entra.Url("/token"),
                        ApiBaseUrl = Entra.Url("/api"),
                        DefaultScopes = ["openid", "offline_access", "User.Read"],
                        Pkce = "supported",
                        TokenEndpointAuth = "client_secret_post",
                        Refresh = new CatalogRefresh { Supported = true },
                        Resources = new()
                        {
                            ["short"] = resource("short", null),
                            ["long"] = resource("long", Entra.Url("/long-api")),
                            ["refused"] = resource("refused", null),
                        },
                    },
                },
            });
            Server = await NexusTestServer.StartAsync(Database, s =>
            {
                s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/";
                s["Nexus:AuditTokenReadIntervalSeconds"] = "0";
                Configure?.Invoke(s);
            }, services: services =>
            {
                services.AddSingleton(catalog);
                Services?.Invoke(services);
            });
            Kit = new BrokerKit(Server, null!);
            await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new { name = Provider, catalog = "entralike", client_id = Entra.ClientId, client_secret = Entra.ClientSecret },
                HttpStatusCode.Created);
        }

        /// <summary>The ciphertexts stored for a connection's resources.</summary>
        public async Task<List<byte[]>> StoredAsync(string id)
        {
            await using var connection = await Server.Services.GetRequiredService<Nexus.Server.Data.NexusDatabase>().OpenAsync();
            return [.. await Dapper.SqlMapper.QueryAsync<byte[]>(connection, "SELECT access_token FROM connection_resource_tokens WHERE connection_id = @id", new { id })];
        }

        /// <summary>
        /// Whether a refresh of the connection waits for its lock: this instance's lock of it (SQLite), or a session
        /// waiting for a row lock (PostgreSQL).
        /// </summary>
        public async Task<bool> RefreshWaitsForTheLockAsync(string id)
        {
            var db = Server.Services.GetRequiredService<Nexus.Server.Data.NexusDatabase>();
            if (db.Engine != Nexus.Server.Data.DatabaseEngine.Postgres)
            {
                return Server.Services.GetRequiredService<RefreshStore>().Holders(id) > 1;
            }

            await using var connection = await db.OpenAsync();
            return await Dapper.SqlMapper.ExecuteScalarAsync<long>(connection,
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") > 0;
        }

        /// <summary>GET /v1/token/{id}[?resource=…]: the access token.</summary>
        public async Task<string> TokenAsync(string id, string? resource = null)
        {
            var (status, body) = await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}" + (resource is null ? "" : "?resource=" + resource));
            Assert.True(status == HttpStatusCode.OK, $"token read answered {(int)status}: {body}");
            if (resource is not null)
            {
                Assert.Equal(resource, body.GetProperty("resource").GetString());
            }

            return body.GetProperty("credentials").GetProperty("access_token").GetString()!;
        }

        public async ValueTask DisposeAsync()
        {
            await Server.DisposeAsync();
            await Database.DisposeAsync();
            await Entra.DisposeAsync();
        }
    }

    /// <summary>
    /// An Entra-like authorization server: a refresh token redeemed with scope "https://NAME.resource.test/.default"
    /// answers a token for that resource ("short" ones expire within the refresh margin, others in an hour;
    /// "refused" answers invalid_grant, as Entra does for a resource without consent), and every answer rotates the
    /// refresh token: the old one is dead at once. /api/… and /long-api/… record what they were sent.
    /// </summary>
    public sealed class EntraLike : IAsyncDisposable
    {
        private readonly WebApplication app;
        private readonly ConcurrentDictionary<string, bool> liveRefreshTokens = new();
        private readonly ConcurrentDictionary<string, int> mints = new();
        private int counter;
        private int reused;

        public sealed record ApiCall(string Path, string Authorization, bool HadResourceHeader);

        private EntraLike(WebApplication app, int port)
        {
            this.app = app;
            Port = port;
        }

        public int Port { get; }

        public string ClientId { get; } = "entra-client";

        public string ClientSecret { get; } = "entra-secret-" + Guid.NewGuid().ToString("N");

        public ConcurrentQueue<ApiCall> ApiCalls { get; } = new();

        public int ReusedRefreshTokens => reused;

        /// <summary>When set, the next token request for a resource waits here before it looks at its refresh token (then it is cleared).</summary>
        public Gate? MintGate { get => Volatile.Read(ref mintGate); set => Volatile.Write(ref mintGate, value); }

        private Gate? mintGate;

        /// <summary>Refresh requests for the connection's own token (no resource scope) that reached the token endpoint.</summary>
        public int MainRefreshes => mainRefreshes;

        private int mainRefreshes;

        /// <summary>The refresh token the latest authorization code was exchanged for (a consent's, a reconnect's).</summary>
        public string? LastConsentRefreshToken { get; private set; }

        public int Mints(string resource) => mints.GetValueOrDefault(resource);

        public string Url(string path) => $"http://127.0.0.1:{Port}{path}";

        public static string ResourceScope(string name) => $"https://{name}.resource.test/.default";

        public static async Task<EntraLike> StartAsync()
        {
            var port = LoopbackHost.FreePort();
            var (builder, _) = LoopbackHost.CreateBuilder(port);
            var app = builder.Build();
            var entra = new EntraLike(app, port);
            app.MapGet("/authorize", (HttpRequest request) => Results.Redirect(QueryHelpers.AddQueryString(request.Query["redirect_uri"].ToString(),
                new Dictionary<string, string?> { ["code"] = "code-" + Guid.NewGuid().ToString("N"), ["state"] = request.Query["state"] })));
            app.MapPost("/token", entra.TokenAsync);
            foreach (var prefix in new[] { "/api", "/long-api" })
            {
                app.Map(prefix + "/{**rest}", (HttpRequest request) =>
                {
                    entra.ApiCalls.Enqueue(new ApiCall(request.Path.Value!, request.Headers.Authorization.ToString(), request.Headers.ContainsKey("Nexus-Resource")));
                    return Results.Json(new { ok = true });
                });
            }

            await app.StartAsync();
            return entra;
        }

        private async Task<IResult> TokenAsync(HttpRequest request)
        {
            var form = (await request.ReadFormAsync()).ToDictionary(f => f.Key, f => f.Value.ToString());
            if (form.GetValueOrDefault("client_id") != ClientId || form.GetValueOrDefault("client_secret") != ClientSecret)
            {
                return Results.Json(new { error = "invalid_client" }, statusCode: 401);
            }

            var scopeAsked = form.GetValueOrDefault("scope") ?? "";
            if (form.GetValueOrDefault("grant_type") == "refresh_token")
            {
                if (scopeAsked.Contains("https://", StringComparison.Ordinal))
                {
                    if (Interlocked.Exchange(ref mintGate, null) is { } gate)
                    {
                        await gate.PassAsync(request.HttpContext.RequestAborted);
                    }
                }
                else
                {
                    Interlocked.Increment(ref mainRefreshes);
                }
            }

            var n = Interlocked.Increment(ref counter);
            string resource;
            if (form.GetValueOrDefault("grant_type") == "authorization_code")
            {
                resource = "main";
            }
            else if (form.GetValueOrDefault("refresh_token") is { } presented && liveRefreshTokens.ContainsKey(presented))
            {
                var scope = form.GetValueOrDefault("scope") ?? "";
                resource = scope.Split(' ').Select(s => s.StartsWith("https://", StringComparison.Ordinal) ? new Uri(s).Host.Split('.')[0] : null).FirstOrDefault(s => s is not null) ?? "main";
                if (resource == "refused")
                {
                    // A refusal for one resource leaves the refresh token as it was.
                    return Results.Json(new { error = "invalid_grant", error_description = "AADSTS65001: The user has not consented to this resource." }, statusCode: 400);
                }

                liveRefreshTokens.TryRemove(presented, out _);
            }
            else
            {
                Interlocked.Increment(ref reused);
                return Results.Json(new { error = "invalid_grant", error_description = "AADSTS70000: The refresh token was already used." }, statusCode: 400);
            }

            mints.AddOrUpdate(resource, 1, (_, c) => c + 1);
            var refresh = $"rt-{n}-{Guid.NewGuid():N}";
            liveRefreshTokens[refresh] = true;
            if (form.GetValueOrDefault("grant_type") == "authorization_code")
            {
                LastConsentRefreshToken = refresh;
            }

            return Results.Json(new Dictionary<string, object>
            {
                ["access_token"] = $"at-{resource}-{n}",
                ["token_type"] = "Bearer",
                ["expires_in"] = resource == "short" ? 30 : 3600,
                ["refresh_token"] = refresh,
                ["scope"] = form.GetValueOrDefault("scope") ?? "openid offline_access User.Read",
            });
        }

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
