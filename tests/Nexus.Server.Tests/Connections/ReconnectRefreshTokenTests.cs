using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>
/// Issue 17, reconnect: a provider that issues a refresh token only on a client's first consent (Google) answers the
/// reconnect's consent without one. The connection keeps the refresh token it had, which is not revoked, and keeps
/// refreshing.
/// </summary>
public sealed class ReconnectRefreshTokenTests(BrokerFixture f) : IClassFixture<BrokerFixture>
{
    [Fact]
    public async Task AReconnectWhoseConsentIssuesNoRefreshTokenKeepsTheOneTheConnectionHad()
    {
        var provider = await f.Kit.RegisterAsync("google");
        var (id, _) = await f.Kit.ConnectAsync(provider, workspace: "ws-reconnect");
        var firstRefresh = Assert.Single(f.Fake.IssuedTokens, t => t.StartsWith("1//", StringComparison.Ordinal));

        var (status, body) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { });
        Assert.Equal(HttpStatusCode.OK, status);
        using (var back = await f.Kit.CallbackAsync(await f.Kit.ConsentAsync(body.GetProperty("auth_url").GetString()!)))
        {
            Assert.Equal(HttpStatusCode.Redirect, back.StatusCode);
        }

        // The second consent issued no refresh token; the first one was neither dropped nor revoked.
        Assert.Single(f.Fake.IssuedTokens, t => t.StartsWith("1//", StringComparison.Ordinal));
        Assert.DoesNotContain(f.Fake.Revocations, r => r.Token == firstRefresh);

        // The connection still holds a refresh token (the fake provider cannot redeem one; the stored value is what counts).
        await using var connection = await f.Server.Services.GetRequiredService<Nexus.Server.Data.NexusDatabase>().OpenAsync();
        Assert.True(await Dapper.SqlMapper.ExecuteScalarAsync<bool>(connection, "SELECT refresh_token IS NOT NULL FROM connections WHERE id = @id", new { id }));
        var (_, after) = await f.Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}");
        Assert.Equal("active", after.GetProperty("status").GetString());
    }
}
