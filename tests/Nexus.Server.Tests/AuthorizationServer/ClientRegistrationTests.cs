using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>RFC 7591 dynamic client registration, as MCP assistants use it, then the full flow with the registered client.</summary>
public sealed class ClientRegistrationTests(ClientRegistrationTests.Fixture fixture) : IClassFixture<ClientRegistrationTests.Fixture>
{
    public sealed class Fixture : ServerFixture
    {
        public const string AdminEmail = "dcr.admin@example.com";

        protected override void Configure(Dictionary<string, string?> settings)
        {
            settings["SUPERUSER_EMAIL"] = AdminEmail;
            // Every test of this class registers from 127.0.0.1; the limit itself is tested on a server of its own.
            settings["Nexus:Registration:LimitPerHour"] = "1000";
        }
    }

    private NexusTestServer Server => fixture.Server;

    private string McpResource => Server.Issuer + "/mcp";

    public static async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> RegisterAsync(NexusTestServer server, object metadata, string? initialAccessToken = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/register") { Content = JsonContent.Create(metadata) };
        if (initialAccessToken is not null)
        {
            request.Headers.Authorization = new("Bearer", initialAccessToken);
        }

        var response = await server.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, body.Length == 0 ? default : JsonDocument.Parse(body).RootElement.Clone(), response);
    }

    /// <summary>What the official MCP SDKs send.</summary>
    private static Dictionary<string, object> McpClientMetadata(string redirectUri, string authMethod = "none") => new Dictionary<string, object>
    {
        ["client_name"] = "Test Assistant",
        ["redirect_uris"] = new[] { redirectUri },
        ["grant_types"] = new[] { "authorization_code", "refresh_token" },
        ["response_types"] = new[] { "code" },
        ["token_endpoint_auth_method"] = authMethod,
        ["scope"] = "nexus:connections nexus:connect nexus:call",
        ["software_id"] = "unknown fields are ignored",
        ["logo_uri"] = "https://assistant.example/logo.png",
        ["x_vendor_extension"] = new { nested = true },
    };

    [Fact]
    public async Task ASelfRegisteredClientCannotBounceABrowserOffNexusToItsRedirectUriUntilThePersonAuthorizedIt()
    {
        // Anyone can register a client (or publish a metadata document) whose redirect URI is their own site; an error
        // redirected there with no one asked would make Nexus an open redirector (RFC 9700 §4.11.2).
        const string evil = "https://evil.example/landing";
        var (status, registered, _) = await RegisterAsync(Server, McpClientMetadata(evil));
        Assert.Equal(HttpStatusCode.Created, status);
        var clientId = registered.GetProperty("client_id").GetString()!;
        var (verifier, challenge) = Pkce();

        // Signed out, with an error (no response_type) and with prompt=none: a Nexus page each time, no redirect.
        using var anonymous = new Browser(Server);
        foreach (var url in new[]
        {
            $"/oauth2/authorize?client_id={Uri.EscapeDataString(clientId)}&redirect_uri={Uri.EscapeDataString(evil)}",
            AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: evil) + "&prompt=none",
        })
        {
            var landed = await anonymous.NavigateAsync(url);
            Assert.Equal(new Uri(Server.BaseUrl).Authority, landed.Authority);
            Assert.Equal(HttpStatusCode.BadRequest, anonymous.LastStatus);
        }

        // Signed in, not yet authorized: prompt=none's consent_required is shown here too.
        using var browser = await SignedInBrowserAsync(Server);
        Assert.Equal(new Uri(Server.BaseUrl).Authority, (await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: evil) + "&prompt=none")).Authority);

        // Once the person authorized it (the consent page said where they go back), its errors go back to it.
        await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: evil));
        var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
        Assert.Equal(evil, back.GetLeftPart(UriPartial.Path));
        var error = await browser.NavigateAsync($"/oauth2/authorize?client_id={Uri.EscapeDataString(clientId)}&redirect_uri={Uri.EscapeDataString(evil)}&state=s");
        Assert.Equal(evil, error.GetLeftPart(UriPartial.Path));
        Assert.Equal("invalid_request", Browser.Query(error)["error"]);
    }

    [Fact]
    public async Task AConsentToASelfRegisteredClientStandsOnlyForTheRedirectUriThePersonWasShown()
    {
        // A client registers a trusted-looking redirect URI beside its own. The person authorizes it at the first (the
        // page names that host); a request for the other must not get a code, or its errors, with no one asked.
        const string shown = "https://assistant.example/callback";
        const string other = "https://evil.example/cb";
        var metadata = McpClientMetadata(shown);
        metadata["redirect_uris"] = new[] { shown, other };
        var (status, registered, _) = await RegisterAsync(Server, metadata);
        Assert.Equal(HttpStatusCode.Created, status);
        var clientId = registered.GetProperty("client_id").GetString()!;
        var (_, challenge) = Pkce();
        using var browser = await SignedInBrowserAsync(Server);
        await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: shown));
        Assert.Contains("assistant.example", browser.LastPage);
        Assert.Equal(shown, (await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" })).GetLeftPart(UriPartial.Path));
        // The one shown: a code at once, as for any remembered consent.
        var again = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: shown));
        Assert.Equal(shown, again.GetLeftPart(UriPartial.Path));
        Assert.True(Browser.Query(again).ContainsKey("code"));

        // The other: the consent page, naming it; prompt=none and an error stay on a Nexus page.
        var asked = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: other));
        Assert.Equal(new Uri(Server.BaseUrl).Authority, asked.Authority);
        Assert.Contains("evil.example", browser.LastPage);
        Assert.Contains("Allow", browser.LastPage);
        var none = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: other) + "&prompt=none");
        Assert.Equal(new Uri(Server.BaseUrl).Authority, none.Authority);
        Assert.Contains("not authorized this application to return to this redirect URI", browser.LastPage);
        var error = await browser.NavigateAsync($"/oauth2/authorize?client_id={Uri.EscapeDataString(clientId)}&redirect_uri={Uri.EscapeDataString(other)}&state=s");
        Assert.Equal(new Uri(Server.BaseUrl).Authority, error.Authority);

        // Once the person allowed it there too, it is remembered like the first.
        await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: other));
        Assert.Equal(other, (await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" })).GetLeftPart(UriPartial.Path));
        Assert.Equal(other, (await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: other))).GetLeftPart(UriPartial.Path));
        Assert.Equal(shown, (await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: shown))).GetLeftPart(UriPartial.Path));
    }

    [Fact]
    public async Task ANativeAppsConsentCoversItsLoopbackRedirectOnAnyPortAndIsRecordedOnce()
    {
        // RFC 8252 §7.3: the app listens on a port chosen at start; its registered http://127.0.0.1/callback matches any.
        var (status, registered, _) = await RegisterAsync(Server, McpClientMetadata("http://127.0.0.1/callback"));
        Assert.Equal(HttpStatusCode.Created, status);
        var clientId = registered.GetProperty("client_id").GetString()!;
        var (_, challenge) = Pkce();
        using var browser = await SignedInBrowserAsync(Server);
        foreach (var port in new[] { 33418, 40123 })
        {
            // A loopback redirect proves nothing of the app (RFC 8252 §8.6): asked each time, consented each time.
            var redirect = $"http://127.0.0.1:{port}/callback";
            await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections", redirectUri: redirect));
            Assert.Equal(redirect, (await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" })).GetLeftPart(UriPartial.Path));
        }

        Assert.Equal("http://127.0.0.1:33418/callback", await Server.Database.ScalarAsync("SELECT redirect_uris FROM consents WHERE client_id = @c", ("c", clientId)));
        // Its errors go back to it on a third port: the consent covers the registered redirect, whatever the port.
        var error = await browser.NavigateAsync($"/oauth2/authorize?client_id={Uri.EscapeDataString(clientId)}&redirect_uri={Uri.EscapeDataString("http://127.0.0.1:50999/callback")}&state=s");
        Assert.Equal("http://127.0.0.1:50999/callback", error.GetLeftPart(UriPartial.Path));
    }

    [Fact]
    public async Task ASelfRegisteredNameLosesInvisibleAndDirectionCharactersAndItsSiteIsShownAsItsOwnClaim()
    {
        const string redirect = "https://assistant.example/callback";
        var metadata = McpClientMetadata(redirect);
        // U+202E (right-to-left override), U+2066 (left-to-right isolate), U+200B (zero-width space), U+0007 (bell).
        // U+E0041 (a tag character, beyond the BMP) too.
        metadata["client_name"] = "\u2066Git\u202EHub\u200B\u0007\U000E0041 ";
        metadata["client_uri"] = "https://github.com";
        var (status, registered, _) = await RegisterAsync(Server, metadata);
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("GitHub", registered.GetProperty("client_name").GetString());

        var (_, challenge) = Pkce();
        using var browser = await SignedInBrowserAsync(Server);
        await browser.NavigateAsync(AuthorizeUrl(registered.GetProperty("client_id").GetString()!, challenge, scope: "nexus:connections", redirectUri: redirect));
        Assert.Contains("https://github.com (its own claim, not verified)", browser.LastPage, StringComparison.Ordinal);
        metadata["client_name"] = "\u202E\u200B";
        var (_, unnamed, _) = await RegisterAsync(Server, metadata);
        Assert.Equal("Unnamed application", unnamed.GetProperty("client_name").GetString());
        // A site with a direction override in it would turn the words around it: refused.
        metadata["client_uri"] = "https://github.com/\u202Emoc.live";
        var (refused, error, _) = await RegisterAsync(Server, metadata);
        Assert.Equal(HttpStatusCode.BadRequest, refused);
        Assert.Equal("invalid_client_metadata", error.GetProperty("error").GetString());
    }

    [Fact]
    public async Task APublicClientRegistersItselfAndCompletesTheFlowWithPkceForTheMcpResource()
    {
        const string redirect = "http://127.0.0.1:33418/callback";
        var (status, registered, _) = await RegisterAsync(Server, McpClientMetadata("http://127.0.0.1/callback"));
        Assert.Equal(HttpStatusCode.Created, status);
        var clientId = registered.GetProperty("client_id").GetString()!;
        Assert.False(registered.TryGetProperty("client_secret", out _));
        Assert.Equal("none", registered.GetProperty("token_endpoint_auth_method").GetString());
        Assert.Equal("Test Assistant", registered.GetProperty("client_name").GetString());
        Assert.Equal(["authorization_code", "refresh_token"], registered.GetProperty("grant_types").EnumerateArray().Select(e => e.GetString()!));

        // PKCE is required for a self-registered client. Not authorized by this person yet, its error is shown here
        // rather than sent to the redirect URI it chose (RFC 9700 §4.11.2).
        using var browser = await SignedInBrowserAsync(Server);
        var refused = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge: null, scope: "nexus:connections nexus:call", redirectUri: redirect));
        Assert.Equal(new Uri(Server.BaseUrl).Authority, refused.Authority);
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains("PKCE is required", browser.LastPage);

        // Sign-in and consent: the page names the client, where the answer goes, and that it registered itself.
        var (verifier, challenge) = Pkce();
        await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, scope: "nexus:connections nexus:call", redirectUri: redirect) + "&resource=" + Uri.EscapeDataString(McpResource));
        Assert.Contains("Test Assistant", browser.LastPage);
        Assert.Contains("registered itself", browser.LastPage);
        Assert.Contains("127.0.0.1:33418", browser.LastPage);
        Assert.Contains("Use your connected services on your behalf", browser.LastPage);
        var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
        Assert.Equal(redirect, back.GetLeftPart(UriPartial.Path));

        var (tokenStatus, tokens) = await TokenAsync(Server, clientId, null, ("grant_type", "authorization_code"), ("code", Browser.Query(back)["code"]),
            ("redirect_uri", redirect), ("code_verifier", verifier), ("client_id", clientId), ("resource", McpResource));
        Assert.True(tokenStatus == HttpStatusCode.OK, tokens.ToString());
        Assert.Equal("nexus:connections nexus:call", tokens.GetProperty("scope").GetString());
        Assert.Equal(McpResource, ResourceIndicatorTests.Payload(tokens.GetProperty("access_token").GetString()!).GetProperty("aud").GetString());
        Assert.True(tokens.TryGetProperty("refresh_token", out _));
    }

    [Fact]
    public async Task ASelfRegisteredClientGetsNoLongerTokensFromTheGuidesExchangeRoute()
    {
        var (_, registered, _) = await RegisterAsync(Server, McpClientMetadata(RedirectUri, "client_secret_post"));
        var clientId = registered.GetProperty("client_id").GetString()!;
        var secret = registered.GetProperty("client_secret").GetString()!;
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge, scope: "nexus:connections")))["code"];

        // The guide's route lets a client ask for 8 hours; one that registered itself keeps the hour registration gave it.
        using var response = await Server.Http.PostAsync("/api/v1/oauth/exchange", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["code"] = code, ["client_id"] = clientId, ["client_secret"] = secret, ["redirect_uri"] = RedirectUri, ["code_verifier"] = verifier,
            ["expiration"] = "480", ["state"] = "s",
        }));
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.True(response.IsSuccessStatusCode, body.ToString());
        Assert.InRange(body.GetProperty("expires_in").GetInt32(), 1, 3600);
    }

    [Theory]
    [InlineData("client_secret_basic")]
    [InlineData("client_secret_post")]
    public async Task AConfidentialClientRegistersItselfAndAuthenticatesWithItsSecret(string method)
    {
        var (status, registered, _) = await RegisterAsync(Server, McpClientMetadata(RedirectUri, method));
        Assert.Equal(HttpStatusCode.Created, status);
        var clientId = registered.GetProperty("client_id").GetString()!;
        var secret = registered.GetProperty("client_secret").GetString()!;
        Assert.Equal(0, registered.GetProperty("client_secret_expires_at").GetInt64());
        Assert.Equal(method, registered.GetProperty("token_endpoint_auth_method").GetString());

        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var back = await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge, scope: "nexus:connections"));
        var code = Browser.Query(back)["code"];
        var (tokenStatus, tokens) = method == "client_secret_basic"
            ? await ExchangeCodeAsync(Server, clientId, secret, code, verifier)
            : await TokenAsync(Server, clientId, null, ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", RedirectUri),
                ("code_verifier", verifier), ("client_id", clientId), ("client_secret", secret));
        Assert.True(tokenStatus == HttpStatusCode.OK, tokens.ToString());
    }

    /// <summary>
    /// The official C# MCP SDK (2.4.0) authenticates a client ID metadata document client with the first method the
    /// metadata lists (client_secret_basic) and an empty secret. A public client has no secret to check, so an empty
    /// one only identifies it, as client_id in the body does; a confidential client's empty secret is still refused.
    /// (The "basic" case failed before: an empty Basic password was malformed for every client.)
    /// </summary>
    [Theory]
    [InlineData("basic")]
    [InlineData("post")]
    public async Task APublicClientMayIdentifyItselfWithAnEmptySecretButAConfidentialClientMayNot(string how)
    {
        async Task<(HttpStatusCode Status, JsonElement Body)> RedeemWithEmptySecretAsync(string authMethod)
        {
            var (_, registered, _) = await RegisterAsync(Server, McpClientMetadata(RedirectUri, authMethod));
            var clientId = registered.GetProperty("client_id").GetString()!;
            using var browser = await SignedInBrowserAsync(Server);
            var (verifier, challenge) = Pkce();
            var code = Browser.Query(await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge, scope: "nexus:connections")))["code"];
            return how == "basic"
                ? await ExchangeCodeAsync(Server, clientId, "", code, verifier)
                : await TokenAsync(Server, clientId, null, ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", RedirectUri),
                    ("code_verifier", verifier), ("client_id", clientId), ("client_secret", ""));
        }

        var (publicStatus, publicTokens) = await RedeemWithEmptySecretAsync("none");
        Assert.True(publicStatus == HttpStatusCode.OK, publicTokens.ToString());

        var (confidentialStatus, refused) = await RedeemWithEmptySecretAsync("client_secret_" + how);
        // An empty parameter counts as absent (RFC 6749 §3.1), so both ways the secret is missing.
        Assert.Equal(HttpStatusCode.BadRequest, confidentialStatus);
        Assert.Equal("invalid_request", refused.GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("{\"client_name\":\"x\"}", "invalid_redirect_uri")]
    [InlineData("{\"redirect_uris\":[\"http://evil.example/cb\"]}", "invalid_redirect_uri")]
    [InlineData("{\"redirect_uris\":[\"https://app.example/cb#frag\"]}", "invalid_redirect_uri")]
    [InlineData("{\"redirect_uris\":[\"javascript:alert(1)\"]}", "invalid_redirect_uri")]
    [InlineData("{\"redirect_uris\":[\"https://app.example/cb\"],\"token_endpoint_auth_method\":\"private_key_jwt\"}", "invalid_client_metadata")]
    [InlineData("{\"redirect_uris\":[\"https://app.example/cb\"],\"grant_types\":[\"client_credentials\"]}", "invalid_client_metadata")]
    [InlineData("{\"redirect_uris\":[\"https://app.example/cb\"],\"response_types\":[\"token\"]}", "invalid_client_metadata")]
    [InlineData("{\"redirect_uris\":[\"https://app.example/cb\"],\"scope\":\"admin\"}", "invalid_client_metadata")]
    [InlineData("{\"redirect_uris\":\"https://app.example/cb\"}", "invalid_redirect_uri")]
    [InlineData("[1,2]", "invalid_client_metadata")]
    [InlineData("{not json", "invalid_client_metadata")]
    // Text no client sends: refused before parsing, never a 500 (a lone surrogate threw; a NUL reached PostgreSQL).
    [InlineData("{\"redirect_uris\":[\"\\ud800\"]}", "invalid_client_metadata")]
    [InlineData("{\"redirect_uris\":[\"https://a.example/\\u0000\"]}", "invalid_client_metadata")]
    [InlineData("{\"redirect_uris\":[\"https://app.example/cb\"],\"client_uri\":\"https://a.example/\\u0000\"}", "invalid_client_metadata")]
    // A newline would have split one checked redirect URI into two stored ones, the second never checked.
    [InlineData("{\"redirect_uris\":[\"https://app.example/cb\\nhttp://evil.example/cb\"]}", "invalid_redirect_uri")]
    [InlineData("{\"redirect_uris\":[\"https://app.example/c b\"]}", "invalid_redirect_uri")]
    public async Task BadMetadataIsRefusedWithTheRfc7591Error(string json, string error)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/register") { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") };
        using var response = await Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(error, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("com.example.assistant:/oauth/callback")]
    [InlineData("cursor://anysphere.cursor-retrieval/oauth/callback")]
    [InlineData("http://[::1]/callback")]
    [InlineData("http://localhost:8765/callback")]
    public async Task NativeAppRedirectsAreAccepted(string redirect)
    {
        var (status, body, _) = await RegisterAsync(Server, McpClientMetadata(redirect));
        Assert.True(status == HttpStatusCode.Created, body.ToString());
    }

    [Fact]
    public async Task SelfRegisteredClientsAreMarkedInSiteManagementAndCanBeRevokedThere()
    {
        var (_, registered, _) = await RegisterAsync(Server, McpClientMetadata(RedirectUri));
        var clientId = registered.GetProperty("client_id").GetString()!;

        using var admin = new Browser(Server);
        await admin.SignUpAsync(Fixture.AdminEmail, Password);
        await Server.MakeAdminAsync(Fixture.AdminEmail);
        await admin.NavigateAsync("/admin/applications");
        Assert.Equal(HttpStatusCode.OK, admin.LastStatus);
        Assert.Contains(clientId, admin.LastPage);
        Assert.Contains("self-registered", admin.LastPage);
        Assert.Equal("dynamic", (await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{clientId}")).GetProperty("registration").GetString());

        await admin.NavigateAsync($"/admin/applications/{clientId}/delete");
        await admin.SubmitAsync($"/admin/applications/{clientId}/delete");
        Assert.Equal("revoked", (await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{clientId}")).GetProperty("status").GetString());

        // An id that names no client is not answered as if it were revoked.
        await admin.NavigateAsync($"/admin/applications/{clientId}x/delete");
        await admin.SubmitAsync($"/admin/applications/{clientId}x/delete");
        Assert.Equal(HttpStatusCode.NotFound, admin.LastStatus);
        Assert.Contains("nothing was revoked", admin.LastPage);

        using var person = await SignedInBrowserAsync(Server);
        await person.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge));
        Assert.Contains("not registered", person.LastPage);
    }

    [Fact]
    public async Task RegistrationTurnedOffIsRefusedAndNotAdvertised()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:Registration:Mode"] = "off");
        var (status, body, _) = await RegisterAsync(server, McpClientMetadata(RedirectUri));
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("access_denied", body.GetProperty("error").GetString());
        var metadata = JsonDocument.Parse(await server.Http.GetStringAsync("/.well-known/oauth-authorization-server")).RootElement;
        Assert.False(metadata.TryGetProperty("registration_endpoint", out _));
    }

    [Fact]
    public async Task AnInitialAccessTokenIsRequiredWhenConfigured()
    {
        const string iat = "initial-access-token-0123456789";
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s =>
        {
            s["Nexus:Registration:Mode"] = "token";
            s["Nexus:Registration:InitialAccessToken"] = iat;
        });

        var (missing, missingBody, missingResponse) = await RegisterAsync(server, McpClientMetadata(RedirectUri));
        Assert.Equal(HttpStatusCode.Unauthorized, missing);
        Assert.Equal("invalid_token", missingBody.GetProperty("error").GetString());
        Assert.StartsWith("Bearer", missingResponse.Headers.WwwAuthenticate.ToString());

        var (wrong, _, _) = await RegisterAsync(server, McpClientMetadata(RedirectUri), "initial-access-token-wrong-value");
        Assert.Equal(HttpStatusCode.Unauthorized, wrong);

        var (ok, registered, _) = await RegisterAsync(server, McpClientMetadata(RedirectUri), iat);
        Assert.Equal(HttpStatusCode.Created, ok);
        Assert.StartsWith("nxc_", registered.GetProperty("client_id").GetString());
    }

    [Fact]
    public async Task RegistrationIsRateLimitedPerAddress()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:Registration:LimitPerHour"] = "2");
        Assert.Equal(HttpStatusCode.Created, (await RegisterAsync(server, McpClientMetadata(RedirectUri))).Status);
        Assert.Equal(HttpStatusCode.Created, (await RegisterAsync(server, McpClientMetadata(RedirectUri))).Status);
        var (status, body, response) = await RegisterAsync(server, McpClientMetadata(RedirectUri));
        Assert.Equal((HttpStatusCode)429, status);
        Assert.Equal("temporarily_unavailable", body.GetProperty("error").GetString());
        Assert.NotNull(response.Headers.RetryAfter);

        // The window is an hour, measured with the server's clock.
        server.Time.Advance(TimeSpan.FromMinutes(61));
        Assert.Equal(HttpStatusCode.Created, (await RegisterAsync(server, McpClientMetadata(RedirectUri))).Status);
    }
}
