using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>
/// OpenID Connect Core §3.1.2.1 and RP-Initiated Logout §2: the authorization and logout endpoints take an
/// application's request by POST as well as by GET. Nexus answers the POST 303 See Other to the GET of the same
/// parameters; its own forms on those routes (consent, sign-out confirmation) keep their antiforgery check.
/// </summary>
public sealed class PostedRequestsTests(ServerFixture fixture, ChromiumFixture chromium) : IClassFixture<ServerFixture>
{
    private const string SignedOut = "https://app.example.com/signed-out";

    private NexusTestServer Server => fixture.Server;

    private static Dictionary<string, string> AuthorizeFields(string clientId, string challenge, string state = "posted-state") => new()
    {
        ["response_type"] = "code",
        ["client_id"] = clientId,
        ["redirect_uri"] = RedirectUri,
        ["scope"] = "openid email",
        ["state"] = state,
        ["nonce"] = "posted-nonce",
        ["code_challenge"] = challenge,
        ["code_challenge_method"] = "S256",
    };

    [Fact]
    public async Task AnAuthorizationRequestSentByPostIsAnsweredSeeOtherToTheSameRequestByGetAndCompletes()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();

        // The answer itself: 303 to the GET, every parameter carried over.
        using var raw = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = new Uri(Server.BaseUrl) };
        using var answer = await raw.PostAsync("/oauth2/authorize", new FormUrlEncodedContent(AuthorizeFields(clientId, challenge)));
        Assert.Equal(HttpStatusCode.SeeOther, answer.StatusCode);
        var location = answer.Headers.Location!;
        Assert.StartsWith("/oauth2/authorize?", location.OriginalString, StringComparison.Ordinal);
        Assert.Equal(AuthorizeFields(clientId, challenge), Browser.Query(new Uri(new Uri(Server.BaseUrl), location)));

        // In the signed-in browser: the consent page, then the code, which exchanges like any other.
        await browser.PostAsync("/oauth2/authorize", AuthorizeFields(clientId, challenge));
        Assert.Contains("name=\"decision\"", browser.LastPage, StringComparison.Ordinal);
        var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
        Assert.Equal("posted-state", Browser.Query(back)["state"]);
        var (status, tokens) = await ExchangeCodeAsync(Server, clientId, secret, Browser.Query(back)["code"], verifier);
        Assert.True(status == HttpStatusCode.OK, tokens.ToString());
        Assert.True(tokens.TryGetProperty("id_token", out _));
    }

    [Fact]
    public async Task APostedRequestIsValidatedAsTheGetIsRepeatedParametersAndUnknownClientsToo()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (_, challenge) = Pkce();

        // RFC 6749 §3.1: a parameter sent twice is invalid_request, sent back to the registered redirect URI.
        var twice = AuthorizeFields(clientId, challenge).ToList();
        twice.Add(new("scope", "openid"));
        var back = await browser.PostAsync("/oauth2/authorize", twice);
        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));
        Assert.Equal("invalid_request", Browser.Query(back)["error"]);
        Assert.Equal("posted-state", Browser.Query(back)["state"]);

        // An unknown client: an error page, never a redirect (RFC 6749 §4.1.2.1).
        var fields = AuthorizeFields("no-such-client", challenge);
        var page = await browser.PostAsync("/oauth2/authorize", fields);
        Assert.Equal(Server.BaseUrl, page.GetLeftPart(UriPartial.Authority));
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
    }

    [Fact]
    public async Task OddPostedFormsGetAClearPageNeverA500()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        var (_, challenge) = Pkce();
        using var raw = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = new Uri(Server.BaseUrl) };

        // Multipart is a form too: the same 303.
        using (var multipart = new MultipartFormDataContent())
        {
            foreach (var (key, value) in AuthorizeFields(clientId, challenge))
            {
                multipart.Add(new StringContent(value), key);
            }

            using var answer = await raw.PostAsync("/oauth2/authorize", multipart);
            Assert.Equal(HttpStatusCode.SeeOther, answer.StatusCode);
            Assert.Equal(AuthorizeFields(clientId, challenge), Browser.Query(new Uri(new Uri(Server.BaseUrl), answer.Headers.Location!)));
        }

        foreach (var path in new[] { "/oauth2/authorize", "/oauth2/logout" })
        {
            // A NUL in a field: the HTML page of a form Nexus cannot accept, as for its own forms.
            var withNul = AuthorizeFields(clientId, challenge);
            withNul["state"] = "a\0b";
            using (var answer = await raw.PostAsync(path, new FormUrlEncodedContent(withNul)))
            {
                Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
                Assert.Equal("text/html", answer.Content.Headers.ContentType?.MediaType);
                Assert.Contains("Form not accepted", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            // Too large to pass on as a GET (browsers and servers refuse request lines that long): a page saying so.
            var large = AuthorizeFields(clientId, challenge);
            large["ui_locales"] = new string('x', 9000);
            using (var answer = await raw.PostAsync(path, new FormUrlEncodedContent(large)))
            {
                Assert.Equal(HttpStatusCode.RequestUriTooLong, answer.StatusCode);
                Assert.Contains("Request too large", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            // Not a form at all: the form's own refusal page.
            using (var answer = await raw.PostAsync(path, new StringContent("{\"client_id\":\"x\"}", System.Text.Encoding.UTF8, "application/json")))
            {
                Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
                Assert.Equal("text/html", answer.Content.Headers.ContentType?.MediaType);
            }
        }
    }

    [Fact]
    public async Task AConsentFormWithoutItsAntiforgeryTokenGrantsNothingAndAsksAgain()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var (_, challenge) = Pkce();
        await browser.NavigateAsync(AuthorizeUrl(clientId, challenge));
        Assert.Contains("name=\"decision\"", browser.LastPage, StringComparison.Ordinal);

        // Stripped of __csrf, the consent form reads as an application's request: the GET asks again, no code is issued.
        var landed = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" }, includeCsrf: false);
        Assert.Equal(Server.BaseUrl + "/oauth2/authorize", landed.GetLeftPart(UriPartial.Path));
        Assert.Contains("name=\"decision\"", browser.LastPage, StringComparison.Ordinal);

        // A stale token is still refused as before.
        await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow", ["__csrf"] = "stale" });
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains("Form expired", browser.LastPage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ALogoutRequestSentByPostAsksFirstWithoutAHintAndSignsOutWithOne()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server, postLogout: [SignedOut]);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        using (browser)
        {
            var request = new Dictionary<string, string> { ["client_id"] = clientId, ["post_logout_redirect_uri"] = SignedOut, ["state"] = "bye" };
            await browser.PostAsync("/oauth2/logout", request);
            Assert.Contains("Sign out of Nexus?", browser.LastPage, StringComparison.Ordinal);
            Assert.Equal("/dashboard", (await browser.NavigateAsync("/dashboard")).AbsolutePath);

            request["id_token_hint"] = tokens.GetProperty("id_token").GetString()!;
            var back = await browser.PostAsync("/oauth2/logout", request);
            Assert.Equal(SignedOut + "?state=bye", back.ToString());
            Assert.Equal("/account/signin", (await browser.NavigateAsync("/dashboard")).AbsolutePath);
        }
    }

    [Fact]
    public async Task InARealBrowserAnotherSitesPostedRequestReachesConsentWithoutAskingASignedInPersonToSignInAgain()
    {
        // The session cookie is SameSite=Lax: Chromium leaves it off the other site's POST, and sends it on the GET
        // that the 303 leads to. Without the 303 the person would meet the sign-in page although signed in. What
        // each request carried is recorded by the server itself (Playwright's view of a redirect's headers is not reliable).
        var seen = new System.Collections.Concurrent.ConcurrentQueue<(string Method, bool Session)>();
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, services: s => s.AddTransient<IStartupFilter>(_ => new RecordSessionCookies(seen)));
        var email = NewEmail();
        await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email, password = Password }, HttpStatusCode.Created);
        var (clientId, secret) = await RegisterApplicationAsync(server);
        var (verifier, challenge) = Pkce();

        await using var session = await BrowserSession.StartAsync(chromium, db.Engine);
        await session.Page.GotoAsync(server.BaseUrl + "/account/signin");
        await session.Page.Locator("#email").FillAsync(email);
        await session.Page.Locator("#password").FillAsync(Password);
        await session.Page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await session.Page.WaitForPageAsync(server.BaseUrl + "/dashboard");

        // The application's page, in a new tab of its own (an opaque origin, not Nexus's site), posts the request as soon as it loads.
        var page = await session.Context.NewPageAsync();
        session.Watch(page);
        var inputs = string.Concat(AuthorizeFields(clientId, challenge).Select(f => $"<input type=\"hidden\" name=\"{f.Key}\" value=\"{WebUtility.HtmlEncode(f.Value)}\">"));
        await page.SetContentAsync($"""
            <!doctype html><title>App</title><form method="post" action="{server.BaseUrl}/oauth2/authorize">{inputs}</form>
            <script>document.forms[0].submit()</script>
            """);

        await page.WaitForPageAsync(url => url.StartsWith(server.BaseUrl + "/oauth2/authorize?", StringComparison.Ordinal));
        var returned = page.WaitForRequestAsync(request => request.Url.StartsWith(RedirectUri, StringComparison.Ordinal));
        await page.GetByRole(AriaRole.Button, new() { Name = "Allow" }).ClickAsync();
        var query = Browser.Query(new Uri((await returned).Url));
        Assert.Equal("posted-state", query["state"]);
        var (status, tokens) = await ExchangeCodeAsync(server, clientId, secret, query["code"], verifier);
        Assert.True(status == HttpStatusCode.OK, tokens.ToString());

        // The application's POST without the session, the GET with it, then the consent form (Nexus's own page) with it.
        Assert.Equal([("POST", false), ("GET", true), ("POST", true)], seen.ToArray());
    }

    /// <summary>Records, for each request to /oauth2/authorize, its method and whether it carried the session cookie.</summary>
    private sealed class RecordSessionCookies(System.Collections.Concurrent.ConcurrentQueue<(string Method, bool Session)> seen) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, call) =>
            {
                if (context.Request.Path == "/oauth2/authorize")
                {
                    seen.Enqueue((context.Request.Method, context.Request.Cookies.ContainsKey("nexus.session")));
                }

                await call(context);
            });
            next(app);
        };
    }
}
