using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>The whole connection flow over HTTP: request-connection, consent, callback, status, credentials.</summary>
public sealed class HandshakeTests(BrokerFixture fixture) : IClassFixture<BrokerFixture>
{
    private BrokerKit Kit => fixture.Kit;

    [Fact]
    public async Task AConnectionGoesFromRequestThroughConsentToAnActiveCredential()
    {
        var provider = await Kit.RegisterAsync("google");
        var (authUrl, connectionId) = await Kit.RequestAsync(provider, "user_abc123", ["openid", "email", "profile"]);
        Assert.Matches("^conn_[0-9A-Z]{26}$", connectionId);
        Assert.StartsWith(fixture.Fake.Url("google", "authorize") + "?", authUrl);
        Assert.Contains("code_challenge_method=S256", authUrl);
        Assert.Contains("scope=openid%20email%20profile", authUrl);

        var pending = (await Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{connectionId}")).Body;
        Assert.Equal("pending", pending.GetProperty("status").GetString());

        using var callback = await Kit.CallbackAsync(await Kit.ConsentAsync(authUrl));
        Assert.Equal(HttpStatusCode.Redirect, callback.StatusCode);
        var returned = BrokerKit.ReturnedQuery(callback);
        Assert.Equal(connectionId, returned["connection_id"]);
        Assert.Equal("active", returned["status"]);
        Assert.False(returned.ContainsKey("error"));

        var (status, connection) = await Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{connectionId}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("active", connection.GetProperty("status").GetString());
        Assert.Equal(provider, connection.GetProperty("provider").GetString());
        Assert.Equal("user_abc123", connection.GetProperty("workspace_id").GetString());
        Assert.Equal(["openid", "email", "profile"], connection.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()!).ToArray());
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Assert.InRange(connection.GetProperty("expires_at").GetInt64(), now + 3500, now + 3700);
        Assert.InRange(connection.GetProperty("created_at").GetInt64(), now - 60, now + 1);

        var (tokenStatus, token) = await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{connectionId}");
        Assert.Equal(HttpStatusCode.OK, tokenStatus);
        Assert.Equal("oauth2", token.GetProperty("strategy").GetProperty("type").GetString());
        var accessToken = token.GetProperty("credentials").GetProperty("access_token").GetString()!;
        Assert.StartsWith("ya29.", accessToken);
        Assert.Contains(accessToken, fixture.Fake.IssuedTokens);
        Assert.Equal(connection.GetProperty("expires_at").GetInt64(), token.GetProperty("expires_at").GetInt64());
        Assert.Equal(token.GetProperty("expires_at").GetInt64(), token.GetProperty("credentials").GetProperty("expires_at").GetInt64());
        // The app never sees a refresh token.
        Assert.DoesNotContain("refresh", token.ToString(), StringComparison.OrdinalIgnoreCase);

        var call = fixture.Fake.TokenCalls.Last(c => c.Error is null && c.Flavor == "google");
        Assert.True(call.HadVerifier);
        Assert.Equal("client_secret_post", call.AuthMethod);
    }

    [Fact]
    public async Task AGitHubStyleFormEncodedTokenResponseIsUnderstood()
    {
        var provider = await Kit.RegisterAsync("github", new { pkce = false });
        var (id, returned) = await Kit.ConnectAsync(provider);
        Assert.Equal("active", returned["status"]);
        var token = (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}")).Body;
        Assert.StartsWith("gho_", token.GetProperty("credentials").GetProperty("access_token").GetString());
        // GitHub OAuth-app tokens do not expire.
        Assert.Equal(JsonValueKind.Null, token.GetProperty("expires_at").ValueKind);
        var call = fixture.Fake.TokenCalls.Last(c => c.Flavor == "github" && c.Error is null);
        Assert.False(call.HadVerifier);
        Assert.DoesNotContain("application/json", call.Accept ?? "");
    }

