using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>RFC 8707 resource indicators: the resource becomes the token's aud, is bound to the grant, and each resource accepts only its own tokens.</summary>
public sealed class ResourceIndicatorTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    private string McpResource => Server.Issuer + "/mcp";

    public static JsonElement Payload(string jwt) =>
        JsonDocument.Parse(Convert.FromBase64String(Pad(jwt.Split('.')[1].Replace('-', '+').Replace('_', '/')))).RootElement.Clone();

    private static string Pad(string s) => s + new string('=', (4 - (s.Length % 4)) % 4);

    /// <summary>Authorizes with an optional resource and exchanges the code, optionally naming a resource again.</summary>
    private async Task<(HttpStatusCode Status, JsonElement Body)> FlowAsync(string clientId, string? secret, string? resource, string? tokenResource = null)
    {
        using var browser = await SignedInBrowserAsync(Server);
        var (verifier, challenge) = Pkce();
        var url = AuthorizeUrl(clientId, challenge) + (resource is null ? "" : "&resource=" + Uri.EscapeDataString(resource));
        var back = await AuthorizeAsync(browser, url);
        var form = new List<(string, string)> { ("grant_type", "authorization_code"), ("code", Browser.Query(back)["code"]), ("redirect_uri", RedirectUri), ("code_verifier", verifier) };
        if (tokenResource is not null)
        {
            form.Add(("resource", tokenResource));
        }

        return await TokenAsync(Server, clientId, secret, form.ToArray());
    }

    private async Task<HttpStatusCode> GetWithTokenAsync(string path, string token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await Server.Http.SendAsync(request);
        return response.StatusCode;
    }

    [Fact]
    public async Task TheMcpResourceBecomesTheAudienceAndTheRestApiRefusesTheToken()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (status, tokens) = await FlowAsync(clientId, secret, McpResource);
        Assert.Equal(HttpStatusCode.OK, status);
        var access = tokens.GetProperty("access_token").GetString()!;
        Assert.Equal(McpResource, Payload(access).GetProperty("aud").GetString());

        // No token passthrough: Nexus's REST API and userinfo refuse a token meant for /mcp.
        Assert.Equal(HttpStatusCode.Unauthorized, await GetWithTokenAsync("/api/v1/me", access));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetWithTokenAsync("/oauth2/userinfo", access));

        // The authorization server still knows the token: introspection reports its real audience.
        var introspected = await IntrospectAsync(Server, clientId, secret!, access);
        Assert.True(introspected.GetProperty("active").GetBoolean());
        Assert.Equal(McpResource, introspected.GetProperty("aud").GetString());
    }

    [Fact]
    public async Task WithoutAResourceTheTokenIsForTheRestApiAsBefore()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (status, tokens) = await FlowAsync(clientId, secret, resource: null);
        Assert.Equal(HttpStatusCode.OK, status);
        var access = tokens.GetProperty("access_token").GetString()!;
        Assert.Equal(Server.Issuer, Payload(access).GetProperty("aud").GetString());
        Assert.Equal(HttpStatusCode.OK, await GetWithTokenAsync("/api/v1/me", access));

        // Naming the API's resource explicitly gives the same audience.
        var (explicitStatus, explicitTokens) = await FlowAsync(clientId, secret, Server.Issuer);
        Assert.Equal(HttpStatusCode.OK, explicitStatus);
        Assert.Equal(Server.Issuer, Payload(explicitTokens.GetProperty("access_token").GetString()!).GetProperty("aud").GetString());
    }

    [Theory]
    [InlineData("https://evil.example/mcp")]
    [InlineData("not a uri")]
    [InlineData("MCP#fragment")]
    public async Task AnUnknownResourceAtTheAuthorizationEndpointIsInvalidTarget(string resource)
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var target = resource == "MCP#fragment" ? McpResource + "#x" : resource;
        var back = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge) + "&resource=" + Uri.EscapeDataString(target));
        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));
        Assert.Equal("invalid_target", Browser.Query(back)["error"]);
        Assert.Equal("st-123", Browser.Query(back)["state"]);
    }

    [Fact]
    public async Task TwoResourcesInOneAuthorizationAreInvalidTarget()
    {
        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var back = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge) + "&resource=" + Uri.EscapeDataString(McpResource) + "&resource=" + Uri.EscapeDataString(Server.Issuer));
        Assert.Equal("invalid_target", Browser.Query(back)["error"]);
    }

    [Fact]
    public async Task TwoResourcesInOneTokenRequestAreInvalidTargetAndOneRepeatedIsOne()
    {
        // RFC 8707 §2 allows resource more than once: two distinct ones are refused as at the authorization endpoint
        // (invalid_target, not "parameter repeated"); the same one twice is that resource.
        var (clientId, secret) = await Server.CreateAppClientAsync();
        var (two, twoBody) = await TokenAsync(Server, clientId, secret, ("grant_type", "client_credentials"), ("resource", McpResource), ("resource", Server.Issuer));
        Assert.Equal(HttpStatusCode.BadRequest, two);
        Assert.Equal("invalid_target", twoBody.GetProperty("error").GetString());

        var (same, sameBody) = await TokenAsync(Server, clientId, secret, ("grant_type", "client_credentials"), ("resource", Server.Issuer), ("resource", Server.Issuer));
        Assert.True(same == HttpStatusCode.OK, sameBody.ToString());
    }

    [Fact]
    public async Task AnErrorDescriptionThatEchoesTheClientsValueKeepsToTheCharactersRfc6749Allows()
    {
        // A long resource (shortened with an ellipsis in the description) with a double quote and non-ASCII in it.
        var resource = "https://a.example/" + new string('x', 150) + "\"é";
        var allowed = (string d) => d.All(c => c is >= '\x20' and <= '\x7e' and not '"' and not '\\');

        var (clientId, _) = await RegisterApplicationAsync(Server);
        using var browser = await SignedInBrowserAsync(Server);
        var back = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge) + "&resource=" + Uri.EscapeDataString(resource[..120]));
        var query = Browser.Query(back);
        Assert.Equal("invalid_target", query["error"]);
        Assert.True(allowed(query["error_description"]), query["error_description"]);
        Assert.Contains("...", query["error_description"], StringComparison.Ordinal);

        var (appId, secret) = await Server.CreateAppClientAsync();
        var (_, body) = await TokenAsync(Server, appId, secret, ("grant_type", "client_credentials"), ("resource", resource));
        Assert.Equal("invalid_target", body.GetProperty("error").GetString());
        Assert.True(allowed(body.GetProperty("error_description").GetString()!), body.GetProperty("error_description").GetString());
    }

    [Fact]
    public async Task TheTokenRequestCannotSwitchTheResourceTheCodeWasIssuedFor()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (status, body) = await FlowAsync(clientId, secret, resource: null, tokenResource: McpResource);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_target", body.GetProperty("error").GetString());

        var (unknownStatus, unknown) = await FlowAsync(clientId, secret, McpResource, tokenResource: "https://evil.example/");
        Assert.Equal(HttpStatusCode.BadRequest, unknownStatus);
        Assert.Equal("invalid_target", unknown.GetProperty("error").GetString());

        var (sameStatus, same) = await FlowAsync(clientId, secret, McpResource, tokenResource: McpResource);
        Assert.Equal(HttpStatusCode.OK, sameStatus);
        Assert.Equal(McpResource, Payload(same.GetProperty("access_token").GetString()!).GetProperty("aud").GetString());
    }

    [Fact]
    public async Task ARefreshKeepsOrNarrowsTheResourceButNeverWidensIt()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (_, tokens) = await FlowAsync(clientId, secret, McpResource);
        var refresh = tokens.GetProperty("refresh_token").GetString()!;

        // Without a resource the refresh stays bound to /mcp.
        var (status, refreshed) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(McpResource, Payload(refreshed.GetProperty("access_token").GetString()!).GetProperty("aud").GetString());
        refresh = refreshed.GetProperty("refresh_token").GetString()!;

        // Asking for Nexus's API instead is refused, and the refresh token is not spent by the refusal.
        var (widenStatus, widened) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh), ("resource", Server.Issuer));
        Assert.Equal(HttpStatusCode.BadRequest, widenStatus);
        Assert.Equal("invalid_target", widened.GetProperty("error").GetString());

        // Naming the same resource again is allowed.
        var (sameStatus, same) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh), ("resource", McpResource));
        Assert.Equal(HttpStatusCode.OK, sameStatus);
        Assert.Equal(McpResource, Payload(same.GetProperty("access_token").GetString()!).GetProperty("aud").GetString());
    }

    [Fact]
    public async Task ARefreshOfAGrantForAResourceNoLongerServedIsInvalidGrantAndDoesNotSpendTheToken()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (_, tokens) = await FlowAsync(clientId, secret, Server.Issuer);
        var refresh = tokens.GetProperty("refresh_token").GetString()!;
        var options = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Nexus.Server.Hosting.NexusOptions>(Server.Services);

        // The operator moves the API's token audience: the grant was bound to the old one.
        options.AccessTokenAudience = "https://api.elsewhere.example";
        try
        {
            var (status, body) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh));
            Assert.Equal((HttpStatusCode.BadRequest, "invalid_grant"), (status, body.GetProperty("error").GetString()));
        }
        finally
        {
            options.AccessTokenAudience = null;
        }

        // Back as it was: the refresh token was not spent by the refusal (a spent one would now be a replay).
        var (again, rotated) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh));
        Assert.Equal(HttpStatusCode.OK, again);

        // A used refresh token presented meanwhile is still a replay, which revokes the grant (RFC 9700 §4.14.2).
        options.AccessTokenAudience = "https://api.elsewhere.example";
        try
        {
            await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", refresh));
        }
        finally
        {
            options.AccessTokenAudience = null;
        }

        var (afterReplay, refused) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", rotated.GetProperty("refresh_token").GetString()!));
        Assert.Equal((HttpStatusCode.BadRequest, "invalid_grant"), (afterReplay, refused.GetProperty("error").GetString()));
    }

    [Fact]
    public async Task AGrantForTheRestApiCannotBeRefreshedIntoAnMcpToken()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (_, tokens) = await FlowAsync(clientId, secret, resource: null);
        var (status, body) = await TokenAsync(Server, clientId, secret, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!), ("resource", McpResource));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_target", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task ClientCredentialsCannotGetAnMcpToken()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/token")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["resource"] = McpResource }),
        };
        request.Headers.Authorization = NexusTestServer.Basic(id, secret);
        using var response = await Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("invalid_target", await response.Content.ReadAsStringAsync());
    }
}
