using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Providers;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>
/// A Nexus whose catalog holds one entry per provider quirk, each like its real counterpart in Providers/catalog.json
/// but pointing at a <see cref="QuirkyProvider"/>, and each registered once under its own name.
/// </summary>
public sealed class QuirksFixture : IAsyncLifetime
{
    public NexusTestServer Server { get; private set; } = null!;

    public TestDatabase Database { get; private set; } = null!;

    public QuirkyProvider Fake { get; private set; } = null!;

    public BrokerKit Kit { get; private set; } = null!;

    /// <summary>Test entry name → (how it differs from the default, the real catalog entry it mirrors).</summary>
    internal static readonly Dictionary<string, (Func<CatalogEntry, CatalogEntry> Quirk, string Real)> Entries = new()
    {
        ["ghlike"] = (e => e with { RevocationUrl = e.RevocationUrl!.Replace("/revoke", "/applications/{client_id}/grant", StringComparison.Ordinal), RevocationFormat = RevocationFormats.GitHubGrant }, "github"),
        ["stravalike"] = (e => e with { RevocationFormat = RevocationFormats.FormAccessToken }, "strava"),
        ["zendesklike"] = (e => e with { RevocationFormat = RevocationFormats.BearerDelete }, "zendesk"),
        ["vimeolike"] = (e => e with { RevocationFormat = RevocationFormats.BearerDelete, TokenEndpointAuth = ClientAuthMethods.Basic }, "vimeo"),
        ["fblike"] = (e => e with { RevocationFormat = RevocationFormats.BearerDeleteGrant }, "facebook"),
        ["squarelike"] = (e => e with { RevocationFormat = RevocationFormats.Square }, "square"),
        ["linelike"] = (e => e with { RevocationFormat = RevocationFormats.FormAccessTokenWithClient }, "line"),
        ["zoholike"] = (e => e with { RevocationFormat = RevocationFormats.QueryToken }, "zoho_crm"),
        ["tiktoklike"] = (e => e with { ClientIdParam = "client_key" }, "tiktok"),
        ["signlike"] = (e => e with { RefreshUrl = e.TokenUrl + "?refresh" }, "dropbox_sign"),
        ["yandexlike"] = (e => e with { ApiAuthScheme = "OAuth" }, "yandex"),
        ["etsylike"] = (e => e with { ApiRequestHeaders = new() { ["x-api-key"] = "{client_id}:{client_secret}" } }, "etsy"),
        ["twitchlike"] = (e => e with { ApiRequestHeaders = new() { ["Client-Id"] = "{client_id}" }, UserinfoUrl = e.TokenUrl!.Replace("/token", "/userinfo", StringComparison.Ordinal) }, "twitch"),
        ["googlelike"] = (e => e with { RevocationFormat = RevocationFormats.Rfc7009Grant }, "google"),
        ["plain"] = (e => e, "gitlab"),
    };

