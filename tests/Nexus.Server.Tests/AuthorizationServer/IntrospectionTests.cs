using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>POST /oauth2/introspect (RFC 7662) over HTTP.</summary>
public sealed class IntrospectionTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    [Theory]
    [InlineData("refresh_token")]
    [InlineData("access_token")]
    [InlineData(null)]
    public async Task EachTokenIsFoundWhateverTheHint(string? hint)
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();

        // RFC 7662 §2.1: a token not found as the hinted type is looked for as the other.
        var access = await IntrospectAsync(Server, clientId, secret!, tokens.GetProperty("access_token").GetString()!, hint);
        Assert.True(access.GetProperty("active").GetBoolean());
        Assert.Equal("Bearer", access.GetProperty("token_type").GetString());

        var refresh = await IntrospectAsync(Server, clientId, secret!, tokens.GetProperty("refresh_token").GetString()!, hint);
        Assert.True(refresh.GetProperty("active").GetBoolean());
        Assert.Equal("refresh_token", refresh.GetProperty("token_type").GetString());
        Assert.Equal(clientId, refresh.GetProperty("client_id").GetString());
    }
}
