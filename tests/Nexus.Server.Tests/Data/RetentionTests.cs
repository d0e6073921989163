using System.Net;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Data;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Data;

/// <summary>
/// Data/Retention: what nothing can use any more is removed (expired codes and tokens, spent grants), the delivery log
/// and the audit log are kept as long as set, and everything still usable is left alone.
/// </summary>
public sealed class RetentionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<long> CountAsync(NexusTestServer server, string table)
    {
        await using var connection = await server.Services.GetRequiredService<NexusDatabase>().OpenAsync(Ct);
        return await connection.ExecuteScalarAsync<long>($"SELECT COUNT(*) FROM {table}");
    }

    private static async Task<Dictionary<string, long>> CountsAsync(NexusTestServer server, params string[] tables)
    {
        var counts = new Dictionary<string, long>();
        foreach (var table in tables)
        {
            counts[table] = await CountAsync(server, table);
        }

        return counts;
    }

    private static Task<IReadOnlyList<(string Rule, int Removed)>> PurgeAsync(NexusTestServer server) =>
        server.Services.GetRequiredService<Retention>().RunOnceAsync(Ct);

    [Fact]
    public async Task ExpiredCodesTokensAndSpentGrantsAreRemovedAndWhatCanStillBeUsedIsKept()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:RefreshTokenLifetimeDays"] = "1");
        var (clientId, secret) = await RegisterApplicationAsync(server);

        // A grant that will be spent: its access token revoked (RFC 7009), its refresh token rotated once.
        var (old, oldBrowser) = await CompleteFlowAsync(server, clientId, secret);
        oldBrowser.Dispose();
        await RevokeAsync(server, clientId, secret!, old.GetProperty("access_token").GetString()!);
        var (rotatedStatus, rotated) = await TokenAsync(server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", old.GetProperty("refresh_token").GetString()!));
        Assert.Equal(HttpStatusCode.OK, rotatedStatus);

        // Past the refresh token's day, the longest access token's day and the day of margin, a new grant is made.
        server.Time.Advance(TimeSpan.FromDays(3) + TimeSpan.FromMinutes(1));
        var (fresh, freshBrowser) = await CompleteFlowAsync(server, clientId, secret);
        freshBrowser.Dispose();
        string[] tables = ["authorization_codes", "refresh_tokens", "revoked_access_tokens", "grants"];
        Assert.Equal(new Dictionary<string, long> { ["authorization_codes"] = 2, ["refresh_tokens"] = 3, ["revoked_access_tokens"] = 1, ["grants"] = 2 },
            await CountsAsync(server, tables));

        var removed = await PurgeAsync(server);
        Assert.Equal(5, removed.Sum(r => r.Removed));
        Assert.Equal(new Dictionary<string, long> { ["authorization_codes"] = 1, ["refresh_tokens"] = 1, ["revoked_access_tokens"] = 0, ["grants"] = 1 },
            await CountsAsync(server, tables));

        // The new grant works on; the old refresh token is an unknown one (invalid_grant), not an error; a second pass
        // finds nothing.
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(server, fresh.GetProperty("access_token").GetString()!));
        var (refreshed, _) = await TokenAsync(server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", fresh.GetProperty("refresh_token").GetString()!));
        Assert.Equal(HttpStatusCode.OK, refreshed);
        var (oldStatus, oldBody) = await TokenAsync(server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", rotated.GetProperty("refresh_token").GetString()!));
        Assert.Equal((HttpStatusCode.BadRequest, "invalid_grant"), (oldStatus, oldBody.GetProperty("error").GetString()));
        Assert.Equal(0, (await PurgeAsync(server)).Sum(r => r.Removed));
    }

    [Fact]
    public async Task ARevokedGrantIsKeptWhileAnAccessTokenOfItCouldStillBePresented()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:RefreshTokenLifetimeDays"] = "1");
        var (clientId, secret) = await RegisterApplicationAsync(server);
        var (tokens, browser) = await CompleteFlowAsync(server, clientId, secret);
        browser.Dispose();
        // Revoking the refresh token revokes the grant (RFC 7009 §2.1).
        await RevokeAsync(server, clientId, secret!, tokens.GetProperty("refresh_token").GetString()!);

        // A day and a half later the refresh token has expired, but an access token of the grant could still be within
        // the longest lifetime plus the day of margin: the grant, revoked, stays, and its token stays refused.
        server.Time.Advance(TimeSpan.FromHours(36));
        await PurgeAsync(server);
        Assert.Equal(1, await CountAsync(server, "grants"));
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(server, tokens.GetProperty("access_token").GetString()!));
    }

    [Fact]
    public async Task FinishedWebhookDeliveriesGoAfterTheirDaysAndAuditEventsOnlyWhenAnAgeIsSet()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:Retention:AuditDays"] = "40");
        var webhook = (await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/webhooks", new { url = receiver.Url }, HttpStatusCode.Created)).GetProperty("id").GetString()!;
        using (var test = server.Admin(HttpMethod.Post, $"/v1/admin/webhooks/{webhook}/test"))
        using (var accepted = await server.Http.SendAsync(test, Ct))
        {
            Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        }

        await receiver.WaitForAsync(d => d.Type == "webhook.test");
        await RefreshKit.EventuallyAsync(async () => (await server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/webhooks/{webhook}/deliveries"))
            .GetProperty("deliveries").EnumerateArray().All(d => d.GetProperty("status").GetString() == "delivered"), "the delivery logged as delivered");
        await server.Services.GetRequiredService<Nexus.Server.Audit.AuditLog>().RecordAsync(Nexus.Server.Audit.AuditEvents.Requested, "a test", "ws_retention", null, null, Ct);
        var audited = await CountAsync(server, "audit_events");
        Assert.Equal(1, audited);

        // Within the 30 days of the default, and the 40 set for the audit log: nothing goes.
        server.Time.Advance(TimeSpan.FromDays(29));
        await PurgeAsync(server);
        Assert.Equal((1L, audited), (await CountAsync(server, "webhook_deliveries"), await CountAsync(server, "audit_events")));

        server.Time.Advance(TimeSpan.FromDays(2));
        await PurgeAsync(server);
        Assert.Equal((0L, audited), (await CountAsync(server, "webhook_deliveries"), await CountAsync(server, "audit_events")));

        server.Time.Advance(TimeSpan.FromDays(10));
        await PurgeAsync(server);
        Assert.Equal(0, await CountAsync(server, "audit_events"));
    }

    [Fact]
    public async Task ConnectionsNobodyCompletedGoDaysAfterTheirLastChangeAndEveryOtherConnectionStays()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/");
        var (request, read) = await ConnectionsAsync(server);

        // One never completed and never looked at (its row still says pending), one completed (active), and one read
        // only on day 29, which is when it failed ("expired"): its last change.
        var (pending, late, active) = (await request(), await request(), await request());
        await server.AdminJsonAsync(HttpMethod.Post, $"/v1/connections/{active}/credentials", new { api_key = "sk-kept" });
        server.Time.Advance(TimeSpan.FromSeconds(server.Services.GetRequiredService<Nexus.Server.Hosting.NexusOptions>().PendingConnectionSeconds + 1));
        server.Time.Advance(TimeSpan.FromDays(29));
        Assert.Equal(0, (await PurgeAsync(server)).Single(r => r.Rule == "abandoned_connections").Removed);
        Assert.Equal("failed", (await server.AdminJsonAsync(HttpMethod.Get, $"/v1/connections/{late}")).GetProperty("status").GetString());

        // 30 days (the default) after its window closed, the untouched one goes; the one that failed on day 29 stays.
        server.Time.Advance(TimeSpan.FromDays(2));
        Assert.Equal(1, (await PurgeAsync(server)).Single(r => r.Rule == "abandoned_connections").Removed);
        Assert.Equal((HttpStatusCode.NotFound, HttpStatusCode.OK, HttpStatusCode.OK), (await read(pending), await read(late), await read(active)));

        server.Time.Advance(TimeSpan.FromDays(29));
        Assert.Equal(1, (await PurgeAsync(server)).Single(r => r.Rule == "abandoned_connections").Removed);
        Assert.Equal((HttpStatusCode.NotFound, HttpStatusCode.OK), (await read(late), await read(active)));
        Assert.Equal("sk-kept", (await server.AdminJsonAsync(HttpMethod.Get, $"/v1/token/{active}")).GetProperty("credentials").GetProperty("api_key").GetString());
    }

    [Fact]
    public async Task AFailedConnectionOfAMachineToMachineServerIsKeptForItsReconnectAndItsPendingOnesGo()
    {
        // call_remote_tool reconnects a failed machine-to-machine connection itself, under its id: it is not abandoned.
        // (The rule asks the provider registry which providers those are; here the api_key provider stands in for one.)
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/");
        var (request, read) = await ConnectionsAsync(server);
        var (failed, pending) = (await request(), await request());
        server.Time.Advance(TimeSpan.FromSeconds(server.Services.GetRequiredService<Nexus.Server.Hosting.NexusOptions>().PendingConnectionSeconds + 1));
        Assert.Equal("failed", (await server.AdminJsonAsync(HttpMethod.Get, $"/v1/connections/{failed}")).GetProperty("status").GetString());
        server.Time.Advance(TimeSpan.FromDays(31));

        var store = server.Services.GetRequiredService<Nexus.Server.Connections.ConnectionStore>();
        Assert.Equal(1, await store.DeleteAbandonedAsync((server.Time.GetUtcNow() - TimeSpan.FromDays(30)).ToUnixTimeMilliseconds(), ["keyed"], Ct));
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.NotFound), (await read(failed), await read(pending)));
    }

    [Fact]
    public async Task ConnectionsNobodyCompletedAreKeptWhenTheirDaysAreZero()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s =>
        {
            s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/";
            s["Nexus:Retention:AbandonedConnectionDays"] = "0";
        });
        var (request, read) = await ConnectionsAsync(server);
        var pending = await request();

        server.Time.Advance(TimeSpan.FromDays(400));
        Assert.Equal(0, (await PurgeAsync(server)).Single(r => r.Rule == "abandoned_connections").Removed);
        Assert.Equal(HttpStatusCode.OK, await read(pending));
    }

    /// <summary>An api_key provider on the server: how to request a connection to it, and how a read of one answers.</summary>
    private static async Task<(Func<Task<string>> Request, Func<string, Task<HttpStatusCode>> Read)> ConnectionsAsync(NexusTestServer server)
    {
        var provider = (await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name = "keyed", auth_mode = "api_key", api_base_url = "https://api.example.test", api_key = new { @in = "header", name = "x-api-key" } },
            HttpStatusCode.Created)).GetProperty("name").GetString()!;
        return (async () => (await server.AdminJsonAsync(HttpMethod.Post, "/v1/request-connection",
                new { workspace_id = "ws_retention", provider_name = provider, return_url = "https://app.example.test/oauth/return" }, HttpStatusCode.Created))
                .GetProperty("connection_id").GetString()!,
            async id =>
            {
                using var request = server.Admin(HttpMethod.Get, $"/v1/connections/{id}");
                using var response = await server.Http.SendAsync(request, Ct);
                return response.StatusCode;
            });
    }
}
