using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Accounts;

/// <summary>
/// Sign-in through an upstream OpenID Connect provider. The upstream is a second, real Nexus (its own
/// authorization server), reached as "localhost" so that the two servers' cookies stay apart.
/// </summary>
public sealed class UpstreamSignInTests
{
    /// <summary>The upstream (a second Nexus, reached as "localhost"), with Nexus registered there, and Nexus signing in through it.</summary>
    private sealed class Pair : IAsyncDisposable
    {
        private readonly List<IAsyncDisposable> owned = [];

        public NexusTestServer Upstream { get; private set; } = null!;

        public NexusTestServer Nexus { get; private set; } = null!;

        public static async Task<Pair> StartAsync()
        {
            var pair = new Pair();
            try
            {
                var upstreamDb = pair.Own(await TestDatabase.CreateAsync());
                var db = pair.Own(await TestDatabase.CreateAsync());
                pair.Upstream = pair.Own(await NexusTestServer.StartAsync(upstreamDb, s => s["BASE_URL"] = s["BASE_URL"]!.Replace("127.0.0.1", "localhost", StringComparison.Ordinal)));
                var (clientId, secret) = await RegisterApplicationAsync(pair.Upstream, redirectUris: ["http://127.0.0.1:1/placeholder"], scopes: ["openid", "email", "profile"]);
                pair.Nexus = pair.Own(await NexusTestServer.StartAsync(db, s =>
                {
                    s["Nexus:Upstream:Issuer"] = pair.Upstream.Issuer;
                    s["Nexus:Upstream:ClientId"] = clientId;
                    s["Nexus:Upstream:ClientSecret"] = secret;
                    s["Nexus:Upstream:DisplayName"] = "Acme SSO";
                }));
                await pair.Upstream.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/applications/{clientId}", new { redirect_uris = new[] { pair.Nexus.Issuer + "/account/external/callback" } });
                return pair;
            }
            catch
            {
                await pair.DisposeAsync();
                throw;
            }
        }

        private T Own<T>(T disposable) where T : IAsyncDisposable
        {
            owned.Add(disposable);
            return disposable;
        }

        /// <summary>Servers before their databases, Nexus before its upstream.</summary>
        public async ValueTask DisposeAsync()
        {
            for (var i = owned.Count - 1; i >= 0; i--)
            {
                await owned[i].DisposeAsync();
            }
        }
    }

    /// <summary>
    /// "Sign in with Acme SSO": from Nexus to the upstream's sign-in page, the person's password there, the upstream's
    /// consent for Nexus, and back; returns where the browser landed.
    /// </summary>
    private static async Task<Uri> SignInUpstreamAsync(Browser browser, string email, string returnUrl = "/")
    {
        await browser.NavigateAsync("/account/external/start?returnUrl=" + Uri.EscapeDataString(returnUrl), followForeign: true);
        return await PasswordAtUpstreamAsync(browser, email);
    }

