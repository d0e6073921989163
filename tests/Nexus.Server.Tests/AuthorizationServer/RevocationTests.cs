using System.Net;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>POST /oauth2/revoke (RFC 7009) over HTTP.</summary>
public sealed class RevocationTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    [Fact]
    public async Task AnAccessTokenSentWithTheRefreshTokenHintIsRevokedAllTheSame()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();
        var access = tokens.GetProperty("access_token").GetString()!;
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, access));

        // RFC 7009 §2.1: not found as a refresh token, the token is looked for as an access token.
        await RevokeAsync(Server, clientId, secret!, access, hint: "refresh_token");
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, access));
        // An access token is revoked on its own: the grant's refresh token still works.
        var (status, _) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!));
        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task ARefreshTokenSentWithTheAccessTokenHintRevokesItsGrantAllTheSame()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();
        var access = tokens.GetProperty("access_token").GetString()!;
        var refresh = tokens.GetProperty("refresh_token").GetString()!;

        await RevokeAsync(Server, clientId, secret!, refresh, hint: "access_token");
        var (status, body) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, access));
    }

    [Fact]
    public async Task AnotherClientsTokenIsNotRevokedWhateverTheHint()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (otherId, otherSecret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();
        var access = tokens.GetProperty("access_token").GetString()!;
        var refresh = tokens.GetProperty("refresh_token").GetString()!;

        foreach (var hint in new string?[] { null, "access_token", "refresh_token" })
        {
            await RevokeAsync(Server, otherId, otherSecret!, access, hint);
            await RevokeAsync(Server, otherId, otherSecret!, refresh, hint);
        }

        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, access));
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh))).Status);
    }
}
