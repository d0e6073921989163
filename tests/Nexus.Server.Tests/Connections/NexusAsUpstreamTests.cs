using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Connections;

/// <summary>
/// The whole broker handshake against a real OAuth server: a second Nexus, whose authorization server checks
/// PKCE, exact redirect URIs, single-use codes and client secrets, and rotates refresh tokens. The upstream is
/// reached as "localhost" so the two servers' cookies stay apart.
/// </summary>
public sealed class NexusAsUpstreamTests
{
    [Fact]
    public async Task ConnectsReadsBridgesAndRevokesAgainstARealAuthorizationServer()
    {
        await using var upstreamDb = await TestDatabase.CreateAsync();
        await using var db = await TestDatabase.CreateAsync();
        await using var upstream = await NexusTestServer.StartAsync(upstreamDb, s => s["BASE_URL"] = s["BASE_URL"]!.Replace("127.0.0.1", "localhost", StringComparison.Ordinal));
        await using var broker = await NexusTestServer.StartAsync(db, s => s["ALLOWED_RETURN_URLS"] = "https://app.example.test/");

        var (clientId, clientSecret) = await RegisterApplicationAsync(upstream, redirectUris: [broker.Issuer + "/auth/callback"], scopes: ["openid", "email", "offline_access"]);
        await broker.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "upstream-nexus",
            authorization_url = upstream.Issuer + "/oauth2/authorize",
            token_url = upstream.Issuer + "/oauth2/token",
            revocation_url = upstream.Issuer + "/oauth2/revoke",
            userinfo_url = upstream.Issuer + "/oauth2/userinfo",
            api_base_url = upstream.Issuer + "/api/v1",
            client_id = clientId,
            client_secret = clientSecret,
            scopes = new[] { "openid", "email", "offline_access" },
            pkce = "required",
        }, HttpStatusCode.Created);

        // The app asks for a connection; the person signs in at the upstream and consents.
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/request-connection")
        {
            Content = JsonContent.Create(new { workspace_id = "user_abc123", provider_name = "upstream-nexus", return_url = "https://app.example.test/oauth/return" }),
        };
        request.Headers.Add("X-API-Key", broker.ApiKey);
        var requested = JsonDocument.Parse(await (await broker.Http.SendAsync(request)).Content.ReadAsStringAsync()).RootElement;
        var connectionId = requested.GetProperty("connection_id").GetString()!;
        var authUrl = requested.GetProperty("auth_url").GetString()!;
        Assert.StartsWith(upstream.Issuer + "/oauth2/authorize?", authUrl);
        Assert.Contains("code_challenge_method=S256", authUrl);

        using var browser = new Infrastructure.Browser(upstream);
        await browser.NavigateAsync(upstream.Issuer + "/account/signup", followForeign: true);
        await browser.SubmitAsync("/account/signup", new Dictionary<string, string> { ["email"] = "person@example.com", ["password"] = Password }, followForeign: true);
        await browser.NavigateAsync(authUrl, followForeign: true);
        var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" }, followForeign: true);
        Assert.Equal("https://app.example.test/oauth/return", back.GetLeftPart(UriPartial.Path));
        Assert.Equal("active", Infrastructure.Browser.Query(back)["status"]);
        Assert.Equal(connectionId, Infrastructure.Browser.Query(back)["connection_id"]);

        // Which account it is comes from the upstream's userinfo.
        await using (var connection = await broker.Services.GetRequiredService<Nexus.Server.Data.NexusDatabase>().OpenAsync())
        {
            Assert.Equal("person@example.com", await Dapper.SqlMapper.ExecuteScalarAsync<string>(connection, "SELECT account FROM connections WHERE id = @connectionId", new { connectionId }));
        }

        // The credential is a real access token of the upstream: its own API accepts it.
        var token = await GatewayJsonAsync(broker, HttpMethod.Get, $"/v1/token/{connectionId}");
        var accessToken = token.GetProperty("credentials").GetProperty("access_token").GetString()!;
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(upstream, accessToken));

        // Through the Bridge, without the app ever holding the token.
        var bridged = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{connectionId}/me");
        bridged.Headers.Add("X-API-Key", broker.ApiKey);
        using (var response = await broker.Http.SendAsync(bridged))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.StartsWith("usr_", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("sub").GetString());
        }

        // The upstream revokes the access token on its own (RFC 7009, by the client): the Bridge gets a 401, refreshes
        // once through the refresh engine (the upstream rotates the refresh token) and retries with the new token.
        var revoke = new HttpRequestMessage(HttpMethod.Post, "/oauth2/revoke") { Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = accessToken }) };
        revoke.Headers.Authorization = NexusTestServer.Basic(clientId, clientSecret!);
        Assert.Equal(HttpStatusCode.OK, (await upstream.Http.SendAsync(revoke)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(upstream, accessToken));
        var retried = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{connectionId}/me");
        retried.Headers.Add("X-API-Key", broker.ApiKey);
        using (var response = await broker.Http.SendAsync(retried))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var refreshed = (await GatewayJsonAsync(broker, HttpMethod.Get, $"/v1/token/{connectionId}")).GetProperty("credentials").GetProperty("access_token").GetString()!;
        Assert.NotEqual(accessToken, refreshed);
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(upstream, refreshed));
        accessToken = refreshed;

        // Disconnecting revokes at the upstream (RFC 7009): the token stops working there too.
        var delete = new HttpRequestMessage(HttpMethod.Delete, $"/v1/connections/{connectionId}");
        delete.Headers.Add("X-API-Key", broker.ApiKey);
        Assert.Equal(HttpStatusCode.NoContent, (await broker.Http.SendAsync(delete)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(upstream, accessToken));
    }

    private static async Task<JsonElement> GatewayJsonAsync(NexusTestServer server, HttpMethod method, string path)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-API-Key", server.ApiKey);
        using var response = await server.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }
}
