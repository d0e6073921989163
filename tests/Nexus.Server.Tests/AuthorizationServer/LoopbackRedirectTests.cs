using System.Net;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>RFC 8252 §7.3: a public client's loopback redirect URI matches with any port; every other redirect URI matches exactly.</summary>
public sealed class LoopbackRedirectTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    [Theory]
    [InlineData("http://127.0.0.1/callback", "http://127.0.0.1:53121/callback")]
    [InlineData("http://127.0.0.1:8080/callback", "http://127.0.0.1:61000/callback")]
    [InlineData("http://[::1]/callback", "http://[::1]:40001/callback")]
    [InlineData("http://localhost:3000/oauth/cb", "http://localhost:3001/oauth/cb")]
    public async Task ALoopbackRedirectWithAnotherPortIsAccepted(string registered, string requested)
    {
        var (clientId, _) = await RegisterApplicationAsync(Server, type: "public", redirectUris: [registered]);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, redirectUri: requested));
        var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
        Assert.Equal(requested, back.GetLeftPart(UriPartial.Path));

        // The code is bound to the redirect URI actually used.
        var code = Browser.Query(back)["code"];
        var (status, body) = await ExchangeCodeAsync(Server, clientId, null, code, verifier, requested);
        Assert.True(status == HttpStatusCode.OK, body.ToString());
    }

    [Fact]
    public async Task TheCodeOfALoopbackRedirectOnAnotherPortNeedsThatExactRedirectUriAtTheTokenEndpoint()
    {
        const string registered = "http://127.0.0.1/callback";
        const string requested = "http://127.0.0.1:53121/callback";
        var (clientId, _) = await RegisterApplicationAsync(Server, type: "public", redirectUris: [registered]);
        using var browser = await SignedInBrowserAsync(Server);

        async Task<(string Code, string Verifier)> AuthorizeOnAnotherPortAsync()
        {
            var (verifier, challenge) = Pkce();
            var back = await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge, redirectUri: requested));
            Assert.Equal(requested, back.GetLeftPart(UriPartial.Path));
            return (Browser.Query(back)["code"], verifier);
        }

        // RFC 6749 §4.1.3: sent in the authorization request, so required here, and identical: the one registered URI
        // neither stands in for it nor matches it.
        var (code, verifier) = await AuthorizeOnAnotherPortAsync();
        var (omitted, omittedBody) = await TokenAsync(Server, clientId, null, ("grant_type", "authorization_code"), ("code", code), ("code_verifier", verifier), ("client_id", clientId));
        Assert.Equal(HttpStatusCode.BadRequest, omitted);
        Assert.Equal("invalid_grant", omittedBody.GetProperty("error").GetString());

        (code, verifier) = await AuthorizeOnAnotherPortAsync();
        Assert.Equal(HttpStatusCode.BadRequest, (await ExchangeCodeAsync(Server, clientId, null, code, verifier, registered)).Status);

        (code, verifier) = await AuthorizeOnAnotherPortAsync();
        var (status, body) = await ExchangeCodeAsync(Server, clientId, null, code, verifier, requested);
        Assert.True(status == HttpStatusCode.OK, body.ToString());
    }

    [Fact]
    public async Task AConfidentialApplicationsLoopbackRedirectMatchesOnlyOnItsOwnPort()
    {
        // RFC 9700 §4.1.3: the port exception is for native apps (public clients); a web application's development
        // redirect on localhost:3000 is not also localhost:3001, where another local program may listen.
        var (clientId, _) = await RegisterApplicationAsync(Server, redirectUris: ["http://localhost:3000/oauth/cb"]);
        using var browser = await SignedInBrowserAsync(Server);
        var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge, redirectUri: "http://localhost:3001/oauth/cb"));
        Assert.Equal(new Uri(Server.BaseUrl).Authority, landed.Authority);
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains("redirect_uri", browser.LastPage);

        var back = await AuthorizeAsync(browser, AuthorizeUrl(clientId, Pkce().Challenge, redirectUri: "http://localhost:3000/oauth/cb"));
        Assert.Equal("http://localhost:3000/oauth/cb", back.GetLeftPart(UriPartial.Path));
    }

    [Fact]
    public async Task ASelfRegisteredNativeAppWithASecretKeepsAnyPortOnItsLoopbackRedirect()
    {
        // RFC 8252 §8.4: dynamic registration may give a native app a secret; it is still a native app picking its port.
        var (status, registered, response) = await ClientRegistrationTests.RegisterAsync(Server, new
        {
            client_name = "Desktop app",
            redirect_uris = new[] { "http://127.0.0.1/callback" },
            token_endpoint_auth_method = "client_secret_basic",
            grant_types = new[] { "authorization_code" },
        });
        response.Dispose();
        Assert.Equal(HttpStatusCode.Created, status);
        using var browser = await SignedInBrowserAsync(Server);
        var back = await AuthorizeAsync(browser, AuthorizeUrl(registered.GetProperty("client_id").GetString()!, Pkce().Challenge, scope: "openid",
            redirectUri: "http://127.0.0.1:50123/callback"));
        Assert.Equal("http://127.0.0.1:50123/callback", back.GetLeftPart(UriPartial.Path));
        Assert.True(Browser.Query(back).ContainsKey("code"));
    }

    [Theory]
    [InlineData("https://app.example.com:8443/callback", "https://app.example.com:9443/callback")]
    [InlineData("https://app.example.com/callback", "https://app.example.com:443/callback")]
    [InlineData("http://127.0.0.1/callback", "http://127.0.0.1:5000/other")]
    [InlineData("http://127.0.0.1/callback", "http://localhost:5000/callback")]
    [InlineData("http://127.0.0.1/callback", "https://127.0.0.1:5000/callback")]
    [InlineData("http://127.0.0.1/callback", "http://127.0.0.1:5000@evil.example/callback")]
    public async Task AnythingElseMustMatchExactly(string registered, string requested)
    {
        var (clientId, _) = await RegisterApplicationAsync(Server, type: "public", redirectUris: [registered]);
        using var browser = await SignedInBrowserAsync(Server);
        var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge, redirectUri: requested));
        // Shown on a Nexus page, never redirected (RFC 9700 §4.11: no open redirector).
        Assert.Equal(new Uri(Server.BaseUrl).Authority, landed.Authority);
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains("redirect_uri", browser.LastPage);
    }
}