    public async ValueTask InitializeAsync()
    {
        Fake = await QuirkyProvider.StartAsync();
        Database = await TestDatabase.CreateAsync();
        var providers = Entries.ToDictionary(kv => kv.Key, kv => kv.Value.Quirk(new CatalogEntry
        {
            DisplayName = kv.Key,
            AuthMode = AuthModes.OAuth2,
            Categories = ["test"],
            DocsUrl = "https://example.test/docs",
            AuthorizationUrl = Fake.Url(kv.Key, "/authorize"),
            TokenUrl = Fake.Url(kv.Key, "/token"),
            RevocationUrl = Fake.Url(kv.Key, "/revoke"),
            ApiBaseUrl = Fake.Url(kv.Key, "/api"),
            DefaultScopes = [],
            Pkce = PkceModes.Unsupported,
            TokenEndpointAuth = ClientAuthMethods.Post,
            Refresh = new CatalogRefresh { Supported = true },
        }));
        var catalog = new ProviderCatalog(new CatalogDocument { Version = 1, Providers = providers });
        // Only the loopback http URLs differ from what a shipped entry may hold.
        Assert.DoesNotContain(catalog.Validate(), e => !e.Contains("https", StringComparison.Ordinal));
        Server = await NexusTestServer.StartAsync(Database, s => s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/",
            services: services => services.AddSingleton(catalog));
        Kit = new BrokerKit(Server, null!);
        foreach (var name in Entries.Keys)
        {
            await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new { name, catalog = name, client_id = Fake.ClientId, client_secret = Fake.ClientSecret },
                HttpStatusCode.Created);
        }
    }

    /// <summary>A connection through the whole handshake; returns its id and access token.</summary>
    public async Task<(string Id, string AccessToken)> ConnectAsync(string provider)
    {
        var (id, returned) = await Kit.ConnectAsync(provider, "ws_quirks");
        Assert.Equal("active", returned["status"]);
        var (status, body) = await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.OK, status);
        return (id, body.GetProperty("credentials").GetProperty("access_token").GetString()!);
    }

    /// <summary>DELETE /v1/connections/{id}; returns what reached the provider's revocation side (anything after the delete).</summary>
    public async Task<List<QuirkyProvider.Seen>> DeleteAsync(string provider, string id)
    {
        var before = Fake.For(provider).Count;
        Assert.Equal(HttpStatusCode.NoContent, (await Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}")).Status);
        return Fake.For(provider).Skip(before).ToList();
    }

    public async ValueTask DisposeAsync()
    {
        Kit.Dispose();
        await Server.DisposeAsync();
        await Database.DisposeAsync();
        await Fake.DisposeAsync();
    }
}

/// <summary>Issue 17: each provider-specific revocation style and request quirk of the catalog sends exactly what the provider documents.</summary>
public sealed class ProviderQuirksTests(QuirksFixture f) : IClassFixture<QuirksFixture>
{
    private string Basic => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{f.Fake.ClientId}:{f.Fake.ClientSecret}"));

    [Fact]
    public async Task AGitHubGrantIsDeletedWithBasicClientCredentialsAndTheAccessTokenInAJsonBody()
    {
        var (id, token) = await f.ConnectAsync("ghlike");
        var call = Assert.Single(await f.DeleteAsync("ghlike", id));
        Assert.Equal("DELETE", call.Method);
        Assert.Equal($"/ghlike/applications/{f.Fake.ClientId}/grant", call.Path);
        Assert.Equal(Basic, call.Authorization);
        Assert.StartsWith("application/json", call.ContentType);
        Assert.Equal(token, JsonDocument.Parse(call.Body).RootElement.GetProperty("access_token").GetString());
        Assert.Single(JsonDocument.Parse(call.Body).RootElement.EnumerateObject());
        Assert.Equal("application/vnd.github+json", call.Headers["accept"]);
    }

    [Fact]
    public async Task ACustomProviderTakesTheProviderSpecificStylesAndTheClientIdInItsRevocationUrl()
    {
        object Custom(string name, string format) => new
        {
            name,
            authorization_url = f.Fake.Url(name, "/authorize"),
            token_url = f.Fake.Url(name, "/token"),
            revocation_url = f.Fake.Url(name, "/applications/{client_id}/grant"),
            revocation_format = format,
            client_id = f.Fake.ClientId,
            client_secret = f.Fake.ClientSecret,
        };
        var refused = await f.Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", Custom("ghpigeon", "carrier_pigeon"), HttpStatusCode.BadRequest);
        Assert.Contains("github_grant", refused.GetProperty("errors").GetProperty("revocation_format")[0].GetString());
        await f.Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", Custom("ghcustom", RevocationFormats.GitHubGrant), HttpStatusCode.Created);

        var (id, token) = await f.ConnectAsync("ghcustom");
        var call = Assert.Single(await f.DeleteAsync("ghcustom", id));
        Assert.Equal(("DELETE", $"/ghcustom/applications/{f.Fake.ClientId}/grant", Basic), (call.Method, call.Path, call.Authorization));
        Assert.Equal(token, JsonDocument.Parse(call.Body).RootElement.GetProperty("access_token").GetString());
    }

