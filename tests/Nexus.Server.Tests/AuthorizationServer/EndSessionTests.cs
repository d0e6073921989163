using System.Net;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>
/// Issue 12, item 12: a plain GET /oauth2/logout without a valid id_token_hint (an image tag on any site) no
/// longer signs the user out; Nexus asks, and signs out on the confirming, antiforgery-protected POST.
/// </summary>
public sealed class EndSessionTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const string SignedOut = "https://app.example.com/signed-out";

    private NexusTestServer Server => fixture.Server;

    private static async Task<bool> SignedInAsync(Browser browser)
    {
        var landed = await browser.NavigateAsync("/dashboard");
        return landed.AbsolutePath == "/dashboard";
    }

    [Fact]
    public async Task AGetWithoutAHintAsksFirstAndTheConfirmedPostSignsOutAndReturns()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server, postLogout: [SignedOut]);
        using var browser = new Browser(Server);
        await browser.SignUpAsync(NewEmail(), Password);

        await browser.NavigateAsync($"/oauth2/logout?client_id={clientId}&post_logout_redirect_uri={Uri.EscapeDataString(SignedOut)}&state=bye");
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);
        Assert.Contains("Sign out of Nexus?", browser.LastPage, StringComparison.Ordinal);
        Assert.True(await SignedInAsync(browser), "a GET without id_token_hint signed the user out");

        await browser.NavigateAsync($"/oauth2/logout?client_id={clientId}&post_logout_redirect_uri={Uri.EscapeDataString(SignedOut)}&state=bye");
        var back = await browser.SubmitAsync("/oauth2/logout");
        Assert.Equal(SignedOut + "?state=bye", back.ToString());
        Assert.False(await SignedInAsync(browser));
    }

    [Fact]
    public async Task AForgedHintIsNoHintAndAPostWithoutTheAntiforgeryTokenSignsNobodyOut()
    {
        using var browser = new Browser(Server);
        await browser.SignUpAsync(NewEmail(), Password);

        // Unsigned, with the right shape: {"alg":"none"}.{"aud":"x","sub":"y"}.
        await browser.NavigateAsync("/oauth2/logout?id_token_hint=eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4Iiwic3ViIjoieSJ9.");
        Assert.Contains("Sign out of Nexus?", browser.LastPage, StringComparison.Ordinal);
        await browser.SubmitAsync("/oauth2/logout", includeCsrf: false);
        Assert.True(await SignedInAsync(browser), "a POST without the antiforgery token signed the user out");
    }

    [Fact]
    public async Task AHintIssuedToAnotherClientThanTheClientIdNamesNeitherSignsOutUnaskedNorRedirects()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server, postLogout: [SignedOut]);
        var (other, _) = await RegisterApplicationAsync(Server, postLogout: [SignedOut]);
        var (tokens, browser) = await CompleteFlowAsync(Server, clientId, secret);
        using (browser)
        {
            var idToken = tokens.GetProperty("id_token").GetString()!;
            var logout = $"/oauth2/logout?id_token_hint={idToken}&client_id={other}&post_logout_redirect_uri={Uri.EscapeDataString(SignedOut)}&state=bye";
            await browser.NavigateAsync(logout);
            Assert.Contains("Sign out of Nexus?", browser.LastPage, StringComparison.Ordinal);
            Assert.True(await SignedInAsync(browser), "a hint for another client signed the user out unasked");

            // Confirmed, the person is signed out and stays on Nexus: neither client is trusted with the destination.
            await browser.NavigateAsync(logout);
            var landed = await browser.SubmitAsync("/oauth2/logout");
            Assert.Equal(new Uri(Server.BaseUrl).Authority, landed.Authority);
            Assert.Contains("You are signed out of Nexus", browser.LastPage, StringComparison.Ordinal);
            // The page itself is a signed-out one: its header names nobody and offers no sign-out.
            Assert.DoesNotContain("class=\"who\"", browser.LastPage, StringComparison.Ordinal);
            Assert.False(await SignedInAsync(browser));
        }
    }

    [Fact]
    public async Task AnAccessTokenIsNoHintEvenWhenSignedWithTheIdTokensAlgorithm()
    {
        // With RS256 access tokens, an access token verifies against the same keys as an ID token; it is still not one.
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:AccessTokenSigningAlgorithm"] = "RS256");
        var (clientId, secret) = await RegisterApplicationAsync(server, postLogout: [SignedOut]);
        var (tokens, browser) = await CompleteFlowAsync(server, clientId, secret);
        using (browser)
        {
            var accessToken = tokens.GetProperty("access_token").GetString()!;
            await browser.NavigateAsync($"/oauth2/logout?id_token_hint={accessToken}&post_logout_redirect_uri={Uri.EscapeDataString(SignedOut)}");
            Assert.Contains("Sign out of Nexus?", browser.LastPage, StringComparison.Ordinal);

            // The ID token of the same flow is a hint: no question asked.
            var idToken = tokens.GetProperty("id_token").GetString()!;
            var back = await browser.NavigateAsync($"/oauth2/logout?id_token_hint={idToken}&post_logout_redirect_uri={Uri.EscapeDataString(SignedOut)}");
            Assert.Equal(SignedOut, back.ToString());
        }
    }
}