    /// <summary>On the upstream's sign-in page: the person's password there, the upstream's consent if it asks, and back.</summary>
    private static async Task<Uri> PasswordAtUpstreamAsync(Browser browser, string email)
    {
        var landed = await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = Password }, followForeign: true);
        // The upstream asks for consent once per person: a second sign-in comes straight back.
        return Browser.Forms(browser.LastPage).Any(f => f.Action.EndsWith("/oauth2/authorize", StringComparison.Ordinal))
            ? await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" }, followForeign: true)
            : landed;
    }

    [Theory]
    [InlineData("unreachable")]
    [InlineData("another issuer")]
    [InlineData("a discovery document without authorization_endpoint")]
    [InlineData("keys that are no key set")]
    [InlineData("a token endpoint that is no http URL")]
    [InlineData("a token answer that is not JSON")]
    [InlineData("no id_token")]
    [InlineData("an id_token that is not a string")]
    [InlineData("a token answer over 1 MB")]
    [InlineData("a signed id_token without sub")]
    public async Task AnUpstreamThatCannotBeReachedOrAnswersInAnotherShapeIsAPageSayingSoNotAServerError(string failure)
    {
        // A stand-in for the upstream whose answers the test writes; its authorization endpoint sends the browser straight back.
        await using var fake = await RemoteMcp.FakeMcpServer.StartAsync();
        using var ec = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var key = new ECDsaSecurityKey(ec) { KeyId = "upstream-key" };
        var jwk = JsonWebKeyConverter.ConvertFromECDsaSecurityKey(key);
        var nonce = "";

        var issuer = failure == "unreachable" ? "http://127.0.0.1:1" : fake.BaseUrl;
        string IdToken(bool withSubject)
        {
            var claims = new Dictionary<string, object> { ["nonce"] = nonce, ["email"] = "someone@example.com", ["email_verified"] = true };
            if (withSubject)
            {
                claims["sub"] = "upstream-person";
            }

            return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
            {
                Issuer = issuer,
                Audience = "nexus",
                Claims = claims,
                SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.EcdsaSha256),
            });
        }

        fake.Routes["/.well-known/openid-configuration"] = c => c.Response.WriteAsJsonAsync(new Dictionary<string, string?>
        {
            ["issuer"] = failure == "another issuer" ? "https://elsewhere.example" : issuer,
            ["authorization_endpoint"] = failure == "a discovery document without authorization_endpoint" ? null : issuer + "/authorize",
            ["token_endpoint"] = failure == "a token endpoint that is no http URL" ? "/token" : issuer + "/token",
            ["jwks_uri"] = issuer + "/jwks",
        });
        fake.Routes["/jwks"] = c => failure == "keys that are no key set" ? c.Response.WriteAsync("[1, 2]")
            : c.Response.WriteAsJsonAsync(new { keys = new[] { new { kty = jwk.Kty, crv = jwk.Crv, x = jwk.X, y = jwk.Y, kid = jwk.Kid, use = "sig", alg = "ES256" } } });
        fake.Routes["/authorize"] = c =>
        {
            nonce = c.Request.Query["nonce"].ToString();
            c.Response.Redirect($"{c.Request.Query["redirect_uri"]}?code=a-code&state={Uri.EscapeDataString(c.Request.Query["state"].ToString())}");
            return Task.CompletedTask;
        };
        fake.Routes["/token"] = c => failure switch
        {
            "a token answer that is not JSON" => c.Response.WriteAsync("<html>maintenance</html>"),
            "no id_token" => c.Response.WriteAsJsonAsync(new { access_token = "at", token_type = "Bearer" }),
            // A right answer but for its size: only the limit refuses it.
            "a token answer over 1 MB" => c.Response.WriteAsJsonAsync(new { access_token = new string('a', 1024 * 1024), id_token = IdToken(withSubject: true) }),
            // Signed by the upstream's key, for Nexus, with the sign-in's nonce: everything but the subject is right.
            "a signed id_token without sub" => c.Response.WriteAsJsonAsync(new { id_token = IdToken(withSubject: false) }),
            _ => c.Response.WriteAsJsonAsync(new { id_token = 5 }),
        };
        await using var db = await TestDatabase.CreateAsync();
        await using var nexus = await NexusTestServer.StartAsync(db, s =>
        {
            s["Nexus:Upstream:Issuer"] = issuer;
            s["Nexus:Upstream:ClientId"] = "nexus";
            s["Nexus:Upstream:ClientSecret"] = "a secret";
            s["Nexus:Upstream:DisplayName"] = "Acme SSO";
        });

        using var browser = new Browser(nexus);
        await browser.NavigateAsync("/account/external/start?returnUrl=%2F", followForeign: true);
        Assert.Equal(HttpStatusCode.BadGateway, browser.LastStatus);
        Assert.Contains(failure == "a signed id_token without sub" ? "The identity token from Acme SSO names no subject."
            : "Acme SSO could not be reached, or answered in a way Nexus cannot use", browser.LastPage, StringComparison.Ordinal);
        Assert.Equal(failure is "unreachable" or "another issuer" or "a discovery document without authorization_endpoint" or "keys that are no key set"
            or "a token endpoint that is no http URL" ? 0 : 1,
            fake.Hits.GetValueOrDefault("/token"));
    }

    [Fact]
    public async Task AnAuthorizationEndpointWithAQueryOfItsOwnKeepsItBesideTheSignInsParameters()
    {
        // Azure AD B2C names its policy in the endpoint's query (RFC 6749 §3.1 allows one).
        await using var fake = await RemoteMcp.FakeMcpServer.StartAsync();
        var issuer = fake.BaseUrl;
        fake.Routes["/.well-known/openid-configuration"] = c => c.Response.WriteAsJsonAsync(new
        {
            issuer, authorization_endpoint = issuer + "/authorize?p=B2C_1_signin", token_endpoint = issuer + "/token", jwks_uri = issuer + "/jwks",
        });
        fake.Routes["/jwks"] = c => c.Response.WriteAsJsonAsync(new { keys = Array.Empty<object>() });
        var asked = new TaskCompletionSource<Microsoft.AspNetCore.Http.IQueryCollection>(TaskCreationOptions.RunContinuationsAsynchronously);
        fake.Routes["/authorize"] = c =>
        {
            asked.TrySetResult(c.Request.Query);
            return c.Response.WriteAsync("the upstream's sign-in page");
        };
        await using var db = await TestDatabase.CreateAsync();
        await using var nexus = await NexusTestServer.StartAsync(db, s =>
        {
            s["Nexus:Upstream:Issuer"] = issuer;
            s["Nexus:Upstream:ClientId"] = "nexus";
            s["Nexus:Upstream:ClientSecret"] = "a secret";
        });

        using var browser = new Browser(nexus);
        await browser.NavigateAsync("/account/external/start?returnUrl=%2F", followForeign: true);
        var query = await asked.Task;
        Assert.Equal(("B2C_1_signin", "code", "nexus"), (query["p"].ToString(), query["response_type"].ToString(), query["client_id"].ToString()));
    }

    [Fact]
    public async Task SignsInThroughTheUpstreamAndLinksTheAccountByVerifiedEmail()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        // The upstream vouches for the address (admin-created accounts count as verified).
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        // The same person already has a Nexus account with that email: it must be linked, not duplicated.
        await nexus.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = "another local password" }, HttpStatusCode.Created);

        using var browser = new Browser(nexus);
        await browser.NavigateAsync("/account/signin");
        Assert.Contains("Sign in with Acme SSO", browser.LastPage);
        var landed = await browser.NavigateAsync("/account/external/start?returnUrl=%2F", followForeign: true);
        Assert.Equal("localhost", landed.Host); // the upstream's sign-in page
        await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = Password }, followForeign: true);
        var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" }, followForeign: true);

        // returnUrl "/" lands on My connections (issue 19: signing in never ends on a dead-end page).
        Assert.Equal(nexus.BaseUrl + "/dashboard", back.ToString());
        Assert.Contains(email, browser.LastPage);
        var users = await nexus.AdminJsonAsync(HttpMethod.Get, "/v1/admin/users");
        Assert.Single(users.GetProperty("users").EnumerateArray(), u => u.GetProperty("email").GetString() == email);
    }

    [Fact]
    public async Task ASessionFromTheUpstreamIsNotSentToChangeATemporaryNexusPassword()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        var created = await nexus.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = "another local password" }, HttpStatusCode.Created);
        using (var scope = nexus.Services.CreateScope())
        {
            var users = scope.ServiceProvider.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<Nexus.Server.Accounts.NexusUser>>();
            var (_, temporary) = await Nexus.Server.Accounts.UserAdministration.ResetPasswordAsync(users,
                nexus.Services.GetRequiredService<Nexus.Server.Accounts.SessionValidator>(), nexus.Services.GetRequiredService<Nexus.Server.Accounts.IAccountGrants>(),
                created.GetProperty("id").GetString()!, DateTimeOffset.UtcNow);
            Assert.NotNull(temporary);
        }

        using var browser = new Browser(nexus);
        var back = await SignInUpstreamAsync(browser, email, "/dashboard");

        // The upstream vouched for the person; the Nexus password they never used is theirs to change or not.
        Assert.Equal(nexus.BaseUrl + "/dashboard", back.ToString());
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);
    }

    [Fact]
    public async Task ASignInTheUpstreamLetThroughOnItsOwnSessionKeepsTheUpstreamsAuthTime()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        using var browser = new Browser(nexus);
        await SignInUpstreamAsync(browser, email);
        var authenticated = upstream.Time.GetUtcNow().ToUnixTimeSeconds();

        // An hour on, signed out of Nexus but not of the upstream: its single sign-on lets the person through unasked.
        upstream.Time.Advance(TimeSpan.FromHours(1));
        nexus.Time.Advance(TimeSpan.FromHours(1));
        await browser.NavigateAsync("/");
        await browser.SubmitAsync("/account/signout");
        var back = await browser.NavigateAsync("/account/external/start?returnUrl=%2F", followForeign: true);
        Assert.Equal(nexus.BaseUrl + "/dashboard", back.ToString());

        // An application's ID token says when the person authenticated: at the upstream, an hour ago.
        var (clientId, secret) = await RegisterApplicationAsync(nexus);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge)))["code"];
        var (status, tokens) = await ExchangeCodeAsync(nexus, clientId, secret, code, verifier);
        Assert.Equal(HttpStatusCode.OK, status);
        var authTime = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(tokens.GetProperty("id_token").GetString()).GetPayloadValue<long>("auth_time");
        Assert.InRange(authTime, authenticated - 2, authenticated + 2);
    }

    [Theory]
    [InlineData("&prompt=login")]
    [InlineData("&max_age=600")]
    public async Task AnApplicationThatAsksForAFreshSignInHasTheUpstreamAskThePersonAgain(string demand)
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        using var browser = new Browser(nexus);
        await SignInUpstreamAsync(browser, email);

        // An hour on, signed in to both: an application asks for a fresh sign-in (or one at most ten minutes old).
        upstream.Time.Advance(TimeSpan.FromHours(1));
        nexus.Time.Advance(TimeSpan.FromHours(1));
        var (clientId, secret) = await RegisterApplicationAsync(nexus);
        var (verifier, challenge) = Pkce();
        var signInPage = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge) + demand);
        Assert.Equal("/account/signin", signInPage.AbsolutePath);
        var start = System.Net.WebUtility.HtmlDecode(System.Text.RegularExpressions.Regex.Match(browser.LastPage, "href=\"(/account/external/start\\?[^\"]+)\"").Groups[1].Value);
        Assert.Contains(demand, start, StringComparison.Ordinal);

        // The upstream is asked the same: its single sign-on does not let the person through, it asks for the password.
        var atUpstream = await browser.NavigateAsync(start, followForeign: true);
        Assert.Equal((new Uri(upstream.Issuer).Authority, "/account/signin"), (atUpstream.Authority, atUpstream.AbsolutePath));
        var authenticated = upstream.Time.GetUtcNow().ToUnixTimeSeconds();
        var back = await PasswordAtUpstreamAsync(browser, email);

        // The ID token says the person authenticated now, at the upstream.
        var (status, tokens) = await ExchangeCodeAsync(nexus, clientId, secret, Browser.Query(back)["code"], verifier);
        Assert.Equal(HttpStatusCode.OK, status);
        var authTime = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(tokens.GetProperty("id_token").GetString()).GetPayloadValue<long>("auth_time");
        Assert.InRange(authTime, authenticated - 2, authenticated + 2);
    }

    [Theory]
    [InlineData("&prompt=login")]
    [InlineData("&max_age=600")]
    public async Task AnUpstreamAnswerOlderThanTheApplicationAskedForIsRefusedNotVouchedFor(string demand)
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);

        // The upstream's clock is two hours behind Nexus's: the auth_time it sends reads as two hours old, as an
        // upstream's would that ignored the demand and let the person through on an old session.
        nexus.Time.Advance(TimeSpan.FromHours(2));
        using var browser = new Browser(nexus);
        await browser.NavigateAsync("/account/external/start?returnUrl=%2Fdashboard" + demand, followForeign: true);
        await PasswordAtUpstreamAsync(browser, email);

        Assert.Equal(HttpStatusCode.Unauthorized, browser.LastStatus);
        Assert.Contains("Sign in again", browser.LastPage, StringComparison.Ordinal);
        // Not signed in: Nexus did not vouch for an authentication the application asked to be newer.
        await browser.NavigateAsync("/dashboard");
        Assert.Equal("/account/signin", browser.CurrentUri.AbsolutePath);
    }

    [Fact]
    public async Task OnlyLoginSelectAccountAndAWholeMaxAgeArePassedOnToTheUpstream()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        using var browser = new Browser(nexus);
        await browser.NavigateAsync("/account/external/start?returnUrl=%2F&prompt=none%20consent%20login%20bogus&max_age=-5");
        var sent = Browser.Query(new Uri(browser.LastLocation!));
        Assert.Equal("login", sent["prompt"]);
        Assert.False(sent.ContainsKey("max_age"));

        await browser.NavigateAsync("/account/external/start?returnUrl=%2F&prompt=consent&max_age=1x");
        sent = Browser.Query(new Uri(browser.LastLocation!));
        Assert.False(sent.ContainsKey("prompt"));
        Assert.False(sent.ContainsKey("max_age"));

        await browser.NavigateAsync("/account/external/start?returnUrl=%2F&prompt=select_account&max_age=0");
        sent = Browser.Query(new Uri(browser.LastLocation!));
        Assert.Equal(("select_account", "0"), (sent["prompt"], sent["max_age"]));
    }

    [Fact]
    public async Task AWrongPasswordKeepsWhatTheApplicationAskedForTheUpstreamLink()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        using var browser = new Browser(nexus);
        await browser.NavigateAsync("/account/signin?returnUrl=%2Fdashboard&prompt=login&max_age=60");
        await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = NewEmail(), ["password"] = "wrong password" });
        Assert.Equal(HttpStatusCode.Unauthorized, browser.LastStatus);
        Assert.Contains("/account/external/start?returnUrl=%2Fdashboard&amp;prompt=login&amp;max_age=60", browser.LastPage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnAccountThatSignsInOnlyThroughTheUpstreamIsOfferedNoPasswordToChange()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        // No Nexus account yet and sign-up open: the upstream sign-in creates one, without a password.
        var email = NewEmail();
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        using var browser = new Browser(nexus);
        await SignInUpstreamAsync(browser, email);
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);

        await browser.NavigateAsync("/");
        Assert.Contains(email, browser.LastPage);
        Assert.Contains("href=\"/account/applications\"", browser.LastPage);
        Assert.DoesNotContain("/account/password", browser.LastPage);
        await browser.NavigateAsync("/account/password");
        Assert.Equal(HttpStatusCode.NotFound, browser.LastStatus);
        Assert.Contains("it has no Nexus password", browser.LastPage);
    }

    [Fact]
    public async Task ClosedSignUpKeepsOutAnUpstreamPersonWithoutAnAccountUntilAnAdministratorCreatesOne()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        await nexus.AdminJsonAsync(HttpMethod.Patch, "/v1/admin/settings", new { sign_up_enabled = false });

        using var browser = new Browser(nexus);
        await SignInUpstreamAsync(browser, email);
        Assert.Equal(HttpStatusCode.Forbidden, browser.LastStatus);
        Assert.Contains("Ask an administrator to create yours", browser.LastPage);
        var users = await nexus.AdminJsonAsync(HttpMethod.Get, "/v1/admin/users");
        Assert.DoesNotContain(users.GetProperty("users").EnumerateArray(), u => u.GetProperty("email").GetString() == email);

        // Once an administrator has created the account, the same sign-in links to it.
        await nexus.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = "a local password of theirs" }, HttpStatusCode.Created);
        var back = await browser.NavigateAsync("/account/external/start?returnUrl=%2F", followForeign: true);
        if (back.Host == "localhost")
        {
            back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" }, followForeign: true);
        }

        Assert.Equal(nexus.BaseUrl + "/dashboard", back.ToString());
        Assert.Contains(email, browser.LastPage);
    }

    [Fact]
    public async Task AnAccountSomeoneElseSignedUpWithTheAddressIsNotHandedToTheAddresssOwner()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        // Someone signs up at Nexus with the address first (sign-up confirms no address) and keeps the password.
        using (var squatter = new Browser(nexus))
        {
            await squatter.SignUpAsync(email, "the squatter's own password");
        }

        // The address's owner comes through the upstream, which vouches for the address: still not let in.
        using var owner = new Browser(nexus);
        await SignInUpstreamAsync(owner, email, "/dashboard");
        Assert.Equal(HttpStatusCode.Conflict, owner.LastStatus);
        Assert.Contains("never confirmed", owner.LastPage);
        Assert.Equal("/account/signin", (await owner.NavigateAsync("/dashboard")).AbsolutePath);

        // Nor linked behind their back: a second try is refused the same way.
        using var again = new Browser(nexus);
        await SignInUpstreamAsync(again, email, "/dashboard");
        Assert.Equal(HttpStatusCode.Conflict, again.LastStatus);
    }

    [Fact]
    public async Task APersonSignedInToTheirOwnUnconfirmedAccountLinksTheUpstreamToIt()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        using (var signUp = new Browser(nexus))
        {
            await signUp.SignUpAsync(email, Password);
        }

        // Refused at first, with a way through: the page's link signs in with the password and comes back.
        using var browser = new Browser(nexus);
        await SignInUpstreamAsync(browser, email, "/dashboard");
        Assert.Equal(HttpStatusCode.Conflict, browser.LastStatus);
        var link = System.Text.RegularExpressions.Regex.Match(browser.LastPage, "href=\"(/account/signin\\?returnUrl=[^\"]+)\"").Groups[1].Value;
        await browser.NavigateAsync(WebUtility.HtmlDecode(link));
        var back = await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = Password }, followForeign: true);
        Assert.Equal(nexus.BaseUrl + "/dashboard", back.ToString());
        Assert.Contains(email, browser.LastPage);

        // Linked: the upstream alone now signs the person in, into the same single account.
        using var later = new Browser(nexus);
        Assert.Equal(nexus.BaseUrl + "/dashboard", (await SignInUpstreamAsync(later, email, "/dashboard")).ToString());
        var users = await nexus.AdminJsonAsync(HttpMethod.Get, "/v1/admin/users");
        Assert.Single(users.GetProperty("users").EnumerateArray(), u => u.GetProperty("email").GetString() == email);
    }

    [Fact]
    public async Task RefusesAnUnverifiedEmail()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        using var browser = new Browser(nexus);
        // Self sign-up at the upstream: the address was never verified.
        await browser.NavigateAsync(upstream.Issuer + "/account/signup", followForeign: true);
        await browser.SubmitAsync("/account/signup", new Dictionary<string, string> { ["email"] = email, ["password"] = Password }, followForeign: true);
        await browser.NavigateAsync(nexus.BaseUrl + "/account/external/start", followForeign: true);
        await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" }, followForeign: true);
        Assert.Equal(HttpStatusCode.Forbidden, browser.LastStatus);
        Assert.Contains("did not confirm an email", browser.LastPage);
    }

    [Fact]
    public async Task WrongPasswordsThatLockTheAccountDoNotKeepItsOwnerOutOfTheUpstreamSignIn()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        await nexus.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = "another local password" }, HttpStatusCode.Created);

        // Anyone who knows the address locks the Nexus password out (5 wrong guesses).
        using (var guesser = new Browser(nexus))
        {
            for (var i = 0; i < 5; i++)
            {
                await guesser.SignInAsync(email, "a wrong guess " + i);
            }
        }

        var users = await nexus.AdminJsonAsync(HttpMethod.Get, "/v1/admin/users");
        Assert.Equal("locked_out", users.GetProperty("users").EnumerateArray().Single(u => u.GetProperty("email").GetString() == email).GetProperty("state").GetString());

        // The owner still signs in through the upstream: the lockout guards the password, not the account.
        using var browser = new Browser(nexus);
        var back = await SignInUpstreamAsync(browser, email, "/dashboard");
        Assert.Equal(nexus.BaseUrl + "/dashboard", back.ToString());
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);
    }

    [Fact]
    public async Task ADisabledAccountIsNeitherSignedInNorLinkedThroughTheUpstream()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        var email = NewEmail();
        await upstream.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        var id = (await nexus.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = "another local password" }, HttpStatusCode.Created))
            .GetProperty("id").GetString()!;
        await nexus.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/users/{id}/disable");

        using var browser = new Browser(nexus);
        await SignInUpstreamAsync(browser, email, "/dashboard");

        Assert.Equal((HttpStatusCode)423, browser.LastStatus);
        Assert.Contains("disabled", browser.LastPage, StringComparison.Ordinal);
        using var scope = nexus.Services.CreateScope();
        var manager = scope.ServiceProvider.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<Nexus.Server.Accounts.NexusUser>>();
        Assert.Empty(await manager.GetLoginsAsync((await manager.FindByIdAsync(id))!));
    }

    [Fact]
    public async Task RejectsACallbackWithoutTheSignInCookie()
    {
        await using var pair = await Pair.StartAsync();
        var (upstream, nexus) = (pair.Upstream, pair.Nexus);
        using var browser = new Browser(nexus);
        await browser.NavigateAsync("/account/external/callback?code=stolen&state=forged");
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains("no longer valid", browser.LastPage);
    }
}
