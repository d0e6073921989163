using System.Net;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>RFC 9700 (OAuth 2.0 Security Best Current Practice) server-side requirements, one test each.</summary>
public sealed class AuthorizationSecurityTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    [Theory]
    [InlineData("https://app.example.com/callback/")]
    [InlineData("https://APP.example.com/callback")]
    [InlineData("https://app.example.com/Callback")]
    [InlineData("https://app.example.com/callback?extra=1")]
    [InlineData("https://app.example.com:8443/callback")]
    [InlineData("http://app.example.com/callback")]
    public async Task RedirectUriMustMatchExactly(string variant)
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        await AssertErrorPageWithoutRedirectAsync(AuthorizeUrl(clientId, Pkce().Challenge, redirectUri: variant));
    }

    [Theory]
    [InlineData("https://evil.example/callback")]
    [InlineData("https://app.example.com.evil.example/callback")]
    [InlineData("https://app.example.com@evil.example/callback")]
    [InlineData("https://app.example.com/callback/../../evil")]
    [InlineData("//evil.example/callback")]
    [InlineData("javascript:alert(1)")]
    public async Task NeverRedirectsToUnregisteredUris(string attempt)
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        await AssertErrorPageWithoutRedirectAsync(AuthorizeUrl(clientId, Pkce().Challenge, redirectUri: attempt));
    }

    [Fact]
    public async Task UnknownClientShowsAnErrorPageInsteadOfRedirecting()
    {
        await AssertErrorPageWithoutRedirectAsync(AuthorizeUrl("nxc_unknown", Pkce().Challenge));
        await AssertErrorPageWithoutRedirectAsync("/oauth2/authorize?response_type=code&redirect_uri=" + Uri.EscapeDataString(RedirectUri));
    }

    [Fact]
    public async Task RepeatedClientIdOrRedirectUriShowsAnErrorPage()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        await AssertErrorPageWithoutRedirectAsync(AuthorizeUrl(clientId, Pkce().Challenge) + "&redirect_uri=" + Uri.EscapeDataString("https://evil.example/"));
    }

    [Theory]
    [InlineData("response_type=token", "unsupported_response_type")]
    [InlineData("scope=admin", "invalid_scope")]
    [InlineData("state=dup", "invalid_request")]
    // OpenID Connect Core §6: what a request object holds would be ignored, so it is refused (discovery says so too).
    [InlineData("request=eyJhbGciOiJub25lIn0.eyJub25jZSI6Im4ifQ.", "request_not_supported")]
    [InlineData("request_uri=https%3A%2F%2Fapp.example.com%2Fr.jwt", "request_uri_not_supported")]
    public async Task OtherErrorsGoBackToTheClientWithStateAndIss(string extra, string expected)
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var url = $"/oauth2/authorize?client_id={clientId}&redirect_uri={Uri.EscapeDataString(RedirectUri)}&state=st-1&code_challenge={Pkce().Challenge}&code_challenge_method=S256";
        url += extra.StartsWith("response_type", StringComparison.Ordinal) ? "&" + extra : "&response_type=code&" + extra;
        var back = await browser.NavigateAsync(url);
        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));
        var query = Browser.Query(back);
        Assert.Equal(expected, query["error"]);
        Assert.Equal(Server.Issuer, query["iss"]);
        Assert.StartsWith("st-1", query["state"]);
    }

    [Theory]
    [InlineData("+")]
    [InlineData("%20")]
    [InlineData("%20%20")]
    public async Task ABlankScopeIsMalformedAndGetsNoCodeEvenFromASignedInUser(string blank)
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var back = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge, scope: "") + "&scope=" + blank);

        // RFC 6749 §3.3: a scope parameter holds one or more tokens; blanks are malformed, not "no scope to consent to".
        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));
        var query = Browser.Query(back);
        Assert.Equal("invalid_scope", query["error"]);
        Assert.False(query.ContainsKey("code"));
        Assert.Equal(Server.Issuer, query["iss"]);
    }

    [Fact]
    public async Task AnApplicationWithoutScopesStillAsksForConsentBeforeItsFirstCode()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server, scopes: []);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();

        // No scope asked, none registered: the person has still not authorized the application, so no code yet.
        var silent = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "") + "&prompt=none");
        Assert.Equal("consent_required", Browser.Query(silent)["error"]);
        Assert.False(Browser.Query(silent).ContainsKey("code"));

        var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: ""));
        Assert.Equal(new Uri(Server.BaseUrl).Authority, landed.Authority);
        Assert.Contains("name=\"decision\"", browser.LastPage);
        Assert.Contains("Know which Nexus account you use", browser.LastPage);
        var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
        var (status, tokens) = await ExchangeCodeAsync(Server, clientId, secret, Browser.Query(back)["code"], verifier);
        Assert.True(status == HttpStatusCode.OK, tokens.ToString());
        Assert.False(tokens.TryGetProperty("scope", out _));

        // Once consented, the same request is answered at once.
        var again = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: ""));
        Assert.Equal(RedirectUri, again.GetLeftPart(UriPartial.Path));
        Assert.True(Browser.Query(again).ContainsKey("code"));
    }

    [Fact]
    public async Task ReplayedCodeFailsAndRevokesEveryTokenIssuedFromIt()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];
        var (status, first) = await ExchangeCodeAsync(Server, clientId, secret, code, verifier);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, first.GetProperty("access_token").GetString()!));

        var (replayStatus, replay) = await ExchangeCodeAsync(Server, clientId, secret, code, verifier);
        Assert.Equal(HttpStatusCode.BadRequest, replayStatus);
        Assert.Equal("invalid_grant", replay.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, first.GetProperty("access_token").GetString()!));
        var (refreshStatus, _) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", first.GetProperty("refresh_token").GetString()!));
        Assert.Equal(HttpStatusCode.BadRequest, refreshStatus);
    }

    [Fact]
    public async Task AUsedCodePresentedUnderAnotherClientRevokesNothing()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (otherId, otherSecret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];
        var (status, tokens) = await ExchangeCodeAsync(Server, clientId, secret, code, verifier);
        Assert.Equal(HttpStatusCode.OK, status);
        var access = tokens.GetProperty("access_token").GetString()!;

        // Whoever holds the used code, verifier included, is not its client: the victim's grant stands.
        var (strangerStatus, stranger) = await ExchangeCodeAsync(Server, otherId, otherSecret, code, verifier);
        Assert.Equal(HttpStatusCode.BadRequest, strangerStatus);
        Assert.Equal("invalid_grant", stranger.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, access));

        // The client's own replay still revokes what the code issued (RFC 6749 §4.1.2).
        Assert.Equal(HttpStatusCode.BadRequest, (await ExchangeCodeAsync(Server, clientId, secret, code, verifier)).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, access));
    }

    [Fact]
    public async Task AUsedCodeOfAPublicClientReplayedWithoutItsVerifierRevokesNothing()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server, type: "public");
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];
        var (status, tokens) = await ExchangeCodeAsync(Server, clientId, null, code, verifier);
        Assert.Equal(HttpStatusCode.OK, status);
        var access = tokens.GetProperty("access_token").GetString()!;

        // A public client's client_id is no secret: a replay without the verifier is refused and changes nothing.
        foreach (var wrong in new[] { null, Pkce().Verifier })
        {
            var (replayStatus, replay) = await ExchangeCodeAsync(Server, clientId, null, code, wrong);
            Assert.Equal(HttpStatusCode.BadRequest, replayStatus);
            Assert.Equal("invalid_grant", replay.GetProperty("error").GetString());
        }

        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, access));

        Assert.Equal(HttpStatusCode.BadRequest, (await ExchangeCodeAsync(Server, clientId, null, code, verifier)).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, access));
    }

    [Fact]
    public async Task ACodePresentedUnderAnotherClientStaysUsableByItsOwn()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (otherId, otherSecret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];

        Assert.Equal(HttpStatusCode.BadRequest, (await ExchangeCodeAsync(Server, otherId, otherSecret, code, verifier)).Status);
        var (status, tokens) = await ExchangeCodeAsync(Server, clientId, secret, code, verifier);
        Assert.True(status == HttpStatusCode.OK, tokens.ToString());
    }

    [Fact]
    public async Task ACodeRedeemedSeveralTimesAtOnceLeavesNoUsableToken()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];

        // However the requests interleave, the ones that lose are replays, and a replay revokes the winner's grant: the
        // code is marked used and its grant created in one transaction, so no replay falls between the two.
        var answers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ExchangeCodeAsync(Server, clientId, secret, code, verifier)));
        Assert.True(answers.Count(a => a.Status == HttpStatusCode.OK) <= 1);
        Assert.All(answers.Where(a => a.Status != HttpStatusCode.OK), a => Assert.Equal("invalid_grant", a.Body.GetProperty("error").GetString()));
        foreach (var (_, tokens) in answers.Where(a => a.Status == HttpStatusCode.OK))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, tokens.GetProperty("access_token").GetString()!));
            Assert.Equal(HttpStatusCode.BadRequest, (await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!))).Status);
        }
    }

    [Fact]
    public async Task CodeIsBoundToTheClientItWasIssuedTo()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        var (otherId, otherSecret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];
        var (status, body) = await ExchangeCodeAsync(Server, otherId, otherSecret, code, verifier);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task CodeIsBoundToTheRedirectUri()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server, redirectUris: [RedirectUri, "https://app.example.com/other"]);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];
        var (status, body) = await ExchangeCodeAsync(Server, clientId, secret, code, verifier, redirectUri: "https://app.example.com/other");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task ARedirectUriSentInTheAuthorizationRequestMustBeSentAgainForTheCode()
    {
        // One registered URI: the authorization request could have left it out, but it did not.
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];

        // RFC 6749 §4.1.3: REQUIRED at the token endpoint when it was included in the authorization request.
        var (status, body) = await TokenAsync(Server, clientId, secret, ("grant_type", "authorization_code"), ("code", code), ("code_verifier", verifier));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
        Assert.Contains("redirect_uri", body.GetProperty("error_description").GetString());
    }

    [Fact]
    public async Task ARedirectUriLeftOutOfTheAuthorizationRequestMayBeLeftOutForTheCode()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var url = $"/oauth2/authorize?response_type=code&client_id={clientId}&state=s&scope=openid&code_challenge={challenge}&code_challenge_method=S256";
        var back = await AuthorizeAsync(browser, url);
        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));

        var (status, body) = await TokenAsync(Server, clientId, secret, ("grant_type", "authorization_code"), ("code", Browser.Query(back)["code"]), ("code_verifier", verifier));
        Assert.True(status == HttpStatusCode.OK, body.ToString());

        // Sent anyway, it must be the one the code went to.
        var other = Browser.Query(await AuthorizeAsync(browser, url))["code"];
        var (wrongStatus, wrong) = await TokenAsync(Server, clientId, secret, ("grant_type", "authorization_code"), ("code", other), ("code_verifier", verifier),
            ("redirect_uri", "https://app.example.com/elsewhere"));
        Assert.Equal(HttpStatusCode.BadRequest, wrongStatus);
        Assert.Equal("invalid_grant", wrong.GetProperty("error").GetString());
    }

    [Fact]
    public async Task PublicClientWithoutPkceIsRefused()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server, type: "public");
        using var browser = await SignedInBrowserAsync(Server);
        var back = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge: null));
        Assert.Equal("invalid_request", Browser.Query(back)["error"]);
        Assert.Contains("PKCE", Browser.Query(back)["error_description"]);
    }

    [Theory]
    [InlineData("plain")]
    [InlineData("S512")]
    public async Task PlainAndUnknownChallengeMethodsAreRefused(string method)
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, _) = Pkce();
        var back = await browser.NavigateAsync($"/oauth2/authorize?response_type=code&client_id={clientId}&redirect_uri={Uri.EscapeDataString(RedirectUri)}&state=s&code_challenge={verifier}&code_challenge_method={method}");
        Assert.Equal("invalid_request", Browser.Query(back)["error"]);
    }

    [Fact]
    public async Task WrongOrMissingVerifierIsRefused()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (_, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];
        var (status, body) = await ExchangeCodeAsync(Server, clientId, secret, code, Pkce().Verifier);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());

        var code2 = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];
        var (missingStatus, missing) = await ExchangeCodeAsync(Server, clientId, secret, code2, verifier: null);
        Assert.Equal(HttpStatusCode.BadRequest, missingStatus);
        Assert.Equal("invalid_grant", missing.GetProperty("error").GetString());
    }

    [Fact]
    public async Task VerifierWithoutChallengeIsADowngradeAndIsRefused()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge: null)))["code"];
        var (status, body) = await ExchangeCodeAsync(Server, clientId, secret, code, Pkce().Verifier);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task ReusedRefreshTokenRevokesTheWholeFamily()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();
        var rt1 = tokens.GetProperty("refresh_token").GetString()!;
        var (_, second) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", rt1));
        var rt2 = second.GetProperty("refresh_token").GetString()!;
        var at2 = second.GetProperty("access_token").GetString()!;
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, at2));

        // An attacker replays the old token: it fails, and so does everything descended from the grant.
        var (replayStatus, replay) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", rt1));
        Assert.Equal(HttpStatusCode.BadRequest, replayStatus);
        Assert.Equal("invalid_grant", replay.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, (await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", rt2))).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, at2));
    }

    [Theory]
    [InlineData("scope", "openid phone")]
    [InlineData("resource", "https://elsewhere.example/api")]
    public async Task AUsedRefreshTokenPresentedWithAWiderScopeOrAnotherResourceIsStillAReplayThatRevokesTheGrant(string parameter, string value)
    {
        // RFC 9700 §4.14.2: the checks made before a token is spent must not answer for a used one (invalid_scope or
        // invalid_target instead of the replay that revokes the grant, and tell whether the token is known).
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();
        var rt1 = tokens.GetProperty("refresh_token").GetString()!;
        var (_, second) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", rt1));
        var at2 = second.GetProperty("access_token").GetString()!;

        var (replayStatus, replay) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", rt1), (parameter, value));
        Assert.Equal(HttpStatusCode.BadRequest, replayStatus);
        Assert.Equal("invalid_grant", replay.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, at2));
        Assert.Equal(HttpStatusCode.BadRequest, (await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", second.GetProperty("refresh_token").GetString()!))).Status);
    }

    [Fact]
    public async Task RefreshTokenOfAnotherClientIsRefused()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (otherId, otherSecret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();
        var (status, _) = await TokenAsync(Server, otherId, otherSecret, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        // The rightful owner is unaffected.
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!))).Status);
    }

    [Fact]
    public async Task IntrospectionShowsTokensOnlyToTheirClientOrAResourceServer()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();
        var access = tokens.GetProperty("access_token").GetString()!;

        var (strangerId, strangerSecret) = await Server.CreateAppClientAsync(["read"]);
        Assert.False((await IntrospectAsync(Server, strangerId, strangerSecret, access)).GetProperty("active").GetBoolean());

        var (resourceServerId, resourceServerSecret) = await Server.CreateAppClientAsync(["nexus:introspect"]);
        var seen = await IntrospectAsync(Server, resourceServerId, resourceServerSecret, access);
        Assert.True(seen.GetProperty("active").GetBoolean());
        Assert.Equal(clientId, seen.GetProperty("client_id").GetString());

        Assert.False((await IntrospectAsync(Server, resourceServerId, resourceServerSecret, "garbage")).GetProperty("active").GetBoolean());
    }

    [Fact]
    public async Task IntrospectionRequiresClientAuthentication()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/introspect") { Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = "x" }) };
        using var response = await Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("invalid_request", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RevokingAClientCredentialsTokenMakesItUnacceptable()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        var token = await Server.IssueTokenAsync(id, secret);
        var revoke = new HttpRequestMessage(HttpMethod.Post, "/oauth2/revoke") { Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = token }) };
        revoke.Headers.Authorization = NexusTestServer.Basic(id, secret);
        Assert.Equal(HttpStatusCode.OK, (await Server.Http.SendAsync(revoke)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, token));
    }

    private async Task AssertErrorPageWithoutRedirectAsync(string url)
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(Server.BaseUrl) };
        using var response = await http.GetAsync(url);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Null(response.Headers.Location);
        Assert.StartsWith("text/html", response.Content.Headers.ContentType?.ToString());
    }
}
