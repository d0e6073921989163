using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>The client credentials grant and every row of the Nexus Authentication document's error table.</summary>
public sealed class TokenEndpointTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    private static async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> SendAsync(NexusTestServer server, HttpRequestMessage request)
    {
        var response = await server.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone(), response);
    }

    private static HttpRequestMessage Form(string body, string contentType = "application/x-www-form-urlencoded", string path = "/oauth2/token") =>
        new(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue(contentType.Split(';')[0])) };

    private static void AssertOAuthError(HttpStatusCode expectedStatus, string expectedError, (HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response) result)
    {
        Assert.Equal(expectedStatus, result.Status);
        Assert.Equal(expectedError, result.Body.GetProperty("error").GetString());
        Assert.False(string.IsNullOrEmpty(result.Body.GetProperty("error_description").GetString()));
        Assert.Equal("no-store", result.Response.Headers.CacheControl?.ToString());
    }

    [Theory]
    [InlineData("/oauth2/token")]
    [InlineData("/nexus/oauth2/token")]
    public async Task IssuesBearerTokenWithBasicCredentials(string path)
    {
        var (id, secret) = await Server.CreateAppClientAsync(["read", "write"], lifetime: 900);
        using var response = await Server.RequestTokenAsync(id, secret, path: path);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Bearer", body.GetProperty("token_type").GetString());
        Assert.Equal(900, body.GetProperty("expires_in").GetInt32());
        Assert.Equal("read write", body.GetProperty("scope").GetString());
        Assert.Equal(3, body.GetProperty("access_token").GetString()!.Split('.').Length);
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        Assert.StartsWith("application/json", response.Content.Headers.ContentType!.ToString());
    }

    [Fact]
    public async Task IssuesTokenWithCredentialsInTheBody()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        var result = await SendAsync(Server, Form($"grant_type=client_credentials&client_id={id}&client_secret={secret}"));
        Assert.Equal(HttpStatusCode.OK, result.Status);
        Assert.Equal("Bearer", result.Body.GetProperty("token_type").GetString());
    }

    [Fact]
    public async Task DecodesFormUrlEncodedBasicCredentials()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        // RFC 6749 §2.3.1: each part is form-urlencoded before base64; encode every character to prove decoding.
        static string EncodeAll(string s) => string.Concat(Encoding.UTF8.GetBytes(s).Select(b => $"%{b:X2}"));
        var request = Form("grant_type=client_credentials");
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{EncodeAll(id)}:{EncodeAll(secret)}")));
        var result = await SendAsync(Server, request);
        Assert.Equal(HttpStatusCode.OK, result.Status);
    }

    [Fact]
    public async Task RejectsWrongContentTypeWithInvalidRequest()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/token")
        {
            Content = new StringContent($"{{\"grant_type\":\"client_credentials\",\"client_id\":\"{id}\",\"client_secret\":\"{secret}\"}}", Encoding.UTF8, "application/json"),
        };
        AssertOAuthError(HttpStatusCode.BadRequest, "invalid_request", await SendAsync(Server, request));
    }

    [Fact]
    public async Task RejectsMissingCredentialsWithInvalidRequest()
    {
        AssertOAuthError(HttpStatusCode.BadRequest, "invalid_request", await SendAsync(Server, Form("grant_type=client_credentials")));
        AssertOAuthError(HttpStatusCode.BadRequest, "invalid_request", await SendAsync(Server, Form("grant_type=client_credentials&client_id=nxc_x")));
    }

    [Fact]
    public async Task RejectsCredentialsSentBothWaysWithInvalidRequest()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        var request = Form($"grant_type=client_credentials&client_id={id}&client_secret={secret}");
        request.Headers.Authorization = NexusTestServer.Basic(id, secret);
        AssertOAuthError(HttpStatusCode.BadRequest, "invalid_request", await SendAsync(Server, request));
    }

    [Theory]
    [InlineData("client_id=a&client_secret=b")]
    [InlineData("grant_type=password&client_id=a&client_secret=b")]
    [InlineData("grant_type=&client_id=a&client_secret=b")]
    public async Task RejectsMissingOrUnknownGrantTypeWithUnsupportedGrantType(string body)
    {
        AssertOAuthError(HttpStatusCode.BadRequest, "unsupported_grant_type", await SendAsync(Server, Form(body)));
    }

    [Fact]
    public async Task RejectsScopeOutsideTheClientsScopesWithInvalidScope()
    {
        var (id, secret) = await Server.CreateAppClientAsync(["read"]);
        var request = Form("grant_type=client_credentials&scope=read%20admin");
        request.Headers.Authorization = NexusTestServer.Basic(id, secret);
        AssertOAuthError(HttpStatusCode.BadRequest, "invalid_scope", await SendAsync(Server, request));
    }

    [Fact]
    public async Task GrantsRequestedSubsetOfScopes()
    {
        var (id, secret) = await Server.CreateAppClientAsync(["read", "write", "delete"]);
        using var response = await Server.RequestTokenAsync(id, secret, "write read");
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("write read", body.GetProperty("scope").GetString());
    }

    [Fact]
    public async Task RejectsWrongSecretWithInvalidClientAndBasicChallenge()
    {
        var (id, _) = await Server.CreateAppClientAsync();
        using var response = await Server.RequestTokenAsync(id, "nxs_wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Basic", response.Headers.WwwAuthenticate.Single().Scheme);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("invalid_client", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task RejectsUnknownClientWithInvalidClient()
    {
        using var response = await Server.RequestTokenAsync("nxc_doesnotexist", "nxs_whatever");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("invalid_client", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RejectsRevokedClientWithInvalidClient()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        Assert.Equal(HttpStatusCode.OK, (await Server.RequestTokenAsync(id, secret)).StatusCode);
        await Server.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/clients/{id}", expected: HttpStatusCode.NoContent);
        using var response = await Server.RequestTokenAsync(id, secret);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("invalid_client", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RotatedSecretReplacesTheOldOne()
    {
        var (id, oldSecret) = await Server.CreateAppClientAsync();
        var rotated = await Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/clients/{id}/secret");
        var newSecret = rotated.GetProperty("client_secret").GetString()!;
        Assert.NotEqual(oldSecret, newSecret);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Server.RequestTokenAsync(id, oldSecret)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Server.RequestTokenAsync(id, newSecret)).StatusCode);
    }

    [Theory]
    [InlineData("authorization_code")]
    [InlineData("refresh_token")]
    public async Task AnswersKnownGrantTheClientMayNotUseWith501(string grant)
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        var request = Form($"grant_type={grant}&code=x&refresh_token=y");
        request.Headers.Authorization = NexusTestServer.Basic(id, secret);
        AssertOAuthError(HttpStatusCode.NotImplemented, "unsupported_grant_type", await SendAsync(Server, request));
    }

    [Fact]
    public async Task AnOAuthApplicationAskingForAGrantItMayNotUseGetsUnauthorizedClientNot501()
    {
        // A self-registered MCP client (authorization_code only) asks for client_credentials: RFC 6749 §5.2, since the
        // product's 501 is for App Clients and discovery lists the grant.
        var (status, registered, _) = await ClientRegistrationTests.RegisterAsync(Server, new
        {
            client_name = "An assistant", redirect_uris = new[] { "https://assistant.example/callback" }, grant_types = new[] { "authorization_code" },
            token_endpoint_auth_method = "client_secret_basic",
        });
        Assert.True(status == HttpStatusCode.Created, registered.ToString());
        var request = Form("grant_type=client_credentials");
        request.Headers.Authorization = NexusTestServer.Basic(registered.GetProperty("client_id").GetString()!, registered.GetProperty("client_secret").GetString()!);
        AssertOAuthError(HttpStatusCode.BadRequest, "unauthorized_client", await SendAsync(Server, request));
    }

    [Fact]
    public async Task RejectsRepeatedParameters()
    {
        var (id, secret) = await Server.CreateAppClientAsync();
        var request = Form("grant_type=client_credentials&scope=read&scope=write");
        request.Headers.Authorization = NexusTestServer.Basic(id, secret);
        AssertOAuthError(HttpStatusCode.BadRequest, "invalid_request", await SendAsync(Server, request));
    }

    [Theory]
    [InlineData("grant_type=client_credentials&client_id=%zz&client_secret=x")]
    [InlineData("grant_type=client_credentials&client_id=%C3%28&client_secret=x")]
    [InlineData("grant_type=client_credentials&client_id=%&client_secret=x")]
    public async Task RejectsBadlyEncodedBodies(string body)
    {
        AssertOAuthError(HttpStatusCode.BadRequest, "invalid_request", await SendAsync(Server, Form(body)));
    }

    [Fact]
    public async Task RejectsNonUtf8Charset()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/token") { Content = new ByteArrayContent("grant_type=client_credentials"u8.ToArray()) };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/x-www-form-urlencoded; charset=iso-8859-1");
        AssertOAuthError(HttpStatusCode.BadRequest, "invalid_request", await SendAsync(Server, request));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RejectsHugeBodiesWithInvalidRequest(bool chunked)
    {
        // Far over the endpoint's 16 KiB limit, under Kestrel's 1 MiB cap past which it closes the connection.
        var huge = "grant_type=client_credentials&padding=" + new string('a', 512 * 1024);
        var content = chunked
            ? (HttpContent)new StreamContent(new MemoryStream(Encoding.ASCII.GetBytes(huge)))
            : new ByteArrayContent(Encoding.ASCII.GetBytes(huge));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-www-form-urlencoded");
        if (chunked)
        {
            content.Headers.ContentLength = null;
        }

        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/token") { Content = content };
        if (chunked)
        {
            request.Headers.TransferEncodingChunked = true;
        }

        AssertOAuthError(HttpStatusCode.BadRequest, "invalid_request", await SendAsync(Server, request));
    }

    [Theory]
    [InlineData("Basic !!!not-base64")]
    [InlineData("Basic bm8tY29sb24taGVyZQ==")]
    public async Task AMalformedBasicHeaderIsAFailedClientAuthenticationWithABasicChallenge(string header)
    {
        // RFC 6749 §5.2: the client tried HTTP Basic and failed: 401 invalid_client and WWW-Authenticate, never a 500.
        var request = Form("grant_type=client_credentials");
        request.Headers.TryAddWithoutValidation("Authorization", header);
        using var response = await Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.StartsWith("Basic", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Equal("invalid_client", System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
    }
}

/// <summary>Settings that change the token endpoint's behaviour, each on a server of its own.</summary>
public sealed class TokenEndpointSettingsTests
{
    [Fact]
    public async Task AnswersUnauthorizedClientWhenRfcBehaviourIsConfigured()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:UnauthorizedGrantResponse"] = "rfc");
        var (id, secret) = await server.CreateAppClientAsync();
        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/token") { Content = new StringContent("grant_type=refresh_token&refresh_token=x", Encoding.UTF8, "application/x-www-form-urlencoded") };
        request.Headers.Authorization = NexusTestServer.Basic(id, secret);
        using var response = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("\"unauthorized_client\"", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ThrottlesRepeatedFailedClientAuthentication()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:FailedClientAuthenticationLimit"] = "3");
        var (id, secret) = await server.CreateAppClientAsync();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await server.RequestTokenAsync(id, "nxs_guess" + i)).StatusCode);
        }

        using var throttled = await server.RequestTokenAsync(id, "nxs_guess");
        Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        Assert.True(throttled.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Contains("invalid_client", await throttled.Content.ReadAsStringAsync());

        // Another client from the same address is unaffected.
        var (other, otherSecret) = await server.CreateAppClientAsync();
        Assert.Equal(HttpStatusCode.OK, (await server.RequestTokenAsync(other, otherSecret)).StatusCode);
    }
}