    [Theory]
    [InlineData("ghlike", "skipped_ends_grant")]
    [InlineData("stravalike", "skipped_ends_grant")]
    [InlineData("squarelike", "skipped_ends_grant")]
    [InlineData("fblike", "skipped_ends_grant")]
    [InlineData("googlelike", "skipped_ends_grant")]
    [InlineData("zendesklike", "access_token:200")]
    public async Task AReconnectRevokesTheOldTokenOnlyWhereThatDoesNotEndTheGrantTheNewTokenBelongsTo(string provider, string outcome)
    {
        var (id, oldToken) = await f.ConnectAsync(provider);
        var (status, body) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect");
        Assert.Equal(HttpStatusCode.OK, status);
        var before = f.Fake.For(provider).Count;
        using var callback = await f.Kit.CallbackAsync(await f.Kit.ConsentAsync(body.GetProperty("auth_url").GetString()!));
        Assert.Equal(HttpStatusCode.Redirect, callback.StatusCode);

        var (_, token) = await f.Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.NotEqual(oldToken, token.GetProperty("credentials").GetProperty("access_token").GetString());
        var revocations = f.Fake.For(provider).Skip(before).Where(r => r.Path.Contains("/revoke", StringComparison.Ordinal) || r.Path.Contains("/grant", StringComparison.Ordinal)).ToList();
        // GitHub, Strava, Square, Facebook and Google end every token of the person for the app: the new one too.
        Assert.Equal(outcome == "skipped_ends_grant" ? 0 : 1, revocations.Count);
        var audit = await f.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}&event=reconnected");
        Assert.Equal(outcome, Assert.Single(audit.GetProperty("events").EnumerateArray()).GetProperty("detail").GetProperty("provider_revocation").GetString());
    }

    [Fact]
    public async Task StravaIsDeauthorizedWithAnAccessTokenFormFieldAndNothingElse()
    {
        var (id, token) = await f.ConnectAsync("stravalike");
        var call = Assert.Single(await f.DeleteAsync("stravalike", id));
        Assert.Equal(("POST", "/stravalike/revoke"), (call.Method, call.Path));
        Assert.Null(call.Authorization);
        Assert.Equal(new Dictionary<string, string> { ["access_token"] = token }, call.Form);
    }

    [Theory]
    [InlineData("zendesklike")]
    [InlineData("vimeolike")]
    [InlineData("fblike")]
    public async Task ABearerDeleteRevocationSendsTheTokenAsBearerCredentialsOfADeleteWithoutABody(string provider)
    {
        var (id, token) = await f.ConnectAsync(provider);
        var call = Assert.Single(await f.DeleteAsync(provider, id));
        Assert.Equal(("DELETE", $"/{provider}/revoke"), (call.Method, call.Path));
        Assert.Equal("Bearer " + token, call.Authorization);
        Assert.Equal("", call.Body);
    }

    [Fact]
    public async Task SquareRevocationAuthenticatesWithTheClientSchemeAndAJsonBodyOfClientIdAndAccessToken()
    {
        var (id, token) = await f.ConnectAsync("squarelike");
        var call = Assert.Single(await f.DeleteAsync("squarelike", id));
        Assert.Equal(("POST", "/squarelike/revoke"), (call.Method, call.Path));
        Assert.Equal("Client " + f.Fake.ClientSecret, call.Authorization);
        Assert.StartsWith("application/json", call.ContentType);
        var body = JsonSerializer.Deserialize<Dictionary<string, string>>(call.Body);
        Assert.Equal(new Dictionary<string, string> { ["client_id"] = f.Fake.ClientId, ["access_token"] = token }, body);
    }

    [Fact]
    public async Task LineRevocationPostsTheAccessTokenWithTheClientIdAndSecretAsFormFields()
    {
        var (id, token) = await f.ConnectAsync("linelike");
        var call = Assert.Single(await f.DeleteAsync("linelike", id));
        Assert.Equal(("POST", "/linelike/revoke"), (call.Method, call.Path));
        Assert.Null(call.Authorization);
        Assert.Equal(new Dictionary<string, string> { ["access_token"] = token, ["client_id"] = f.Fake.ClientId, ["client_secret"] = f.Fake.ClientSecret }, call.Form);
    }

    [Fact]
    public async Task ZohoRevocationPostsTheRefreshTokenInTheQueryWithoutABody()
    {
        var (id, _) = await f.ConnectAsync("zoholike");
        var issued = f.Fake.For("zoholike").Count(r => r.Path.EndsWith("/token", StringComparison.Ordinal));
        Assert.Equal(1, issued);
        var call = Assert.Single(await f.DeleteAsync("zoholike", id));
        Assert.Equal(("POST", "/zoholike/revoke"), (call.Method, call.Path));
        Assert.StartsWith("qrt-", call.Query["token"]);
        Assert.Equal("", call.Body);
    }

    [Fact]
    public async Task TheDefaultIsStillRfc7009WithTokenAndHintRefreshTokenFirst()
    {
        var (id, token) = await f.ConnectAsync("plain");
        var calls = await f.DeleteAsync("plain", id);
        Assert.Equal(["refresh_token", "access_token"], calls.Select(c => c.Form["token_type_hint"]).ToArray());
        Assert.Equal(token, calls[1].Form["token"]);
        Assert.All(calls, c => Assert.Equal(f.Fake.ClientSecret, c.Form["client_secret"]));
    }

    [Fact]
    public async Task GoogleIsRevokedOnceWithTheRefreshTokenSinceThatEndsTheWholeGrant()
    {
        var (id, _) = await f.ConnectAsync("googlelike");
        var call = Assert.Single(await f.DeleteAsync("googlelike", id));
        Assert.Equal(("POST", "/googlelike/revoke"), (call.Method, call.Path));
        Assert.Equal("refresh_token", call.Form["token_type_hint"]);
        Assert.StartsWith("qrt-", call.Form["token"]);
    }

    [Fact]
    public async Task TikTokGetsClientKeyInsteadOfClientIdOnTheAuthorizeTokenRefreshAndRevokeRequests()
    {
        var (id, _) = await f.ConnectAsync("tiktoklike");
        Assert.Equal(HttpStatusCode.OK, (await f.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}")).Status);
        await f.DeleteAsync("tiktoklike", id);

        var seen = f.Fake.For("tiktoklike");
        var authorize = Assert.Single(seen, r => r.Path.EndsWith("/authorize", StringComparison.Ordinal));
        Assert.Equal(f.Fake.ClientId, authorize.Query["client_key"]);
        Assert.False(authorize.Query.ContainsKey("client_id"));
        var bodies = seen.Where(r => r.Method == "POST").Select(r => r.Form).ToList();
        Assert.Equal(4, bodies.Count); // code exchange, refresh, revoke refresh token, revoke access token
        Assert.All(bodies, form => Assert.Equal(f.Fake.ClientId, form["client_key"]));
        Assert.All(bodies, form => Assert.False(form.ContainsKey("client_id")));
        Assert.Equal(["authorization_code", "refresh_token"], bodies.Take(2).Select(b => b["grant_type"]).ToArray());
    }

    [Fact]
    public async Task ARefreshGoesToTheRefreshUrlWhenTheCatalogNamesOne()
    {
        var (id, _) = await f.ConnectAsync("signlike");
        Assert.Equal(HttpStatusCode.OK, (await f.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}")).Status);
        var tokenCalls = f.Fake.For("signlike").Where(r => r.Path == "/signlike/token").ToList();
        Assert.Equal(2, tokenCalls.Count);
        Assert.Equal(("authorization_code", false), (tokenCalls[0].Form["grant_type"], tokenCalls[0].Query.ContainsKey("refresh")));
        Assert.Equal(("refresh_token", true), (tokenCalls[1].Form["grant_type"], tokenCalls[1].Query.ContainsKey("refresh")));
    }

    [Fact]
    public async Task TheBridgeSendsTheTokenWithTheProvidersOwnAuthorizationScheme()
    {
        var (id, token) = await f.ConnectAsync("yandexlike");
        Assert.Equal(HttpStatusCode.OK, (await f.Kit.SendAsync(HttpMethod.Get, $"/v1/bridge/{id}/info")).Status);
        var call = Assert.Single(f.Fake.For("yandexlike"), r => r.Path == "/yandexlike/api/info");
        Assert.Equal("OAuth " + token, call.Authorization);
    }

    [Fact]
    public async Task TheBridgeAddsTheCatalogsApiHeadersWithTheClientValuesInsteadOfTheCallersNexusKey()
    {
        var (id, token) = await f.ConnectAsync("etsylike");
        // The caller authenticates to Nexus with its own X-API-Key; Etsy's x-api-key (keystring:shared secret) replaces it upstream.
        Assert.Equal(HttpStatusCode.OK, (await f.Kit.SendAsync(HttpMethod.Get, $"/v1/bridge/{id}/users/me")).Status);
        var call = Assert.Single(f.Fake.For("etsylike"), r => r.Path == "/etsylike/api/users/me");
        Assert.Equal("Bearer " + token, call.Authorization);
        Assert.Equal($"{f.Fake.ClientId}:{f.Fake.ClientSecret}", call.Headers["x-api-key"]);
        Assert.DoesNotContain(f.Server.ApiKey, string.Join('\n', call.Headers.Values), StringComparison.Ordinal);

        // Like the token, the header's value and the client secret in it never come back to the caller.
        using var echoed = await f.Server.Http.SendAsync(f.Kit.Gateway(HttpMethod.Get, $"/v1/bridge/{id}/echo-headers"));
        Assert.Equal(HttpStatusCode.OK, echoed.StatusCode);
        var headers = string.Join('\n', echoed.Headers.Select(h => h.Key + ": " + string.Join(',', h.Value)));
        Assert.DoesNotContain(f.Fake.ClientSecret, headers, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheUserinfoCallAndTheBridgeSendTheClientIdHeaderTwitchAsksFor()
    {
        var (id, token) = await f.ConnectAsync("twitchlike");
        Assert.Equal(HttpStatusCode.OK, (await f.Kit.SendAsync(HttpMethod.Get, $"/v1/bridge/{id}/users")).Status);
        var seen = f.Fake.For("twitchlike");
        var userinfo = Assert.Single(seen, r => r.Path == "/twitchlike/userinfo");
        var bridge = Assert.Single(seen, r => r.Path == "/twitchlike/api/users");
        Assert.All(new[] { userinfo, bridge }, call =>
        {
            Assert.Equal("Bearer " + token, call.Authorization);
            Assert.Equal(f.Fake.ClientId, call.Headers["client-id"]);
        });
    }

    [Fact]
    public void EveryTestEntryMirrorsTheQuirkOfItsRealCatalogEntry()
    {
        var real = ProviderCatalog.LoadEmbedded();
        foreach (var (name, (quirk, realKey)) in QuirksFixture.Entries)
        {
            var entry = real.Find(realKey);
            Assert.NotNull(entry);
            var sample = quirk(new CatalogEntry { TokenUrl = "https://t.example/token", RevocationUrl = "https://t.example/revoke" });
            Assert.True(sample.RevocationFormat is null || sample.RevocationFormat == entry.RevocationFormat, $"{name}: {realKey} has {entry.RevocationFormat}");
            Assert.True(sample.ClientIdParam is null || sample.ClientIdParam == entry.ClientIdParam, name);
            Assert.True(sample.RefreshUrl is null || entry.RefreshUrl is not null, name);
            Assert.True(sample.ApiAuthScheme is null || sample.ApiAuthScheme == entry.ApiAuthScheme, name);
            Assert.True(sample.ApiRequestHeaders is null || sample.ApiRequestHeaders.SequenceEqual(entry.ApiRequestHeaders ?? []), name);
        }
    }
}
