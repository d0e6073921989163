using System.Net;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Connections;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.RemoteMcp;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>
/// Issue 17, reconnect: a provider that issues a refresh token only on a client's first consent (Google) answers the
/// reconnect's consent without one. The connection keeps the refresh token it had, which is not revoked, and keeps
/// refreshing. The same holds for a step-up consent (RemoteMcp.McpStepUp); and a reconnect nobody completes ends
/// when its consent window closes.
/// </summary>
public sealed class ReconnectRefreshTokenTests(BrokerFixture shared) : IClassFixture<BrokerFixture>
{
    [Fact]
    public async Task AReconnectWhoseConsentIssuesNoRefreshTokenKeepsTheOneTheConnectionHad()
    {
        var provider = await shared.Kit.RegisterAsync("google");
        var (id, _) = await shared.Kit.ConnectAsync(provider, workspace: "ws-reconnect");
        var firstRefresh = Assert.Single(shared.Fake.IssuedTokens, t => t.StartsWith("1//", StringComparison.Ordinal));

        var (status, body) = await shared.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { });
        Assert.Equal(HttpStatusCode.OK, status);
        using (var back = await shared.Kit.CallbackAsync(await shared.Kit.ConsentAsync(body.GetProperty("auth_url").GetString()!)))
        {
            Assert.Equal(HttpStatusCode.Redirect, back.StatusCode);
        }

        // The second consent issued no refresh token; the first one was neither dropped nor revoked.
        Assert.Single(shared.Fake.IssuedTokens, t => t.StartsWith("1//", StringComparison.Ordinal));
        Assert.DoesNotContain(shared.Fake.Revocations, r => r.Token == firstRefresh);

