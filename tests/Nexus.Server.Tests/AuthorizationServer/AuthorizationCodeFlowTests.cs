using System.Net;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>The authorization code flow end to end over HTTP: sign-in form, consent form, redirect, exchange, refresh, userinfo, introspect, revoke.</summary>
public sealed class AuthorizationCodeFlowTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    [Fact]
    public async Task TheConsentPageSaysTheApplicationKeepsAccessWhenItWillGetARefreshTokenWithoutAskingForOfflineAccess()
    {
        const string KeepsAccess = "Keep access while you are not using it";
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "openid email"));

        // The application may refresh, so it gets a refresh token: the person is told, though it did not ask for offline_access.
        Assert.Contains(KeepsAccess, browser.LastPage);
        var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
        var (_, tokens) = await ExchangeCodeAsync(Server, clientId, secret, Browser.Query(back)["code"], verifier);
        Assert.True(tokens.TryGetProperty("refresh_token", out _), tokens.ToString());

        // A client that may not refresh (it registered authorization_code alone) is not said to keep access.
        var (status, registered, _) = await ClientRegistrationTests.RegisterAsync(Server, new
        {
            client_name = "No refresh", redirect_uris = new[] { RedirectUri }, grant_types = new[] { "authorization_code" }, token_endpoint_auth_method = "none",
        });
        Assert.True(status == HttpStatusCode.Created, registered.ToString());
        await browser.NavigateAsync(AuthorizeUrl(registered.GetProperty("client_id").GetString()!, Pkce().Challenge, scope: "openid email"));
        Assert.Contains("See your email address", browser.LastPage);
        Assert.DoesNotContain(KeepsAccess, browser.LastPage);
    }

    [Fact]
    public async Task CompletesTheWholeFlowFromSignInToRevocation()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var email = NewEmail();
        using var browser = new Browser(Server);
        await browser.SignUpAsync(email, Password);
        await browser.NavigateAsync("/"); // sign out through the form, to start from a signed-out browser
        await browser.SubmitAsync("/account/signout");

        // Not signed in: Nexus sends the user to its sign-in page and brings them back.
        var (verifier, challenge) = Pkce();
        var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge));
        Assert.Equal("/account/signin", landed.AbsolutePath);
        await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = Password });

        // The consent page names the application and the permissions in plain words.
        Assert.Contains("Sample App", browser.LastPage);
        Assert.Contains("See your email address", browser.LastPage);
        var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });

        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));
        var query = Browser.Query(back);
        Assert.Equal("st-123", query["state"]);
        Assert.Equal(Server.Issuer, query["iss"]); // RFC 9207
        var (status, tokens) = await ExchangeCodeAsync(Server, clientId, secret, query["code"], verifier);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Bearer", tokens.GetProperty("token_type").GetString());
        Assert.Equal("openid profile email offline_access", tokens.GetProperty("scope").GetString());
        var access = tokens.GetProperty("access_token").GetString()!;
        var refresh = tokens.GetProperty("refresh_token").GetString()!;

        // The ID token verifies with a standard library against the JWKS and carries the nonce.
        var jwks = new JsonWebKeySet(await Server.Http.GetStringAsync("/oauth2/jwks"));
        var id = await new JsonWebTokenHandler().ValidateTokenAsync(tokens.GetProperty("id_token").GetString(), new TokenValidationParameters
        {
            ValidIssuer = Server.Issuer,
            ValidAudience = clientId,
            IssuerSigningKeys = jwks.GetSigningKeys(),
            ValidAlgorithms = ["RS256"],
        });
        Assert.True(id.IsValid, id.Exception?.ToString());
        Assert.Equal("n-456", id.Claims["nonce"]);
        Assert.Equal(email, id.Claims["email"]);
        var userId = id.Claims["sub"].ToString();

        // The access token is an RFC 9068 token for the user.
        var validated = await AccessTokenTests.ValidateWithIdentityModelAsync(Server, access);
        Assert.True(validated.IsValid);
        Assert.Equal(userId, ((JsonWebToken)validated.SecurityToken).Subject);
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, access));

        // userinfo.
        var userInfoRequest = new HttpRequestMessage(HttpMethod.Get, "/oauth2/userinfo");
        userInfoRequest.Headers.Authorization = new("Bearer", access);
        var userInfo = JsonDocument.Parse(await (await Server.Http.SendAsync(userInfoRequest)).Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(userId, userInfo.GetProperty("sub").GetString());
        Assert.Equal(email, userInfo.GetProperty("email").GetString());

        // Refresh rotates the refresh token.
        var (refreshStatus, refreshed) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh));
        Assert.Equal(HttpStatusCode.OK, refreshStatus);
        var refresh2 = refreshed.GetProperty("refresh_token").GetString()!;
        Assert.NotEqual(refresh, refresh2);

        // Introspection by the owning client.
        var introspected = await IntrospectAsync(Server, clientId, secret!, refreshed.GetProperty("access_token").GetString()!);
        Assert.True(introspected.GetProperty("active").GetBoolean());
        Assert.Equal(userId, introspected.GetProperty("sub").GetString());
        Assert.True((await IntrospectAsync(Server, clientId, secret!, refresh2)).GetProperty("active").GetBoolean());

        // Revoking the refresh token revokes the grant and every access token issued from it.
        var revoke = new HttpRequestMessage(HttpMethod.Post, "/oauth2/revoke") { Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = refresh2, ["token_type_hint"] = "refresh_token" }) };
        revoke.Headers.Authorization = NexusTestServer.Basic(clientId, secret!);
        Assert.Equal(HttpStatusCode.OK, (await Server.Http.SendAsync(revoke)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, access));
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, refreshed.GetProperty("access_token").GetString()!));
        Assert.False((await IntrospectAsync(Server, clientId, secret!, refreshed.GetProperty("access_token").GetString()!)).GetProperty("active").GetBoolean());
        Assert.Equal(HttpStatusCode.BadRequest, (await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh2))).Status);
    }

    [Fact]
    public async Task RemembersConsentAndDoesNotAskAgain()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (_, browser) = await CompleteFlowAsync(Server, clientId, secret);
        using (browser)
        {
            var (_, challenge) = Pkce();
            var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge));
            Assert.Equal(RedirectUri, landed.GetLeftPart(UriPartial.Path));
            Assert.True(Browser.Query(landed).ContainsKey("code"));

            // prompt=consent asks again even so.
            await browser.NavigateAsync(AuthorizeUrl(clientId, challenge) + "&prompt=consent");
            Assert.Contains("name=\"decision\"", browser.LastPage);
        }
    }

    [Theory]
    [InlineData("http://127.0.0.1/callback", "http://127.0.0.1:49999/callback", false)]
    [InlineData("com.example.app:/oauth/callback", "com.example.app:/oauth/callback", false)]
    [InlineData(RedirectUri, RedirectUri, true)]
    public async Task APublicClientIsAskedEachTimeUnlessItsRedirectCanOnlyReachIt(string registered, string requested, bool remembered)
    {
        // RFC 8252 §8.6: any app on the device can listen on a loopback port or claim a private-use scheme, and send the
        // person's browser here with a public client's id; a consent on record then stands for nobody in particular.
        var (clientId, _) = await RegisterApplicationAsync(Server, type: "public", redirectUris: [registered]);
        using var browser = await SignedInBrowserAsync(Server);
        var first = await AuthorizeAsync(browser, AuthorizeUrl(clientId, Pkce().Challenge, redirectUri: requested));
        Assert.True(Browser.Query(first).ContainsKey("code"), first.ToString());

        var again = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge, redirectUri: requested));
        Assert.Equal(remembered, Browser.Query(again).ContainsKey("code"));
        Assert.Equal(!remembered, browser.LastPage.Contains("name=\"decision\"", StringComparison.Ordinal));

        var silent = Browser.Query(await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge, redirectUri: requested) + "&prompt=none"));
        Assert.Equal(remembered ? null : "consent_required", silent.GetValueOrDefault("error"));
    }

    [Fact]
    public async Task DenyingConsentReturnsAccessDenied()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var back = await AuthorizeAsync(browser, AuthorizeUrl(clientId, Pkce().Challenge), allow: false);
        var query = Browser.Query(back);
        Assert.Equal("access_denied", query["error"]);
        Assert.Equal("st-123", query["state"]);
        Assert.Equal(Server.Issuer, query["iss"]);
    }

    [Fact]
    public async Task PublicClientCompletesTheFlowWithPkceAndNoSecret()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server, type: "public");
        Assert.Null(secret);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, null);
        browser.Dispose();
        Assert.False(string.IsNullOrEmpty(tokens.GetProperty("access_token").GetString()));
        var (status, _) = await TokenAsync(Server, clientId, null, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!), ("client_id", clientId));
        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task NarrowsScopesOnRefreshButNeverWidensThem()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret, scope: "openid email offline_access");
        browser.Dispose();
        var refresh = tokens.GetProperty("refresh_token").GetString()!;

        var (wideStatus, wide) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "openid profile"));
        Assert.Equal(HttpStatusCode.BadRequest, wideStatus);
        Assert.Equal("invalid_scope", wide.GetProperty("error").GetString());

        // The refused widening did not spend the token.
        var (status, narrowed) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "openid"));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("openid", narrowed.GetProperty("scope").GetString());

        // The next refresh may ask for the original scope again.
        var (againStatus, again) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", narrowed.GetProperty("refresh_token").GetString()!));
        Assert.Equal(HttpStatusCode.OK, againStatus);
        Assert.Equal("openid email offline_access", again.GetProperty("scope").GetString());
    }

    [Fact]
    public async Task ScopesAnAdministratorTakesFromAnApplicationLeaveItsGrantsAtTheirNextRefresh()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret, scope: "openid email offline_access");
        browser.Dispose();

        // RFC 6749 §3.3 and §6: a refresh issues no scope the application may no longer have, and says so in scope.
        await Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/applications/{clientId}", new { scopes = new[] { "openid", "offline_access" } });

        // Asking for the removed scope by name is refused before the token is spent (else the token would come without it).
        var (askedStatus, asked) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!), ("scope", "email"));
        Assert.Equal(HttpStatusCode.BadRequest, askedStatus);
        Assert.Equal("invalid_scope", asked.GetProperty("error").GetString());

        var (status, narrowed) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("openid offline_access", narrowed.GetProperty("scope").GetString());
        Assert.Equal("openid offline_access", new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(narrowed.GetProperty("access_token").GetString()!).GetPayloadValue<string>("scope"));

        // Nothing of the grant left: the grant ends.
        await Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/applications/{clientId}", new { scopes = new[] { "profile" } });
        var (endedStatus, ended) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", narrowed.GetProperty("refresh_token").GetString()!));
        Assert.Equal(HttpStatusCode.BadRequest, endedStatus);
        Assert.Equal("invalid_grant", ended.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(Server, narrowed.GetProperty("access_token").GetString()!));
    }

    [Fact]
    public async Task ABlankScopeOnARefreshIsMalformedAndDoesNotSpendTheToken()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        browser.Dispose();
        var refresh = tokens.GetProperty("refresh_token").GetString()!;

        var (blankStatus, blank) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "  "));
        Assert.Equal(HttpStatusCode.BadRequest, blankStatus);
        Assert.Equal("invalid_scope", blank.GetProperty("error").GetString());

        var (status, refreshed) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("openid profile email offline_access", refreshed.GetProperty("scope").GetString());
    }

    [Fact]
    public async Task CodeExpiresAfterSixtySeconds()
    {
        await using var db = await TestDatabase.CreateAsync();
        var time = new OffsetTimeProvider();
        await using var server = await NexusTestServer.StartAsync(db, time: time);
        var (clientId, secret) = await RegisterApplicationAsync(server);
        using var browser = await SignedInBrowserAsync(server);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];
        time.Advance(TimeSpan.FromSeconds(61));
        var (status, body) = await ExchangeCodeAsync(server, clientId, secret, code, verifier);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task PromptNoneWithoutSessionAnswersLoginRequired()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = new Browser(Server);
        var back = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge) + "&prompt=none");
        Assert.Equal("login_required", Browser.Query(back)["error"]);
    }

    [Theory]
    [InlineData("none%20login", false)]
    [InlineData("consent%20none", true)]
    [InlineData("none%20select_account", true)]
    public async Task PromptNoneWithAnyOtherValueIsAnInvalidRequest(string prompt, bool signedIn)
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = signedIn ? await SignedInBrowserAsync(Server) : new Browser(Server);
        var back = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge) + "&prompt=" + prompt);

        // OIDC Core §3.1.2.1: an error, sent back to the client, whether or not someone is signed in.
        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));
        var query = Browser.Query(back);
        Assert.Equal("invalid_request", query["error"]);
        Assert.Contains("prompt", query["error_description"]);
        Assert.Equal("st-123", query["state"]);
        Assert.False(query.ContainsKey("code"));
    }

    [Fact]
    public async Task LogoutReturnsOnlyToRegisteredPostLogoutUris()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server, postLogout: ["https://app.example.com/signed-out"]);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        using (browser)
        {
            var idToken = tokens.GetProperty("id_token").GetString()!;
            var back = await browser.NavigateAsync($"/oauth2/logout?id_token_hint={idToken}&post_logout_redirect_uri={Uri.EscapeDataString("https://app.example.com/signed-out")}&state=bye");
            Assert.Equal("https://app.example.com/signed-out?state=bye", back.ToString());

            // The session is gone: authorizing again requires signing in.
            Assert.Equal("/account/signin", (await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge))).AbsolutePath);

            var stay = await browser.NavigateAsync($"/oauth2/logout?client_id={clientId}&post_logout_redirect_uri={Uri.EscapeDataString("https://evil.example/")}");
            Assert.Equal(Server.BaseUrl, stay.GetLeftPart(UriPartial.Authority));
            Assert.Contains("signed out", browser.LastPage, StringComparison.OrdinalIgnoreCase);
        }
    }
}
