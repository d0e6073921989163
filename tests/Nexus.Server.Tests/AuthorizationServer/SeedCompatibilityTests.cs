using System.Net;
using System.Text;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>The routes of the Nexus OAuth 2.0 Integration Guide, used exactly as its Flask example uses them.</summary>
public sealed class SeedCompatibilityTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    /// <summary>The guide's /login: client_id, redirect_uri and state only, on /api/oauth/authorize.</summary>
    private async Task<string> CodeFromSeedAuthorizeAsync(string clientId)
    {
        using var browser = await SignedInBrowserAsync(Server);
        var back = await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge: null, state: "abc123", scope: "", nonce: null, path: "/api/oauth/authorize", responseType: false));
        var query = Browser.Query(back);
        Assert.Equal("abc123", query["state"]);
        return query["code"];
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> ExchangeAsync(string query, HttpContent? body = null)
    {
        using var response = await Server.Http.PostAsync("/api/v1/oauth/exchange" + query, body);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    private static string Params(string code, string clientId, string secret, string? expiration = null) =>
        $"code={Uri.EscapeDataString(code)}&client_id={clientId}&client_secret={Uri.EscapeDataString(secret)}&redirect_uri={Uri.EscapeDataString(RedirectUri)}&state=abc123"
        + (expiration is null ? "" : $"&expiration={expiration}");

    [Fact]
    public async Task TwoResourcesAreInvalidTargetHereAsAtTheTokenEndpoint()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var code = await CodeFromSeedAuthorizeAsync(clientId);
        var (status, body) = await ExchangeAsync("?" + Params(code, clientId, secret!) + "&resource=" + Uri.EscapeDataString(Server.Issuer),
            new FormUrlEncodedContent(new Dictionary<string, string> { ["resource"] = Server.Issuer + "/mcp" }));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_target", body.GetProperty("error").GetString()); // one in the query, one in the body

        var (twice, twiceBody) = await ExchangeAsync("?" + Params(code, clientId, secret!) + "&resource=" + Uri.EscapeDataString(Server.Issuer) + "&resource=" + Uri.EscapeDataString(Server.Issuer + "/mcp"));
        Assert.Equal(HttpStatusCode.BadRequest, twice);
        Assert.Equal("invalid_target", twiceBody.GetProperty("error").GetString());

        // The same resource in both places is one resource; the code was not spent by the refusals above.
        var (same, sameBody) = await ExchangeAsync("?" + Params(code, clientId, secret!) + "&resource=" + Uri.EscapeDataString(Server.Issuer),
            new FormUrlEncodedContent(new Dictionary<string, string> { ["resource"] = Server.Issuer }));
        Assert.Equal(HttpStatusCode.OK, same);
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, sameBody.GetProperty("access_token").GetString()!));
    }

    [Fact]
    public async Task ExchangesWithParametersInTheQueryStringAndReturnsTheGuidesShape()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var code = await CodeFromSeedAuthorizeAsync(clientId);
        var (status, body) = await ExchangeAsync("?" + Params(code, clientId, secret!));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(["access_token", "token_type", "expires_in", "state"], body.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal("Bearer", body.GetProperty("token_type").GetString());
        Assert.Equal(480 * 60, body.GetProperty("expires_in").GetInt32());
        Assert.Equal("abc123", body.GetProperty("state").GetString());
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(Server, body.GetProperty("access_token").GetString()!));
    }

    [Fact]
    public async Task ExchangesWithParametersInAFormBody()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var code = await CodeFromSeedAuthorizeAsync(clientId);
        var (status, body) = await ExchangeAsync("", new StringContent(Params(code, clientId, secret!, "60"), Encoding.UTF8, "application/x-www-form-urlencoded"));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(3600, body.GetProperty("expires_in").GetInt32());
    }

    [Fact]
    public async Task CapsTheRequestedExpiration()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var code = await CodeFromSeedAuthorizeAsync(clientId);
        var (status, body) = await ExchangeAsync("?" + Params(code, clientId, secret!, "999999"));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(1440 * 60, body.GetProperty("expires_in").GetInt32());
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-5")]
    [InlineData("0")]
    public async Task RejectsMalformedExpiration(string expiration)
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (status, body) = await ExchangeAsync("?" + Params("nxa_whatever", clientId, secret!, expiration));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_request", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task RejectsWrongSecretAndReusedCode()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var code = await CodeFromSeedAuthorizeAsync(clientId);
        var (wrongStatus, wrong) = await ExchangeAsync("?" + Params(code, clientId, "nxs_wrong"));
        Assert.Equal(HttpStatusCode.Unauthorized, wrongStatus);
        Assert.Equal("invalid_client", wrong.GetProperty("error").GetString());

        Assert.Equal(HttpStatusCode.OK, (await ExchangeAsync("?" + Params(code, clientId, secret!))).Status);
        var (replayStatus, replay) = await ExchangeAsync("?" + Params(code, clientId, secret!));
        Assert.Equal(HttpStatusCode.BadRequest, replayStatus);
        Assert.Equal("invalid_grant", replay.GetProperty("error").GetString());
    }

    [Fact]
    public async Task RejectsAParameterSentInBothQueryAndBody()
    {
        var (clientId, secret) = await RegisterApplicationAsync(Server);
        var (status, body) = await ExchangeAsync("?" + Params("nxa_x", clientId, secret!), new StringContent("code=other", Encoding.UTF8, "application/x-www-form-urlencoded"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_request", body.GetProperty("error").GetString());
    }
}
