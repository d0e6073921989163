using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Connections;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections.Refresh;

/// <summary>
/// A refresh whose provider answer arrives after someone else changed the connection's tokens. On SQLite nothing
/// holds the row while the provider is asked, so a reconnect (or a step-up) can complete in between: the refresh's
/// write is conditional on the row still holding the token it refreshed. On PostgreSQL the same writes wait for the
/// refresh's row lock instead; the tests run on both.
/// </summary>
public sealed class RefreshRaceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task AReconnectCompletingDuringARefreshKeepsItsTokensAndTheRefreshDoesNotOverwriteThem()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = Assert.Single(scene.Upstream.Families.Values);

        // The person reconnects: their consent is given and the browser is on its way to Nexus's callback.
        var reconnect = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { }, HttpStatusCode.OK);
        var callbackUrl = await scene.Kit.ConsentAtAsync(reconnect.GetProperty("auth_url").GetString()!);

        // Meanwhile a refresh: the provider has rotated the old grant's tokens and its answer is on the way.
        var gate = scene.Upstream.RefreshGate = new Gate();
        var refresh = scene.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
        await gate.Arrived.WaitAsync(Patience, Ct);
        var refreshed = first.Chain.Last();

        // The callback stores the reconnect's tokens before the refresh's answer arrives (on PostgreSQL it waits for
        // the refresh's row lock instead, and its tokens are written after the refresh's).
        var callback = scene.Kit.CallbackAsync(callbackUrl);
        await scene.Database.FinishedOrWaitingForALockAsync(callback, "the reconnect's callback");
        gate.Release();
        using (var returned = await callback)
        {
            Assert.Contains("status=active", returned.Headers.Location!.ToString(), StringComparison.Ordinal);
        }

        var (status, body, response) = await refresh;
        response.Dispose();
        Assert.True(status == HttpStatusCode.OK, $"POST /v1/refresh answered {(int)status}: {body}");

        // The connection serves the reconnect's access token, which the provider accepts, and refreshes with the
        // reconnect's refresh token.
        var reconnected = Assert.Single(Assert.Single(scene.Upstream.Families.Values, f => f != first).Chain);
        Assert.Equal(reconnected.AccessToken, await scene.Kit.TokenAsync(id));
        Assert.True(scene.Upstream.Accepts(reconnected.AccessToken, RotatingProvider.Now));
        await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/refresh/{id}", null, HttpStatusCode.OK);
        var last = scene.Upstream.RefreshCalls.Last();
        Assert.Equal(("rotated", reconnected.RefreshToken), (last.Outcome, last.Presented?.RefreshToken));
        Assert.Equal(0, scene.Upstream.Reuses);

        // The refresh's tokens are not left usable beside them, and are revoked: on SQLite the refresh lost the race and
        // revoked what it got; on PostgreSQL it won it, and the reconnect revoked what its write replaced (the
        // refresh's, not the older ones its callback had read).
        Assert.False(scene.Upstream.Accepts(refreshed.AccessToken, RotatingProvider.Now));
        Assert.Contains(refreshed.RefreshToken!, scene.Upstream.Revocations);
    }

    [Fact]
    public async Task AReconnectWithoutARefreshTokenCompletingDuringARefreshKeepsTheRefreshTokenTheRefreshRotatedTo()
    {
        // Google-like: one grant per person and client, whose revocation ends all of it (so none is sent while it
        // continues), and a repeated consent without a refresh token; unlike Google, refresh tokens rotate.
        await using var scene = await RefreshScene.StartAsync(provider: new { revocation_format = "rfc7009_grant" });
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var grant = Assert.Single(scene.Upstream.Families.Values);
        scene.Upstream.ConsentFamily = grant;
        scene.Upstream.RefreshTokenOnConsent = false;
        var reconnect = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { }, HttpStatusCode.OK);
        var callbackUrl = await scene.Kit.ConsentAtAsync(reconnect.GetProperty("auth_url").GetString()!);

        var gate = scene.Upstream.RefreshGate = new Gate();
        var refresh = scene.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
        await gate.Arrived.WaitAsync(Patience, Ct);
        var refreshed = grant.Chain.Last();
        var callback = scene.Kit.CallbackAsync(callbackUrl);
        await scene.Database.FinishedOrWaitingForALockAsync(callback, "the reconnect's callback");
        gate.Release();
        (await callback).Dispose();
        var (status, body, response) = await refresh;
        response.Dispose();
        Assert.True(status == HttpStatusCode.OK, $"POST /v1/refresh answered {(int)status}: {body}");

        // The reconnect's access token is served; the refresh token is the one the refresh rotated to, not the one it
        // used up (which the reconnect, issuing none, would have kept): the next refresh is no reuse.
        var reconnected = grant.Chain.Last();
        Assert.Null(reconnected.RefreshToken);
        Assert.Equal(reconnected.AccessToken, await scene.Kit.TokenAsync(id));
        await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/refresh/{id}", null, HttpStatusCode.OK);
        var last = scene.Upstream.RefreshCalls.Last();
        Assert.Equal(("rotated", refreshed.RefreshToken), (last.Outcome, last.Presented?.RefreshToken));
        Assert.Equal(0, scene.Upstream.Reuses);
        Assert.Empty(scene.Upstream.Revocations);
    }

    [Fact]
    public async Task ARefreshWhoseRowWasOnlyReEncryptedMeanwhileStoresItsTokensAndRevokesNothing()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var family = Assert.Single(scene.Upstream.Families.Values);
        var gate = scene.Upstream.RefreshGate = new Gate();
        var refresh = scene.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
        await gate.Arrived.WaitAsync(Patience, Ct);
        var refreshed = family.Chain.Last();

        // keys reencrypt runs meanwhile: the same access token under a new ciphertext, written conditionally on the
        // ciphertext it read, as ReEncryptor writes (on PostgreSQL it waits for the refresh's row lock, then finds it changed).
        var store = scene.Server.Services.GetRequiredService<ConnectionStore>();
        var seen = (byte[])(await scene.Database.ScalarAsync("SELECT access_token FROM connections WHERE id = @id", ("id", id)))!;
        var again = store.Encrypt(ConnectionStore.AccessTokenColumn, id, store.Decrypt(ConnectionStore.AccessTokenColumn, id, seen));
        var reencrypt = scene.Database.ScalarAsync("UPDATE connections SET access_token = @again WHERE id = @id AND access_token = @seen",
            ("again", again), ("id", id), ("seen", seen));
        await scene.Database.FinishedOrWaitingForALockAsync(reencrypt, "the re-encryption");
        gate.Release();
        await reencrypt;
        var (status, body, response) = await refresh;
        response.Dispose();
        Assert.True(status == HttpStatusCode.OK, $"POST /v1/refresh answered {(int)status}: {body}");

        // Nobody replaced the tokens: the refresh's are stored and served, and nothing was revoked.
        Assert.Equal(refreshed.AccessToken, await scene.Kit.TokenAsync(id));
        Assert.True(scene.Upstream.Accepts(refreshed.AccessToken, RotatingProvider.Now));
        Assert.Empty(scene.Upstream.Revocations);
    }
}
