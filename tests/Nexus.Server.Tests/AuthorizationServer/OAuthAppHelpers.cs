using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>What an OAuth application does against Nexus, written the way a client library would.</summary>
internal static class OAuthAppHelpers
{
    public const string RedirectUri = "https://app.example.com/callback";

    public static async Task<(string Id, string? Secret)> RegisterApplicationAsync(NexusTestServer server, string type = "confidential", string[]? redirectUris = null, string[]? scopes = null, string[]? postLogout = null)
    {
        var created = await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/applications", new
        {
            name = "Sample App",
            redirect_uris = redirectUris ?? [RedirectUri],
            description = "Reads your projects",
            base_url = "https://app.example.com",
            owner_email = "dev@app.example.com",
            type,
            scopes,
            post_logout_redirect_uris = postLogout,
        }, HttpStatusCode.Created);
        return (created.GetProperty("client_id").GetString()!, created.TryGetProperty("client_secret", out var s) ? s.GetString() : null);
    }

    public static (string Verifier, string Challenge) Pkce()
    {
        var verifier = Base64Url(RandomNumberGenerator.GetBytes(32));
        return (verifier, Base64Url(SHA256.HashData(Encoding.ASCII.GetBytes(verifier))));
    }

    public static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static string AuthorizeUrl(string clientId, string? challenge, string state = "st-123", string scope = "openid profile email offline_access", string? nonce = "n-456", string redirectUri = RedirectUri, string path = "/oauth2/authorize", bool responseType = true)
    {
        var query = new List<string> { $"client_id={Uri.EscapeDataString(clientId)}", $"redirect_uri={Uri.EscapeDataString(redirectUri)}", $"state={Uri.EscapeDataString(state)}" };
        if (responseType)
        {
            query.Add("response_type=code");
        }

        if (scope.Length > 0)
        {
            query.Add($"scope={Uri.EscapeDataString(scope)}");
        }

        if (nonce is not null)
        {
            query.Add($"nonce={nonce}");
        }

        if (challenge is not null)
        {
            query.Add($"code_challenge={challenge}&code_challenge_method=S256");
        }

        return path + "?" + string.Join('&', query);
    }

    /// <summary>Runs sign-in (if needed) and consent in the browser and returns the redirect back to the application.</summary>
    public static async Task<Uri> AuthorizeAsync(Browser browser, string url, bool allow = true)
    {
        var landed = await browser.NavigateAsync(url);
        if (landed.Authority != new Uri(RedirectUri).Authority && browser.LastPage.Contains("name=\"decision\"", StringComparison.Ordinal))
        {
            return await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = allow ? "allow" : "deny" });
        }

        return landed;
    }

    public static async Task<(HttpStatusCode Status, JsonElement Body)> TokenAsync(NexusTestServer server, string? clientId, string? secret, params (string Key, string Value)[] form)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/token") { Content = new FormUrlEncodedContent(form.Select(f => new KeyValuePair<string, string>(f.Key, f.Value))) };
        if (secret is not null)
        {
            request.Headers.Authorization = NexusTestServer.Basic(clientId!, secret);
        }

        using var response = await server.Http.SendAsync(request);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    public static Task<(HttpStatusCode Status, JsonElement Body)> ExchangeCodeAsync(NexusTestServer server, string clientId, string? secret, string code, string? verifier, string redirectUri = RedirectUri)
    {
        var form = new List<(string, string)> { ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectUri) };
        if (verifier is not null)
        {
            form.Add(("code_verifier", verifier));
        }

        if (secret is null)
        {
            form.Add(("client_id", clientId));
        }

        return TokenAsync(server, clientId, secret, form.ToArray());
    }

    public static async Task<HttpStatusCode> MeStatusAsync(NexusTestServer server, string accessToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/me");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        using var response = await server.Http.SendAsync(request);
        return response.StatusCode;
    }

    public static async Task<JsonElement> IntrospectAsync(NexusTestServer server, string clientId, string secret, string token, string? hint = null)
    {
        using var response = await server.Http.SendAsync(TokenFormRequest("/oauth2/introspect", clientId, secret, token, hint));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    /// <summary>RFC 7009 revocation by the client (HTTP Basic); the answer is 200 whatever the token was.</summary>
    public static async Task RevokeAsync(NexusTestServer server, string clientId, string secret, string token, string? hint = null)
    {
        using var response = await server.Http.SendAsync(TokenFormRequest("/oauth2/revoke", clientId, secret, token, hint));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>A post of token (and token_type_hint) to introspection or revocation, authenticated with HTTP Basic.</summary>
    public static HttpRequestMessage TokenFormRequest(string path, string clientId, string secret, string token, string? hint = null)
    {
        var form = new Dictionary<string, string> { ["token"] = token };
        if (hint is not null)
        {
            form["token_type_hint"] = hint;
        }

        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new FormUrlEncodedContent(form) };
        request.Headers.Authorization = NexusTestServer.Basic(clientId, secret);
        return request;
    }

    public static string NewEmail() => $"user-{Guid.NewGuid():N}@example.com";

    public const string Password = "correct horse battery";

    /// <summary>A signed-up, signed-in user and a browser holding the session.</summary>
    public static async Task<Browser> SignedInBrowserAsync(NexusTestServer server, string? email = null)
    {
        var browser = new Browser(server);
        await browser.SignUpAsync(email ?? NewEmail(), Password);
        return browser;
    }

    /// <summary>Signs up, authorizes and exchanges the code: the whole happy path.</summary>
    public static async Task<(JsonElement Tokens, Browser Browser)> CompleteFlowAsync(NexusTestServer server, string clientId, string? secret, string scope = "openid profile email offline_access")
    {
        var browser = await SignedInBrowserAsync(server);
        var (verifier, challenge) = Pkce();
        var back = await AuthorizeAsync(browser, AuthorizeUrl(clientId, challenge, scope: scope));
        var code = Browser.Query(back)["code"];
        var (status, body) = await ExchangeCodeAsync(server, clientId, secret, code, verifier);
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        return (body, browser);
    }
}
