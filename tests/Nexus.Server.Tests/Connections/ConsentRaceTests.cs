using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Connections;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>
/// A new consent for a connection (POST /v1/connections/{id}/reconnect) begun while the provider is answering the
/// code exchange of an earlier one: the earlier callback's state is no longer the connection's, so nothing it
/// obtained or learned is stored, and the newer consent's link still completes with the scopes it asked for.
/// </summary>
public sealed class ConsentRaceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Starts the browser's callback and holds the provider's answer to its code exchange (the tokens are issued) until
    /// the returned gate is released; later exchanges are not held.
    /// </summary>
    private static async Task<(Task<HttpResponseMessage> Callback, Gate Gate)> HoldCodeExchangeAsync(RefreshScene scene, Uri callbackUrl)
    {
        var gate = scene.Upstream.CodeExchangeGate = new Gate();
        var callback = scene.Kit.CallbackAsync(callbackUrl);
        await gate.Arrived.WaitAsync(Patience, Ct);
        scene.Upstream.CodeExchangeGate = null;
        return (callback, gate);
    }

    /// <summary>Begins a reconnect of the connection and brings the person through its consent: the callback URL.</summary>
    private static async Task<Uri> ReconnectConsentAsync(RefreshScene scene, string id)
    {
        var started = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { }, HttpStatusCode.OK);
        return await scene.Kit.ConsentAtAsync(started.GetProperty("auth_url").GetString()!);
    }

    [Fact]
    public async Task AReconnectBegunDuringAReconnectsCodeExchangeSupersedesItAndItsOwnLinkStillCompletesWithItsScopes()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = Assert.Single(scene.Upstream.Families.Values);
        var earlierCallback = await ReconnectConsentAsync(scene, id);
        var (callback, gate) = await HoldCodeExchangeAsync(scene, earlierCallback);
        var issued = Assert.Single(Assert.Single(scene.Upstream.Families.Values, f => f != first).Chain);

        // The provider has issued the earlier consent's tokens when the app asks for wider scopes.
        var newer = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { scopes = new[] { "read", "write" } }, HttpStatusCode.OK);
        gate.Release();
        using (var returned = await callback)
        {
            var query = BrokerKit.ReturnedQuery(returned);
            // The connection is still active on its own tokens; the newer consent is the one to complete.
            Assert.Equal((id, "active", "superseded"), (query["connection_id"], query["status"], query["error"]));
        }

        // What the earlier consent obtained is revoked at the provider, and the connection serves what it had.
        Assert.Contains(issued.RefreshToken!, scene.Upstream.Revocations);
        Assert.Contains(issued.AccessToken, scene.Upstream.Revocations);
        var (status, token, _) = await scene.Kit.ReadAsync(id);
        Assert.Equal((HttpStatusCode.OK, first.Chain.Last().AccessToken), (status, token));
        var store = scene.Server.Services.GetRequiredService<ConnectionStore>();
        var waiting = (await store.FindAsync(id, Ct))!;
        Assert.Equal(["read"], waiting.ScopeList);
        Assert.Equal("read write", waiting.ReconnectScopes);

        // The newer link completes (before the fix it was answered 400 state_already_used), with its own scopes.
        using (var completed = await scene.Kit.CallbackAsync(await scene.Kit.ConsentAtAsync(newer.GetProperty("auth_url").GetString()!)))
        {
            var query = BrokerKit.ReturnedQuery(completed);
            Assert.Equal("active", query["status"]);
            Assert.False(query.ContainsKey("error"), string.Join('&', query));
        }

        var third = Assert.Single(scene.Upstream.Families.Values, f => f != first && f.Chain.All(t => t != issued));
        Assert.Equal(third.Chain.Single().AccessToken, (await scene.Kit.ReadAsync(id)).AccessToken);
        Assert.Equal(["read", "write"], (await store.FindAsync(id, Ct))!.ScopeList);
        var events = (await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}")).GetProperty("events").EnumerateArray().ToList();
        var superseded = Assert.Single(events, e => e.GetProperty("event").GetString() == "failed");
        Assert.Equal("superseded", superseded.GetProperty("detail").GetProperty("error").GetString());
    }

    [Fact]
    public async Task AConsentWhoseNewerReconnectAlreadyCompletedIsStillReportedSuperseded()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = Assert.Single(scene.Upstream.Families.Values);
        var earlierCallback = await ReconnectConsentAsync(scene, id);
        var (callback, gate) = await HoldCodeExchangeAsync(scene, earlierCallback);
        var issued = Assert.Single(Assert.Single(scene.Upstream.Families.Values, f => f != first).Chain);

        // A newer reconnect begins and completes (its state ends with it) before the earlier callback's answer arrives.
        var newer = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { }, HttpStatusCode.OK);
        using (var completed = await scene.Kit.CallbackAsync(await scene.Kit.ConsentAtAsync(newer.GetProperty("auth_url").GetString()!)))
        {
            Assert.Equal("active", BrokerKit.ReturnedQuery(completed)["status"]);
        }

        var newest = Assert.Single(scene.Upstream.Families.Values, f => f != first && f.Chain.All(t => t != issued)).Chain.Single();
        gate.Release();
        using (var returned = await callback)
        {
            Assert.Equal(("active", "superseded"), (BrokerKit.ReturnedQuery(returned)["status"], BrokerKit.ReturnedQuery(returned)["error"]));
        }

        Assert.Contains(issued.AccessToken, scene.Upstream.Revocations);
        Assert.Equal(newest.AccessToken, (await scene.Kit.ReadAsync(id)).AccessToken);
    }

    [Fact]
    public async Task AReconnectBegunDuringTheFirstConsentsCodeExchangeKeepsTheConnectionPendingOnTheNewConsent()
    {
        await using var scene = await RefreshScene.StartAsync();
        var (id, firstCallback) = await scene.Kit.ConsentAsync(scene.Provider);
        var (callback, gate) = await HoldCodeExchangeAsync(scene, firstCallback);
        var issued = Assert.Single(Assert.Single(scene.Upstream.Families.Values).Chain);

        var newer = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { scopes = new[] { "read", "write" } }, HttpStatusCode.OK);
        gate.Release();
        using (var returned = await callback)
        {
            Assert.Equal(("pending", "superseded"), (BrokerKit.ReturnedQuery(returned)["status"], BrokerKit.ReturnedQuery(returned)["error"]));
        }

        Assert.Contains(issued.RefreshToken!, scene.Upstream.Revocations);
        Assert.Equal("pending", (await scene.Kit.ConnectionAsync(id)).GetProperty("status").GetString());
        Assert.NotEqual(HttpStatusCode.OK, (await scene.Kit.ReadAsync(id)).Status);

        using (var completed = await scene.Kit.CallbackAsync(await scene.Kit.ConsentAtAsync(newer.GetProperty("auth_url").GetString()!)))
        {
            Assert.Equal("active", BrokerKit.ReturnedQuery(completed)["status"]);
        }

        var connection = await scene.Kit.ConnectionAsync(id);
        Assert.Equal(["read", "write"], connection.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()!).ToArray());
        Assert.Equal(HttpStatusCode.OK, (await scene.Kit.ReadAsync(id)).Status);
    }

    [Fact]
    public async Task ACodeExchangeRefusedAfterANewerReconnectBeganDoesNotFailTheConnection()
    {
        await using var scene = await RefreshScene.StartAsync();
        var (id, firstCallback) = await scene.Kit.ConsentAsync(scene.Provider);
        scene.Upstream.CodeExchangeError = "invalid_grant";
        var (callback, gate) = await HoldCodeExchangeAsync(scene, firstCallback);

        scene.Upstream.CodeExchangeError = null;
        var newer = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { }, HttpStatusCode.OK);
        gate.Release();
        using (var returned = await callback)
        {
            // The refusal belongs to a consent the connection no longer waits for: it is not the connection's failure.
            Assert.Equal(("pending", "superseded"), (BrokerKit.ReturnedQuery(returned)["status"], BrokerKit.ReturnedQuery(returned)["error"]));
        }

        Assert.Equal("pending", (await scene.Kit.ConnectionAsync(id)).GetProperty("status").GetString());
        using (var completed = await scene.Kit.CallbackAsync(await scene.Kit.ConsentAtAsync(newer.GetProperty("auth_url").GetString()!)))
        {
            Assert.Equal("active", BrokerKit.ReturnedQuery(completed)["status"]);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AStepUpConsentOfAConnectionWhoseRefreshWasRejectedMeanwhileIsStillAStepUp(bool refused)
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var store = scene.Server.Services.GetRequiredService<ConnectionStore>();
        var before = (await store.FindAsync(id, Ct))!;
        var registered = (await scene.Server.Services.GetRequiredService<Nexus.Server.Providers.ProviderRegistry>().FindAsync(scene.Provider, Ct))!;
        var answer = Assert.IsType<Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult>(
            (await scene.Server.Services.GetRequiredService<Nexus.Server.RemoteMcp.McpStepUp>().StartAsync(before, registered, "files:write", canResend: false, Ct)).Answer);
        var stepUpCallback = await scene.Kit.ConsentAtAsync((string)answer.ProblemDetails.Extensions["auth_url"]!);

        // Before the person comes back, the provider refuses the connection's refresh token: attention_required.
        scene.Upstream.RejectWith = "invalid_grant";
        await scene.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
        scene.Upstream.RejectWith = null;
        Assert.Equal("attention_required", (await scene.Kit.ConnectionAsync(id)).GetProperty("status").GetString());

        scene.Upstream.CodeExchangeError = refused ? "invalid_grant" : null;
        using (var returned = await scene.Kit.CallbackAsync(stepUpCallback))
        {
            Assert.True(returned.StatusCode == HttpStatusCode.Redirect, $"{(int)returned.StatusCode} {await returned.Content.ReadAsStringAsync(Ct)}");
            var query = BrokerKit.ReturnedQuery(returned);
            if (refused)
            {
                // The step-up failed, not the connection: it stays as the refresh left it, with its tokens, for a reconnect.
                Assert.Equal(("attention_required", "invalid_grant"), (query["status"], query["error"]));
            }
            else
            {
                Assert.Equal("active", query["status"]);
            }
        }

        var after = (await store.FindAsync(id, Ct))!;
        if (refused)
        {
            Assert.Equal("attention_required", after.Status);
            Assert.Equal(before.AccessToken, after.AccessToken);
            Assert.Null(after.StateNonce);
            Assert.DoesNotContain("files:write", after.ScopeList);
        }
        else
        {
            // The consent repaired the connection and widened it, keeping the scopes it had.
            Assert.Equal("active", after.Status);
            Assert.Contains("files:write", after.ScopeList);
            Assert.Superset(before.ScopeList.ToHashSet(), after.ScopeList.ToHashSet());
        }
    }

    [Fact]
    public async Task AConsentWindowClosingDuringTheCodeExchangeDoesNotEndAConsentWhoseStateWasUsedInTime()
    {
        await using var scene = await RefreshScene.StartAsync();
        var (id, callbackUrl) = await scene.Kit.ConsentAsync(scene.Provider);
        // The person approves 10 s before the consent window (10 minutes) closes.
        scene.Server.Time.Advance(TimeSpan.FromSeconds(590));
        var (callback, gate) = await HoldCodeExchangeAsync(scene, callbackUrl);

        // The window closes while the provider answers, and the app reads the connection (which ends pending
        // connections whose window closed): this one's state was used in time, so it stays pending.
        scene.Server.Time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal("pending", (await scene.Kit.ConnectionAsync(id)).GetProperty("status").GetString());
        gate.Release();
        using (var returned = await callback)
        {
            var query = BrokerKit.ReturnedQuery(returned);
            Assert.Equal("active", query["status"]);
            Assert.False(query.ContainsKey("error"), string.Join('&', query));
        }

        Assert.Equal(HttpStatusCode.OK, (await scene.Kit.ReadAsync(id)).Status);
    }

    [Fact]
    public async Task ACallbackStillExchangingLongAfterItUsedItsStateFindsTheConsentEndedAndRevokesWhatItGot()
    {
        await using var scene = await RefreshScene.StartAsync();
        var (id, callbackUrl) = await scene.Kit.ConsentAsync(scene.Provider);
        var (callback, gate) = await HoldCodeExchangeAsync(scene, callbackUrl);
        var issued = Assert.Single(Assert.Single(scene.Upstream.Families.Values).Chain);

        // Past the window, and past the grace a callback gets after using its state in time (three upstream
        // timeouts, 30 s here): the consent is ended for good.
        scene.Server.Time.Advance(TimeSpan.FromMinutes(11));
        Assert.Equal("failed", (await scene.Kit.ConnectionAsync(id)).GetProperty("status").GetString());
        gate.Release();
        using (var returned = await callback)
        {
            // No newer consent took its place: the browser learns the connection's own failure, not "superseded".
            Assert.Equal(("failed", "expired"), (BrokerKit.ReturnedQuery(returned)["status"], BrokerKit.ReturnedQuery(returned)["error"]));
        }

        // Nothing else holds these tokens' grant: they are revoked outright.
        Assert.Contains(issued.RefreshToken!, scene.Upstream.Revocations);
        Assert.Equal("failed", (await scene.Kit.ConnectionAsync(id)).GetProperty("status").GetString());
    }

    [Fact(Timeout = 60_000)]
    public async Task ATokenAnswerThatStopsHalfWayFailsTheConsentWithinTheUpstreamTimeoutInsteadOfHoldingTheCallback()
    {
        // HttpClient.Timeout covers the headers only; the body of the token answer gets the same bound.
        await using var scene = await RefreshScene.StartAsync(configure: s => s["Nexus:UpstreamTimeoutSeconds"] = "2");
        var (id, callbackUrl) = await scene.Kit.ConsentAsync(scene.Provider);
        scene.Upstream.StallCodeExchangeBody = true;

        using var returned = await scene.Kit.CallbackAsync(callbackUrl);

        Assert.Equal(("failed", "provider_unreachable"), (BrokerKit.ReturnedQuery(returned)["status"], BrokerKit.ReturnedQuery(returned)["error"]));
        Assert.Equal("failed", (await scene.Kit.ConnectionAsync(id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task AReconnectThatReadTheConnectionPendingBeforeItsCallbackActivatedItKeepsTheNewTokensServing()
    {
        await using var scene = await RefreshScene.StartAsync();
        var (id, firstCallback) = await scene.Kit.ConsentAsync(scene.Provider);
        var store = scene.Server.Services.GetRequiredService<ConnectionStore>();
        var readWhilePending = (await store.FindAsync(id, Ct))!;
        using (var returned = await scene.Kit.CallbackAsync(firstCallback))
        {
            Assert.Equal("active", BrokerKit.ReturnedQuery(returned)["status"]);
        }

        // The reconnect acts on what it read (pending); the write sees the connection active, reads it again and
        // starts the kind of reconnect an active connection gets: its tokens keep serving until the new consent completes.
        var started = await scene.Server.Services.GetRequiredService<ConnectionService>()
            .ReconnectAsync(readWhilePending, ["read", "write"], BrokerFixture.ReturnUrl, "test", Ct);
        Assert.NotNull(started.AuthUrl);
        var (status, token, _) = await scene.Kit.ReadAsync(id);
        Assert.Equal((HttpStatusCode.OK, Assert.Single(scene.Upstream.Families.Values).Chain.Single().AccessToken), (status, token));
        var connection = (await store.FindAsync(id, Ct))!;
        Assert.Equal((ConnectionStatus.Active, "read write"), (connection.Status, connection.ReconnectScopes));
    }
}
