using Microsoft.AspNetCore.Http;
using Nexus.Server.AuthorizationServer;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>
/// Which routes answer a database outage in RFC 6749's JSON (temporarily_unavailable) rather than as a problem
/// document; the outage itself, on PostgreSQL, is in Data/DatabaseOutageTests.
/// </summary>
public sealed class OAuthUnavailableTests
{
    [Theory]
    [InlineData("/oauth2/token", true)]
    [InlineData("/OAuth2/Introspect", true)]
    [InlineData("/api/oauth/token", true)]
    [InlineData("/api/v1/oauth/exchange", true)]
    [InlineData("/nexus/oauth2/token", true)]
    [InlineData("/api/v1/me", true)]
    [InlineData("/v1/request-connection", false)]
    [InlineData("/api/v1/oauthx", false)]
    public void AnOAuthEndpointAnswersAnOutageInItsOwnFormat(string path, bool oauth) => Assert.Equal(oauth, new OAuthUnavailable().Covers(new PathString(path)));
}