    [Fact]
    public async Task TheCatalogsAcceptHeaderGetsJsonFromAGitHubStyleProvider()
    {
        var provider = await Kit.RegisterAsync("github", new { token_request_headers = new Dictionary<string, string> { ["Accept"] = "application/json" } });
        var (id, returned) = await Kit.ConnectAsync(provider);
        Assert.Equal("active", returned["status"]);
        Assert.Contains("application/json", fixture.Fake.TokenCalls.Last(c => c.Flavor == "github" && c.Error is null).Accept);
        Assert.Equal(HttpStatusCode.OK, (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}")).Status);
    }

    [Fact]
    public async Task ASlackUserTokenIsTakenFromAuthedUserWithBasicClientAuthentication()
    {
        var provider = await Kit.RegisterAsync("slack", new { token_endpoint_auth = "client_secret_basic", scope_separator = ",", scopes = new[] { "users:read", "search:read" } });
        var (authUrl, id) = await Kit.RequestAsync(provider);
        Assert.Equal("users:read,search:read", Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(new Uri(authUrl).Query)["scope"].ToString());
        using var callback = await Kit.CallbackAsync(await Kit.ConsentAsync(authUrl));
        Assert.Equal("active", BrokerKit.ReturnedQuery(callback)["status"]);
        var token = (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}")).Body;
        Assert.StartsWith("xoxp-", token.GetProperty("credentials").GetProperty("access_token").GetString());
        Assert.Equal("client_secret_basic", fixture.Fake.TokenCalls.Last(c => c.Flavor == "slack" && c.Error is null).AuthMethod);
    }

    [Fact]
    public async Task AReconnectionWithoutANewRefreshTokenStillBecomesActive()
    {
        // Google sends a refresh token on the first consent of a client only; a second connection gets none.
        var provider = await Kit.RegisterAsync("google");
        var (first, firstReturned) = await Kit.ConnectAsync(provider, "user_reconnect");
        var (second, secondReturned) = await Kit.ConnectAsync(provider, "user_reconnect");
        Assert.NotEqual(first, second);
        Assert.Equal("active", firstReturned["status"]);
        Assert.Equal("active", secondReturned["status"]);
        Assert.Equal(HttpStatusCode.OK, (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{second}")).Status);
    }

    [Fact]
    public async Task AProviderRegisteredByIssuerIsFoundThroughOpenIdDiscovery()
    {
        var name = "oidc-" + Guid.NewGuid().ToString("N")[..8];
        var created = await fixture.Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers",
            new { name, issuer = fixture.Fake.OidcIssuer, client_id = fixture.Fake.ClientId, client_secret = fixture.Fake.ClientSecret, scopes = new[] { "openid" } },
            HttpStatusCode.Created);
        Assert.Equal(fixture.Fake.Url("google", "token"), created.GetProperty("token_url").GetString());
        Assert.Equal("supported", created.GetProperty("pkce").GetString());
        Assert.Equal("client_secret_basic", created.GetProperty("token_endpoint_auth").GetString());
        var (_, returned) = await Kit.ConnectAsync(name);
        Assert.Equal("active", returned["status"]);
        Assert.Equal("client_secret_basic", fixture.Fake.TokenCalls.Last(c => c.Error is null).AuthMethod);
    }

    [Fact]
    public async Task ListingShowsTheWorkspacesConnectionsNewestFirst()
    {
        var provider = await Kit.RegisterAsync("google");
        var workspace = "ws_list_" + Guid.NewGuid().ToString("N")[..6];
        var (a, _) = await Kit.ConnectAsync(provider, workspace);
        var (_, b) = await Kit.RequestAsync(provider, workspace);
        var list = (await Kit.SendAsync(HttpMethod.Get, $"/v1/connections?workspace_id={workspace}")).Body.GetProperty("connections").EnumerateArray().ToList();
        Assert.Equal([b, a], list.Select(c => c.GetProperty("connection_id").GetString()!).ToArray());
        Assert.Equal(["pending", "active"], list.Select(c => c.GetProperty("status").GetString()!).ToArray());
        var active = (await Kit.SendAsync(HttpMethod.Get, $"/v1/connections?workspace_id={workspace}&status=active")).Body.GetProperty("connections");
        Assert.Equal(a, Assert.Single(active.EnumerateArray()).GetProperty("connection_id").GetString());
    }

    [Fact]
    public async Task ACredentialOfAPendingConnectionIsAConflictThatCarriesTheStatus()
    {
        var provider = await Kit.RegisterAsync("google");
        var (_, id) = await Kit.RequestAsync(provider);
        using var response = await fixture.Server.Http.SendAsync(Kit.Gateway(HttpMethod.Get, $"/v1/token/{id}"));
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("connection_not_active", problem.GetProperty("code").GetString());
        Assert.Equal("pending", problem.GetProperty("status").GetString());
    }

    [Fact]
    public async Task TheNotActiveConflictHasOneMemberPerNameAndTheBridgeAnswersItWithTheSameFields()
    {
        var provider = await Kit.RegisterAsync("google");
        var (_, id) = await Kit.RequestAsync(provider);

        async Task<(Dictionary<string, string> Members, string ContentType)> ConflictAsync(string path)
        {
            using var response = await fixture.Server.Http.SendAsync(Kit.Gateway(HttpMethod.Get, path));
            Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
            // A reader that refuses duplicate members (the old answer had "status":409 and "status":"pending").
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>(new JsonSerializerOptions { AllowDuplicateProperties = false });
            return (problem.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ToString()), response.Content.Headers.ContentType!.MediaType!);
        }

        var (token, tokenType) = await ConflictAsync($"/v1/token/{id}");
        var (bridge, bridgeType) = await ConflictAsync($"/v1/bridge/{id}/v1/anything");
        Assert.Equal("application/problem+json", tokenType);
        Assert.Equal(tokenType, bridgeType);
        // The seed's contract: "status" is the connection's status; RFC 9457's advisory numeric status is left out.
        Assert.Equal("pending", token["status"]);
        Assert.Equal("connection_not_active", token["code"]);
        Assert.Equal(id, token["connection_id"]);
        Assert.True(token.ContainsKey("detail"));
        Assert.Equal(token, bridge);
    }

    [Fact]
    public async Task ProblemsWithoutAConnectionStatusReadAsAspNetCoreProblemDetails()
    {
        using var response = await fixture.Server.Http.SendAsync(Kit.Gateway(HttpMethod.Get, "/v1/token/conn_00000000000000000000000000"));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<Microsoft.AspNetCore.Mvc.ProblemDetails>(new JsonSerializerOptions { AllowDuplicateProperties = false });
        Assert.Equal(404, problem!.Status);
        Assert.Equal("not_found", problem.Extensions["code"]!.ToString());
    }
}
