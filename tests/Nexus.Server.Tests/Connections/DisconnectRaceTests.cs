using System.Net;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>
/// A disconnect (DELETE /v1/connections/{id}) that lands while the provider is issuing the connection new tokens, in
/// a code exchange or a refresh: whatever the order, the tokens the provider issued last are revoked there, and
/// nothing reports the deleted connection as active.
/// </summary>
public sealed class DisconnectRaceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task ADisconnectDuringTheCodeExchangeRevokesTheNewTokensAndTheCallbackReportsTheConnectionGone()
    {
        await using var scene = await RefreshScene.StartAsync();
        var (id, callbackUrl) = await scene.Kit.ConsentAsync(scene.Provider);
        var gate = scene.Upstream.CodeExchangeGate = new Gate();
        var callback = scene.Kit.CallbackAsync(callbackUrl);
        await gate.Arrived.WaitAsync(Patience, Ct);
        var issued = Assert.Single(Assert.Single(scene.Upstream.Families.Values).Chain);

        // The provider has issued the tokens and its answer is on the way when the app disconnects.
        await scene.Kit.ExpectAsync(HttpMethod.Delete, $"/v1/connections/{id}", null, HttpStatusCode.NoContent);
        gate.Release();
        using var returned = await callback;

        // The browser learns at return_url what GET /v1/connections/{id} says now: there is no such connection.
        Assert.Equal(HttpStatusCode.Redirect, returned.StatusCode);
        var query = BrokerKit.ReturnedQuery(returned);
        Assert.Equal(id, query["connection_id"]);
        Assert.Equal("failed", query["status"]);
        Assert.Equal("not_found", query["error"]);

        // The tokens issued for it are revoked at the provider, as the disconnect would have revoked them.
        Assert.Contains(issued.RefreshToken!, scene.Upstream.Revocations);
        Assert.Contains(issued.AccessToken, scene.Upstream.Revocations);
        Assert.False(scene.Upstream.Accepts(issued.AccessToken, RotatingProvider.Now));
        Assert.Equal(HttpStatusCode.NotFound, (await scene.Kit.ReadAsync(id)).Status);

        // Neither the audit log nor a webhook says it became active: its story ends with the disconnect.
        var audit = await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}");
        Assert.Equal(["revoked", "requested"], audit.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("event").GetString()!).ToArray());
        await scene.WebhooksSettledAsync();
        Assert.DoesNotContain(scene.Hooks.Received, d => d.Type == "connection.active" && d.Data.GetProperty("connection_id").GetString() == id);
        Assert.Contains(scene.Hooks.Received, d => d.Type == "connection.revoked" && d.Data.GetProperty("connection_id").GetString() == id);
    }

    [Fact]
    public async Task ADisconnectDuringAReconnectsCodeExchangeRevokesTheNewTokensAndTheCallbackReportsTheConnectionGone()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = Assert.Single(scene.Upstream.Families.Values);
        var reconnect = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { }, HttpStatusCode.OK);
        var callbackUrl = await scene.Kit.ConsentAtAsync(reconnect.GetProperty("auth_url").GetString()!);
        var gate = scene.Upstream.CodeExchangeGate = new Gate();
        var callback = scene.Kit.CallbackAsync(callbackUrl);
        await gate.Arrived.WaitAsync(Patience, Ct);
        var issued = Assert.Single(Assert.Single(scene.Upstream.Families.Values, f => f != first).Chain);

        await scene.Kit.ExpectAsync(HttpMethod.Delete, $"/v1/connections/{id}", null, HttpStatusCode.NoContent);
        gate.Release();
        using var returned = await callback;

        var query = BrokerKit.ReturnedQuery(returned);
        Assert.Equal(("failed", "not_found"), (query["status"], query["error"]));
        // The disconnect revoked the tokens the connection held; the callback revoked the ones the reconnect got.
        Assert.Contains(first.Chain.Single().RefreshToken!, scene.Upstream.Revocations);
        Assert.Contains(issued.RefreshToken!, scene.Upstream.Revocations);
        Assert.False(scene.Upstream.Accepts(issued.AccessToken, RotatingProvider.Now));
        var audit = await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}");
        Assert.Equal(["revoked", "requested", "activated", "requested"], audit.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("event").GetString()!).ToArray());
    }

    [Fact]
    public async Task ADisconnectDuringARefreshRevokesTheTokensTheRefreshObtained()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var family = Assert.Single(scene.Upstream.Families.Values);
        var gate = scene.Upstream.RefreshGate = new Gate();
        var refresh = scene.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
        await gate.Arrived.WaitAsync(Patience, Ct);
        // The provider has rotated the tokens (the stored refresh token is used up) and its answer is on the way.
        var rotated = family.Chain.Last();

        // On PostgreSQL the disconnect's delete waits for the refresh's row lock; on SQLite it goes through at once.
        var disconnect = scene.Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}");
        await scene.Database.FinishedOrWaitingForALockAsync(disconnect, "the disconnect");
        gate.Release();
        var (status, body, response) = await disconnect;
        response.Dispose();
        Assert.True(status == HttpStatusCode.NoContent, $"DELETE answered {(int)status}: {body}");
        (await refresh).Response.Dispose();

        // Whichever came first, the tokens the provider issued last were revoked there: no grant outlives the disconnect.
        Assert.Contains(rotated.RefreshToken!, scene.Upstream.Revocations);
        Assert.Contains(rotated.AccessToken, scene.Upstream.Revocations);
        Assert.False(scene.Upstream.Accepts(rotated.AccessToken, RotatingProvider.Now));
        Assert.Equal(HttpStatusCode.NotFound, (await scene.Kit.ReadAsync(id)).Status);
        var audit = (await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}"))
            .GetProperty("events").EnumerateArray().Select(e => e.GetProperty("event").GetString()!).ToArray();
        // SQLite: the delete went first, and the refresh found the connection gone: the audit log's story ends with
        // the disconnect, with no "refreshed" (outcome gone) after it. PostgreSQL: the delete waited for the refresh's
        // lock, and the log says so, newest first, whichever request wrote its event first (the refresh's carries the
        // time it took the lock).
        Assert.Equal(scene.Database.DatabaseUrl is null ? ["revoked", "activated", "requested"] : ["revoked", "refreshed", "activated", "requested"], audit);
    }

    [Theory]
    [InlineData("rejected")]
    [InlineData("transient")]
    public async Task ADisconnectDuringARefreshThatFailsLeavesNoFailureWebhookAndNoRefreshInTheAuditLog(string failure)
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        // The provider refuses the grant (invalid_grant) or is down (503); its answer is on the way when the app disconnects.
        if (failure == "rejected")
        {
            scene.Upstream.RejectWith = "invalid_grant";
        }
        else
        {
            scene.Upstream.FailWithStatus = 503;
        }

        var gate = scene.Upstream.RefreshGate = new Gate();
        var refresh = scene.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
        await gate.Arrived.WaitAsync(Patience, Ct);
        var disconnect = scene.Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}");
        await scene.Database.FinishedOrWaitingForALockAsync(disconnect, "the disconnect");
        gate.Release();
        var (status, body, response) = await disconnect;
        response.Dispose();
        Assert.True(status == HttpStatusCode.NoContent, $"DELETE answered {(int)status}: {body}");
        var (refreshStatus, refreshBody, refreshResponse) = await refresh;
        refreshResponse.Dispose();
        Assert.Equal(HttpStatusCode.NotFound, (await scene.Kit.ReadAsync(id)).Status);

        await scene.WebhooksSettledAsync();
        var hooks = scene.Hooks.Received.Where(d => d.Answered == 200 && d.Data.TryGetProperty("connection_id", out var c) && c.GetString() == id).ToList();
        var revoked = Assert.Single(hooks, d => d.Type == "connection.revoked");
        var events = (await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}"))
            .GetProperty("events").EnumerateArray().Select(e => e.GetProperty("event").GetString()!).ToArray();
        if (scene.Database.DatabaseUrl is not null)
        {
            // PostgreSQL: the delete waited for the refresh's row lock, so the refresh's outcome came first and the
            // disconnect found the connection as the refresh left it.
            Assert.Equal(failure == "rejected" ? "attention_required" : "active", revoked.Data.GetProperty("previous_status").GetString());
            // The refresh's events (the refresher's outcome, then the caller's "refreshed") before the disconnect's.
            Assert.Equal(["revoked", "refreshed", failure == "rejected" ? "attention_required" : "refresh_failed", "activated", "requested"], events);
            return;
        }

        // SQLite: the delete went through while the provider answered. The refresh's failure belongs to a connection that
        // no longer exists: no webhook asks the app to reconnect it or to wait for a retry, and the audit log's story
        // ends with the disconnect (no "refreshed" with outcome gone after "revoked", no attention_required or refresh_failed).
        Assert.True(refreshStatus == HttpStatusCode.NotFound, $"POST /v1/refresh answered {(int)refreshStatus}: {refreshBody}");
        Assert.Equal(["connection.active", "connection.revoked"], hooks.Select(d => d.Type).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(["revoked", "activated", "requested"], events);
    }
}
