using System.Net;
using Nexus.Server.Tests.AuthorizationServer;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections.Refresh;

/// <summary>
/// Refreshing against the strictest upstream there is at hand: a second Nexus, whose authorization server rotates
/// refresh tokens and revokes the whole grant when a rotated one is presented again (RFC 9700 §4.14.2). An OAuth
/// application is registered there, Nexus registers it as a custom provider, and a person gives consent in a
/// browser, exactly as with any real provider.
/// </summary>
public sealed class RefreshNexusUpstreamTests
{
    private sealed class Pair : IAsyncDisposable
    {
        public required TestDatabase UpstreamDb { get; init; }
        public required TestDatabase Db { get; init; }
        public required NexusTestServer Upstream { get; init; }
        public required NexusTestServer Nexus { get; init; }
        public required RefreshKit Kit { get; init; }
        public required Browser Person { get; init; }
        public required string ClientId { get; init; }
        public required string Provider { get; init; }

        /// <summary>Refresh tokens the upstream has seen used, and grants it has revoked.</summary>
        public async Task<(long Used, long RevokedGrants)> UpstreamStateAsync() => (
            Convert.ToInt64(await UpstreamDb.ScalarAsync("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NOT NULL"), System.Globalization.CultureInfo.InvariantCulture),
            Convert.ToInt64(await UpstreamDb.ScalarAsync("SELECT COUNT(*) FROM grants WHERE revoked_at IS NOT NULL"), System.Globalization.CultureInfo.InvariantCulture));