        // The connection still holds a refresh token (the fake provider cannot redeem one; the stored value is what counts).
        await using var connection = await shared.Server.Services.GetRequiredService<Nexus.Server.Data.NexusDatabase>().OpenAsync();
        Assert.True(await Dapper.SqlMapper.ExecuteScalarAsync<bool>(connection, "SELECT refresh_token IS NOT NULL FROM connections WHERE id = @id", new { id }));
        var (_, after) = await shared.Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}");
        Assert.Equal("active", after.GetProperty("status").GetString());
        // Its next refresh is scheduled in the reconnect's own write, not left for the refresher to discover.
        Assert.True(after.TryGetProperty("next_refresh_at", out var next) && next.ValueKind == System.Text.Json.JsonValueKind.Number, after.ToString());
    }

    [Fact]
    public async Task AStepUpConsentWhoseAnswerHasNoRefreshTokenKeepsTheOneTheConnectionHadAndRevokesTheOldAccessToken()
    {
        // A provider of its own: the fake issues a refresh token only on a client's first consent, once per client.
        await using var f = new BrokerFixture();
        await f.InitializeAsync();
        var provider = await f.Kit.RegisterAsync("google");
        var (id, _) = await f.Kit.ConnectAsync(provider, workspace: "ws-step-up");
        var firstRefresh = Assert.Single(f.Fake.IssuedTokens, t => t.StartsWith("1//", StringComparison.Ordinal));
        var store = f.Server.Services.GetRequiredService<ConnectionStore>();
        var before = (await store.FindAsync(id, CancellationToken.None))!;
        var firstAccess = store.Decrypt(ConnectionStore.AccessTokenColumn, id, before.AccessToken!);

        // The step-up McpStepUp starts when a server answers 403 insufficient_scope (here for a scope the connection lacks).
        var stepUp = f.Server.Services.GetRequiredService<McpStepUp>();
        var registered = (await f.Server.Services.GetRequiredService<ProviderRegistry>().FindAsync(provider, CancellationToken.None))!;
        var answer = Assert.IsType<ProblemHttpResult>((await stepUp.StartAsync(before, registered, "https://www.googleapis.com/auth/drive", canResend: false, CancellationToken.None)).Answer);
        var authUrl = (string)answer.ProblemDetails.Extensions["auth_url"]!;
        using (var back = await f.Kit.CallbackAsync(await f.Kit.ConsentAsync(authUrl)))
        {
            Assert.Equal("active", BrokerKit.ReturnedQuery(back)["status"]);
        }

        // The repeated consent issued no refresh token: the connection keeps its own (not revoked), takes the wider
        // scope, and the access token it replaced is revoked.
        Assert.Single(f.Fake.IssuedTokens, t => t.StartsWith("1//", StringComparison.Ordinal));
        Assert.DoesNotContain(f.Fake.Revocations, r => r.Token == firstRefresh);
        Assert.Contains(f.Fake.Revocations, r => r.Token == firstAccess);
        var after = (await store.FindAsync(id, CancellationToken.None))!;
        Assert.Equal(firstRefresh, store.Decrypt(ConnectionStore.RefreshTokenColumn, id, after.RefreshToken!));
        Assert.NotEqual(firstAccess, store.Decrypt(ConnectionStore.AccessTokenColumn, id, after.AccessToken!));
        Assert.Contains("https://www.googleapis.com/auth/drive", after.ScopeList);
        var (_, view) = await f.Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}");
        Assert.Equal("active", view.GetProperty("status").GetString());
        Assert.True(view.TryGetProperty("next_refresh_at", out var next) && next.ValueKind == System.Text.Json.JsonValueKind.Number,
            "a connection that kept its refresh token is scheduled for refresh");
    }

    [Fact]
    public async Task AReconnectNobodyCompletesEndsWhenItsConsentWindowClosesAndALaterStepUpIsTakenForAStepUp()
    {
        // A server of its own: its clock is moved on.
        await using var f = new BrokerFixture();
        await f.InitializeAsync();
        var provider = await f.Kit.RegisterAsync("google");
        var (id, _) = await f.Kit.ConnectAsync(provider, workspace: "ws-abandoned");
        var (status, started) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { scopes = new[] { "openid" } });
        Assert.Equal(HttpStatusCode.OK, status);
        var reconnectUrl = started.GetProperty("auth_url").GetString()!;
        Assert.True((await f.Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}")).Body.GetProperty("reconnecting").GetBoolean());

        // Past the consent window: reading the connection ends the reconnect; the connection is as it was.
        f.Server.Time.Advance(TimeSpan.FromSeconds(f.Server.Services.GetRequiredService<NexusOptions>().PendingConnectionSeconds + 1));
        var (_, view) = await f.Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}");
        Assert.False(view.TryGetProperty("reconnecting", out _), view.ToString());
        Assert.Equal("active", view.GetProperty("status").GetString());
        var store = f.Server.Services.GetRequiredService<ConnectionStore>();
        var connection = (await store.FindAsync(id, CancellationToken.None))!;
        Assert.Null(connection.ReconnectScopes);
        Assert.Null(connection.PkceVerifier);

        // The late consent is refused, and changes nothing.
        using (var late = await f.Kit.CallbackAsync(await f.Kit.ConsentAsync(reconnectUrl)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, late.StatusCode);
        }

        // A step-up afterwards completes as a step-up: the wider scope is added to the connection's, not replaced by the
        // abandoned reconnect's. Starting it changes nothing the refresh schedule reads: updated_at is still the tokens'
        // issue time (RefreshRow.IssuedAt), although the clock has moved on.
        var registered = (await f.Server.Services.GetRequiredService<ProviderRegistry>().FindAsync(provider, CancellationToken.None))!;
        var answer = Assert.IsType<ProblemHttpResult>((await f.Server.Services.GetRequiredService<McpStepUp>()
            .StartAsync(connection, registered, "https://www.googleapis.com/auth/drive", canResend: false, CancellationToken.None)).Answer);
        Assert.Equal(connection.UpdatedAt, (await store.FindAsync(id, CancellationToken.None))!.UpdatedAt);
        using (var back = await f.Kit.CallbackAsync(await f.Kit.ConsentAsync((string)answer.ProblemDetails.Extensions["auth_url"]!)))
        {
            Assert.Equal("active", BrokerKit.ReturnedQuery(back)["status"]);
        }

        var widened = (await store.FindAsync(id, CancellationToken.None))!;
        Assert.Contains("https://www.googleapis.com/auth/drive", widened.ScopeList);
        Assert.True(widened.ScopeList.Count > 1, string.Join(' ', widened.ScopeList));
    }
}
