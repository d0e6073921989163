using System.Net;

namespace Nexus.Server.Tests.Connections;

/// <summary>Issue 17: a connection's health in the API, the recovered webhook, list filters and cursors, and reconnect keeping the id.</summary>
public sealed class ConnectionHealthTests(TenantFixture f) : IClassFixture<TenantFixture>
{
    [Fact]
    public async Task HealthFieldsFollowAFailingAndRecoveringProviderAndTheRecoveredWebhookFiresOnce()
    {
        var id = await f.ConnectAsync(TenantFixture.Shop, new { shop = "health" });
        var healthy = await f.ConnectionAsync(id);
        Assert.Equal(0, healthy.GetProperty("consecutive_failures").GetInt64());
        Assert.False(healthy.TryGetProperty("last_error", out _));
        Assert.Equal(["read", "write"], healthy.GetProperty("granted_scopes").EnumerateArray().Select(s => s.GetString()));

        f.Fake.FailRefresh = true;
        try
        {
            for (var i = 1; i <= 2; i++)
            {
                var (failed, _) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
                Assert.Equal(HttpStatusCode.ServiceUnavailable, failed);
                var failing = await f.ConnectionAsync(id);
                Assert.Equal("active", failing.GetProperty("status").GetString());
                Assert.Equal(i, failing.GetProperty("consecutive_failures").GetInt64());
                Assert.Equal("temporarily_unavailable", failing.GetProperty("last_error").GetProperty("code").GetString());
                Assert.Equal("Down for maintenance", failing.GetProperty("last_error").GetProperty("message").GetString());
                Assert.True(failing.GetProperty("next_refresh_at").GetInt64() > 0);
            }
        }
        finally
        {
            f.Fake.FailRefresh = false;
        }

        var (status, answer) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
        Assert.Equal(HttpStatusCode.OK, status);
        // The refresh's own answer and a later read say the same: recovered.
        foreach (var recovered in new[] { answer, await f.ConnectionAsync(id) })
        {
            Assert.Equal(0, recovered.GetProperty("consecutive_failures").GetInt64());
            Assert.False(recovered.TryGetProperty("last_error", out _));
            Assert.True(recovered.GetProperty("last_refreshed_at").GetInt64() > 0);
        }

        // Another success is no recovery; the delete's webhook comes after both, so waiting for it waits for them.
        Assert.Equal(HttpStatusCode.OK, (await f.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}")).Status);
        var hook = await f.Hooks.WaitForAsync(d => d.Type == "connection.recovered" && d.Data.GetProperty("connection_id").GetString() == id);
        Assert.Equal(2, hook.Data.GetProperty("failures").GetInt64());
        Assert.Equal(HttpStatusCode.NoContent, (await f.Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}")).Status);
        await f.Hooks.WaitForAsync(d => d.Type == "connection.revoked" && d.Data.GetProperty("connection_id").GetString() == id);
        Assert.Single(f.Hooks.Received, d => d.Type == "connection.recovered" && d.Data.GetProperty("connection_id").GetString() == id);
    }

    [Fact]
    public async Task ConnectionsCreatedInTheSameMillisecondArePagedEachOnceAndAPageStartsAtAnIndexRange()
    {
        const string workspace = "ws_ties";
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(await f.ConnectAsync(TenantFixture.Shop, new { shop = "tie" + i }, workspace));
        }

        await f.Database.ScalarAsync("UPDATE connections SET created_at = 1700000000000 WHERE workspace_id = 'ws_ties'");
        var seen = new List<string>();
        string? cursor = null;
        do
        {
            var (status, page) = await f.Kit.SendAsync(HttpMethod.Get,
                $"/v1/connections?workspace_id={workspace}&limit=2" + (cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor)));
            Assert.Equal(HttpStatusCode.OK, status);
            seen.AddRange(page.GetProperty("connections").EnumerateArray().Select(c => c.GetProperty("connection_id").GetString()!));
            cursor = page.TryGetProperty("next_cursor", out var next) ? next.GetString() : null;
        }
        while (cursor is not null);

        Assert.Equal(ids.OrderByDescending(id => id, StringComparer.Ordinal), seen);

        // Issue 20 (scale): the page after a cursor is an index range, not a walk over every newer row (bench/scale.sh
        // shows the PostgreSQL plan over a million rows).
        if (f.Database.Engine == "sqlite")
        {
            var (sql, parameters) = Nexus.Server.Connections.ConnectionStore.ListQuery([workspace], null, null, (1700000000000, ids[2]), 3)!.Value;
            await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={f.Database.SqliteFile};Pooling=False");
            var plan = string.Join("\n", (await Dapper.SqlMapper.QueryAsync<PlanRow>(connection, "EXPLAIN QUERY PLAN " + sql, parameters)).Select(r => r.Detail));
            Assert.Contains("ix_connections_workspace_page (workspace_id=? AND created_at<?)", plan, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task TheListFiltersByStatusAndProviderAndPagesWithAnOpaqueCursor()
    {
        const string workspace = "ws_list";
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add(await f.ConnectAsync(TenantFixture.Shop, new { shop = "list" + i }, workspace));
        }

        var (_, pending) = await f.RequestAsync(TenantFixture.Mc, null, workspace);

        var seen = new List<string>();
        string? cursor = null;
        do
        {
            var (status, page) = await f.Kit.SendAsync(HttpMethod.Get,
                $"/v1/connections?workspace_id={workspace}&provider=shop&status=active&limit=2" + (cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor)));
            Assert.Equal(HttpStatusCode.OK, status);
            seen.AddRange(page.GetProperty("connections").EnumerateArray().Select(c => c.GetProperty("connection_id").GetString()!));
            cursor = page.TryGetProperty("next_cursor", out var next) ? next.GetString() : null;
        }
        while (cursor is not null);

        Assert.Equal(ids.AsEnumerable().Reverse(), seen);
        var (_, mc) = await f.Kit.SendAsync(HttpMethod.Get, $"/v1/connections?workspace_id={workspace}&provider=mc");
        Assert.Equal(pending.GetProperty("connection_id").GetString(), Assert.Single(mc.GetProperty("connections").EnumerateArray()).GetProperty("connection_id").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, (await f.Kit.SendAsync(HttpMethod.Get, "/v1/connections?cursor=not-a-cursor")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await f.Kit.SendAsync(HttpMethod.Get, "/v1/connections?provider=Not%20A%20Name")).Status);
    }

    [Fact]
    public async Task AReconnectKeepsTheIdAndTheOldTokenWorksUntilTheNewConsentCompletes()
    {
        var id = await f.ConnectAsync(TenantFixture.Shop, new { shop = "again" });
        var oldToken = await f.TokenAsync(id);

        var (status, body) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { scopes = new[] { "read", "write" } });
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(id, body.GetProperty("connection_id").GetString());
        var authUrl = body.GetProperty("auth_url").GetString()!;
        Assert.StartsWith(f.Fake.Url("again.localhost", "/authorize?"), authUrl);

        // Meanwhile: still active, same token, the Bridge still works with it.
        var waiting = await f.ConnectionAsync(id);
        Assert.Equal("active", waiting.GetProperty("status").GetString());
        Assert.True(waiting.GetProperty("reconnecting").GetBoolean());
        Assert.Equal(oldToken, await f.TokenAsync(id));
        Assert.Equal((HttpStatusCode.OK, "again.localhost"), await f.BridgeAsync(id));
        Assert.True(f.Fake.ValidTokens.ContainsKey(oldToken));

        var returned = await f.CompleteAsync(authUrl);
        Assert.Equal(id, returned["connection_id"]);
        Assert.Equal("active", returned["status"]);
        var newToken = await f.TokenAsync(id);
        Assert.NotEqual(oldToken, newToken);
        Assert.Contains(f.Fake.Calls, c => c.Path == "/revoke" && c.Token == oldToken && c.Host == "again.localhost");
        Assert.False(f.Fake.ValidTokens.ContainsKey(oldToken));
        var after = await f.ConnectionAsync(id);
        Assert.Equal(["read", "write"], after.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));
        Assert.False(after.TryGetProperty("reconnecting", out _));
        Assert.Equal((HttpStatusCode.OK, "again.localhost"), await f.BridgeAsync(id));
    }

    [Fact]
    public async Task ARefusedReconnectLeavesTheConnectionAndItsTokenAsTheyWere()
    {
        var id = await f.ConnectAsync(TenantFixture.Shop, new { shop = "refused" });
        var token = await f.TokenAsync(id);
        var (_, body) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect");
        f.Fake.AuthorizeError = "access_denied";
        Dictionary<string, string> returned;
        try
        {
            returned = await f.CompleteAsync(body.GetProperty("auth_url").GetString()!);
        }
        finally
        {
            f.Fake.AuthorizeError = null;
        }

        Assert.Equal("failed", returned["status"]);
        Assert.Equal("access_denied", returned["error"]);
        var connection = await f.ConnectionAsync(id);
        Assert.Equal("active", connection.GetProperty("status").GetString());
        Assert.False(connection.TryGetProperty("reconnecting", out _));
        Assert.Equal(token, await f.TokenAsync(id));
        Assert.True(f.Fake.ValidTokens.ContainsKey(token));
    }

    [Fact]
    public async Task AReconnectOfAnotherWorkspacesConnectionIsNotFound()
    {
        var id = await f.ConnectAsync(TenantFixture.Shop, new { shop = "theirs" }, "ws_theirs");
        var key = (await f.Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/api-keys", new { name = "mine", workspaces = new[] { "ws_mine" } }, HttpStatusCode.Created))
            .GetProperty("api_key").GetString()!;
        Assert.Equal(HttpStatusCode.NotFound, (await f.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { }, key)).Status);
    }

    [Fact]
    public async Task TwoCompletionsOfTheSameReconnectConsentAtOnceSwapTheTokensExactlyOnce()
    {
        var id = await f.ConnectAsync(TenantFixture.Shop, new { shop = "race" });
        var oldToken = await f.TokenAsync(id);
        var (_, body) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect");
        var callback = await f.Fake.ConsentAsync(body.GetProperty("auth_url").GetString()!);
        var exchangesBefore = f.Fake.Calls.Count(c => c.Host == "race.localhost" && c.Grant == "authorization_code");

        // The same callback (a double click, a browser retry) arrives several times at once.
        using var start = new SemaphoreSlim(0);
        var attempts = Enumerable.Range(0, 6).Select(async _ =>
        {
            await start.WaitAsync();
            using var response = await f.Kit.Browser.GetAsync(callback);
            return (response.StatusCode, Location: response.Headers.Location?.ToString(), Body: await response.Content.ReadAsStringAsync());
        }).ToList();
        start.Release(attempts.Count);
        var answers = await Task.WhenAll(attempts);

        var completed = Assert.Single(answers, a => a.StatusCode == HttpStatusCode.Redirect);
        Assert.Contains("status=active", completed.Location);
        Assert.All(answers.Where(a => a.StatusCode != HttpStatusCode.Redirect), a =>
        {
            Assert.Equal(HttpStatusCode.BadRequest, a.StatusCode);
            Assert.Contains("state_already_used", a.Body);
        });
        Assert.Equal(exchangesBefore + 1, f.Fake.Calls.Count(c => c.Host == "race.localhost" && c.Grant == "authorization_code"));
        var connection = await f.ConnectionAsync(id);
        Assert.Equal("active", connection.GetProperty("status").GetString());
        Assert.False(connection.TryGetProperty("reconnecting", out _));
        var newToken = await f.TokenAsync(id);
        Assert.NotEqual(oldToken, newToken);
        Assert.True(f.Fake.ValidTokens.ContainsKey(newToken));
        Assert.Single(f.Fake.Calls, c => c.Path == "/revoke" && c.Token == oldToken);
        var audit = await f.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}&event=reconnected");
        Assert.Single(audit.GetProperty("events").EnumerateArray());
    }

    /// <summary>A row of SQLite's EXPLAIN QUERY PLAN (only its text is read).</summary>
    private sealed class PlanRow
    {
        public string Detail { get; set; } = "";
    }
}