        /// <summary>request-connection, consent at the upstream in the browser, Nexus's callback.</summary>
        public async Task<string> ConnectAsync(string workspace = "ws_upstream")
        {
            var requested = await Kit.ExpectAsync(HttpMethod.Post, "/v1/request-connection",
                new { workspace_id = workspace, provider_name = Provider, return_url = BrokerFixture.ReturnUrl }, HttpStatusCode.Created);
            var callback = await OAuthAppHelpers.AuthorizeAsync(Person, requested.GetProperty("auth_url").GetString()!);
            Assert.StartsWith(Nexus.Issuer + "/auth/callback?", callback.ToString(), StringComparison.Ordinal);
            using var plain = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false });
            using var returned = await plain.GetAsync(callback);
            Assert.Equal(HttpStatusCode.Redirect, returned.StatusCode);
            Assert.Contains("status=active", returned.Headers.Location!.ToString(), StringComparison.Ordinal);
            return requested.GetProperty("connection_id").GetString()!;
        }

        public async ValueTask DisposeAsync()
        {
            Kit.Dispose();
            Person.Dispose();
            await Nexus.DisposeAsync();
            await Upstream.DisposeAsync();
            await Db.DisposeAsync();
            await UpstreamDb.DisposeAsync();
        }
    }

    private static async Task<Pair> StartAsync(bool background = false)
    {
        var upstreamDb = await TestDatabase.CreateAsync();
        var db = await TestDatabase.CreateAsync();
        var upstream = await NexusTestServer.StartAsync(upstreamDb);
        var nexus = await NexusTestServer.StartAsync(db, s =>
        {
            s["ALLOWED_RETURN_URLS"] = BrokerFixture.ReturnUrl;
            s["Nexus:Refresh:BackgroundEnabled"] = background ? "true" : "false";
            s["Nexus:Refresh:IntervalSeconds"] = "1";
        });
        var (clientId, secret) = await OAuthAppHelpers.RegisterApplicationAsync(upstream, redirectUris: [nexus.Issuer + "/auth/callback"]);
        var kit = RefreshKit.For(nexus);
        const string provider = "nexus-upstream";
        await kit.ExpectAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = provider,
            authorization_url = upstream.BaseUrl + "/oauth2/authorize",
            token_url = upstream.BaseUrl + "/oauth2/token",
            revocation_url = upstream.BaseUrl + "/oauth2/revoke",
            client_id = clientId,
            client_secret = secret,
            scopes = new[] { "openid", "offline_access" },
            pkce = true,
            token_endpoint_auth = "client_secret_basic",
        }, HttpStatusCode.Created);
        var person = await OAuthAppHelpers.SignedInBrowserAsync(upstream);
        return new Pair { UpstreamDb = upstreamDb, Db = db, Upstream = upstream, Nexus = nexus, Kit = kit, Person = person, ClientId = clientId, Provider = provider };
    }

    [Fact]
    public async Task TwoHundredConcurrentReadsOfAnExpiredTokenCauseExactlyOneRefreshAndAllGetTheNewToken()
    {
        await using var pair = await StartAsync();
        var id = await pair.ConnectAsync();
        var first = await pair.Kit.TokenAsync(id);
        Assert.Equal(HttpStatusCode.OK, await OAuthAppHelpers.MeStatusAsync(pair.Upstream, first));
        pair.Nexus.Time.Advance(TimeSpan.FromSeconds(3601));

        using var gate = new SemaphoreSlim(0);
        var readers = Enumerable.Range(0, 200).Select(async _ =>
        {
            await gate.WaitAsync();
            return await pair.Kit.ReadAsync(id);
        }).ToList();
        gate.Release(200);
        var reads = await Task.WhenAll(readers);

        Assert.All(reads, r => Assert.True(r.Status == HttpStatusCode.OK, $"{(int)r.Status}: {r.Body}"));
        var token = Assert.Single(reads.Select(r => r.AccessToken).Distinct());
        Assert.NotEqual(first, token);
        Assert.Equal(HttpStatusCode.OK, await OAuthAppHelpers.MeStatusAsync(pair.Upstream, token!));
        // Exactly one refresh token was used, and the upstream saw no reuse (which would have revoked the grant).
        Assert.Equal((1L, 0L), await pair.UpstreamStateAsync());
    }

    [Fact]
    public async Task RefreshesOnReadByHandAndInTheBackgroundFormOneChainTheUpstreamNeverRevokes()
    {
        await using var pair = await StartAsync(background: true);
        var id = await pair.ConnectAsync();
        var tokens = new List<string> { await pair.Kit.TokenAsync(id) };

        for (var round = 0; round < 3; round++)
        {
            // Expired: the read and the background refresher race for it; exactly one of them refreshes.
            pair.Nexus.Time.Advance(TimeSpan.FromSeconds(3601));
            tokens.Add(await pair.Kit.TokenAsync(id));
            // And once more by hand.
            await pair.Kit.ExpectAsync(HttpMethod.Post, $"/v1/refresh/{id}", null, HttpStatusCode.OK);
            tokens.Add(await pair.Kit.TokenAsync(id));
        }

        Assert.Equal(7, tokens.Distinct().Count());
        Assert.Equal((6L, 0L), await pair.UpstreamStateAsync());
        Assert.Equal(HttpStatusCode.OK, await OAuthAppHelpers.MeStatusAsync(pair.Upstream, tokens[^1]));
    }

    [Fact]
    public async Task ConsentWithdrawnAtTheUpstreamMakesTheConnectionAttentionRequired()
    {
        await using var pair = await StartAsync();
        var id = await pair.ConnectAsync();
        await pair.Kit.TokenAsync(id);

        await pair.Person.NavigateAsync($"/account/applications/{pair.ClientId}/withdraw"); // the confirmation page
        await pair.Person.SubmitAsync($"/account/applications/{pair.ClientId}/withdraw");
        pair.Nexus.Time.Advance(TimeSpan.FromSeconds(3601));

        var (status, _, problem) = await pair.Kit.ReadAsync(id);
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("attention_required", problem.GetProperty("status").GetString());
        Assert.Equal("invalid_grant", problem.GetProperty("error").GetString());
        var connection = await pair.Kit.ConnectionAsync(id);
        Assert.Equal("This grant has been revoked.", connection.GetProperty("error_description").GetString());
    }

    [Fact]
    public async Task DisconnectingRevokesTheGrantAtTheUpstream()
    {
        await using var pair = await StartAsync();
        var id = await pair.ConnectAsync();
        var token = await pair.Kit.TokenAsync(id);
        Assert.Equal(HttpStatusCode.OK, await OAuthAppHelpers.MeStatusAsync(pair.Upstream, token));

        await pair.Kit.ExpectAsync(HttpMethod.Delete, $"/v1/connections/{id}", null, HttpStatusCode.NoContent);

        // RFC 7009: the refresh token ended the grant, and with it the access token.
        Assert.Equal(HttpStatusCode.Unauthorized, await OAuthAppHelpers.MeStatusAsync(pair.Upstream, token));
        Assert.Equal(1L, (await pair.UpstreamStateAsync()).RevokedGrants);
        var revoked = await pair.Nexus.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}&event=revoked");
        Assert.Equal("refresh_token:200 access_token:200",
            Assert.Single(revoked.GetProperty("events").EnumerateArray()).GetProperty("detail").GetProperty("provider_revocation").GetString());
    }
}
