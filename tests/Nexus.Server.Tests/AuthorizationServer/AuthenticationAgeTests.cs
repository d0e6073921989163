using System.Net;
using Microsoft.IdentityModel.JsonWebTokens;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>
/// How long ago the person authenticated (OIDC Core §2 auth_time, §3.1.2.1 max_age), on a server of its own whose clock
/// the tests move: the time of the sign-in, which renewing the session cookie does not move, and a max_age the session
/// exceeds sends the person to sign in again.
/// </summary>
public sealed class AuthenticationAgeTests : IAsyncLifetime
{
    private TestDatabase db = null!;
    private NexusTestServer server = null!;
    private string clientId = null!;
    private string secret = null!;

    public async ValueTask InitializeAsync()
    {
        db = await TestDatabase.CreateAsync();
        server = await NexusTestServer.StartAsync(db);
        (clientId, var s) = await RegisterApplicationAsync(server);
        secret = s!;
    }

    public async ValueTask DisposeAsync()
    {
        await server.DisposeAsync();
        await db.DisposeAsync();
    }

    private long Now => server.Time.GetUtcNow().ToUnixTimeSeconds();

    /// <summary>Authorizes (consenting when asked) and exchanges the code; the ID token's auth_time.</summary>
    private async Task<long> AuthTimeAsync(Browser browser, string extra = "")
    {
        var (verifier, challenge) = Pkce();
        var back = await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge) + extra);
        var (status, tokens) = await ExchangeCodeAsync(server, clientId, secret, Browser.Query(back)["code"], verifier);
        Assert.Equal(HttpStatusCode.OK, status);
        return (long)new JsonWebToken(tokens.GetProperty("id_token").GetString()).GetPayloadValue<long>("auth_time");
    }

    [Fact]
    public async Task AnIdTokensAuthTimeIsWhenThePersonSignedInNotWhenTheirSessionWasLastRenewed()
    {
        using var browser = await SignedInBrowserAsync(server);
        var signedIn = Now;
        // Past half of the session's 12 hours, a request renews the cookie (sliding expiration): a new IssuedUtc.
        server.Time.Advance(TimeSpan.FromHours(7));
        await browser.NavigateAsync("/dashboard");
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);
        server.Time.Advance(TimeSpan.FromMinutes(1));

        Assert.InRange(await AuthTimeAsync(browser), signedIn - 1, signedIn + 1);
    }

    [Fact]
    public async Task ASessionYoungerThanMaxAgeGetsACodeWithoutSigningInAgain()
    {
        using var browser = await SignedInBrowserAsync(server);
        var signedIn = Now;
        server.Time.Advance(TimeSpan.FromMinutes(4));
        Assert.InRange(await AuthTimeAsync(browser, "&max_age=300"), signedIn - 1, signedIn + 1);
    }

    [Theory]
    [InlineData("&max_age=300")]
    // max_age=0: always authenticate again, as prompt=login.
    [InlineData("&max_age=0")]
    public async Task ASessionOlderThanMaxAgeSignsInAgainAndTheCodeCarriesTheNewSignInTime(string maxAge)
    {
        var email = NewEmail();
        using var browser = await SignedInBrowserAsync(server, email);
        await AuthTimeAsync(browser); // consented once
        server.Time.Advance(TimeSpan.FromMinutes(10));

        var (verifier, challenge) = Pkce();
        var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge) + maxAge);
        Assert.Equal("/account/signin", landed.AbsolutePath);
        var again = Now;
        var back = await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = Password });

        // Back at the application at once (no loop back to sign-in), with a code whose auth_time is the new sign-in.
        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));
        var (status, tokens) = await ExchangeCodeAsync(server, clientId, secret, Browser.Query(back)["code"], verifier);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.InRange(new JsonWebToken(tokens.GetProperty("id_token").GetString()).GetPayloadValue<long>("auth_time"), again - 1, again + 1);
    }

    [Fact]
    public async Task PromptLoginAsksForTheSignInWithoutEndingTheSessionAnySiteCouldSendThePersonThere()
    {
        using var browser = await SignedInBrowserAsync(server);
        var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge) + "&prompt=login");
        Assert.Equal("/account/signin", landed.AbsolutePath);

        // Not signing in (the person did not start this) leaves them signed in.
        Assert.Equal("/dashboard", (await browser.NavigateAsync("/dashboard")).AbsolutePath);
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);
    }

    [Fact]
    public async Task PromptConsentSurvivesTheSignInThatPromptLoginAskedFor()
    {
        var email = NewEmail();
        using var browser = await SignedInBrowserAsync(server, email);
        await AuthTimeAsync(browser); // consented once

        var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge) + "&prompt=login%20consent");
        Assert.Equal("/account/signin", landed.AbsolutePath);
        var back = await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = Password });

        // OIDC Core §3.1.2.1: consent is asked again although one is on record.
        Assert.Equal("/oauth2/authorize", back.AbsolutePath);
        Assert.Contains("name=\"decision\"", browser.LastPage);
    }

    [Fact]
    public async Task PromptNoneWithASessionOlderThanMaxAgeIsLoginRequired()
    {
        using var browser = await SignedInBrowserAsync(server);
        await AuthTimeAsync(browser);
        server.Time.Advance(TimeSpan.FromMinutes(10));

        var back = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge) + "&max_age=60&prompt=none");
        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));
        Assert.Equal("login_required", Browser.Query(back)["error"]);
        Assert.Equal("st-123", Browser.Query(back)["state"]);
    }

    [Theory]
    // (An empty max_age is no max_age: RFC 6749 §3.1, parameters without a value are treated as omitted.)
    [InlineData("abc")]
    [InlineData("-1")]
    [InlineData("1.5")]
    [InlineData("99999999999")]
    public async Task AMaxAgeThatIsNotANumberOfSecondsIsAnInvalidRequest(string maxAge)
    {
        using var browser = await SignedInBrowserAsync(server);
        var back = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge) + "&max_age=" + Uri.EscapeDataString(maxAge));
        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));
        Assert.Equal("invalid_request", Browser.Query(back)["error"]);
    }
}
