using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>A Nexus server and a fake provider, shared by the broker tests of a class.</summary>
public class BrokerFixture : IAsyncLifetime
{
    public const string ReturnUrl = "https://app.example.test/oauth/return";

    public NexusTestServer Server { get; private set; } = null!;

    public TestDatabase Database { get; private set; } = null!;

    public FakeOAuthProvider Fake { get; private set; } = null!;

    public BrokerKit Kit { get; private set; } = null!;

    protected virtual void Configure(Dictionary<string, string?> settings)
    {
    }

    /// <summary>Test services for the server (they replace the app's own registrations).</summary>
    protected virtual void ConfigureServices(IServiceCollection services)
    {
    }

    public async ValueTask InitializeAsync()
    {
        Fake = await FakeOAuthProvider.StartAsync();
        Database = await TestDatabase.CreateAsync();
        Server = await NexusTestServer.StartAsync(Database, s =>
        {
            s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/,https://other.example.test";
            s["Nexus:AuditTokenReadIntervalSeconds"] = "0";
            Configure(s);
        }, services: ConfigureServices);
        Kit = new BrokerKit(Server, Fake);
    }

    public async ValueTask DisposeAsync()
    {
        Kit.Dispose();
        await Server.DisposeAsync();
        await Database.DisposeAsync();
        await Fake.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}

/// <summary>The steps of a connection handshake, driven over HTTP the way a browser and an app would.</summary>
public sealed class BrokerKit(NexusTestServer server, FakeOAuthProvider fake) : IDisposable
{
    /// <summary>A browser that does not follow redirects, so each hop can be inspected.</summary>
    public HttpClient Browser { get; } = new(new SocketsHttpHandler { AllowAutoRedirect = false });

    public NexusTestServer Server => server;

    public FakeOAuthProvider Fake => fake;

    /// <summary>Registers a custom provider of the given flavor pointing at the fake; returns its name.</summary>
    public async Task<string> RegisterAsync(string flavor, object? overrides = null, string? name = null)
    {
        name ??= flavor + "-" + Guid.NewGuid().ToString("N")[..8];
        var body = new Dictionary<string, object?>
        {
            ["name"] = name,
            ["authorization_url"] = fake.Url(flavor, "authorize"),
            ["token_url"] = fake.Url(flavor, "token"),
            ["revocation_url"] = fake.Url(flavor, "revoke"),
            ["api_base_url"] = fake.BaseUrl + "/api",
            ["client_id"] = fake.ClientId,
            ["client_secret"] = fake.ClientSecret,
            ["scopes"] = new[] { "read:user" },
            ["pkce"] = true,
            ["token_endpoint_auth"] = "client_secret_post",
        };
        if (overrides is not null)
        {
            foreach (var property in JsonSerializer.SerializeToElement(overrides).EnumerateObject())
            {
                body[property.Name] = property.Value;
            }
        }

        await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", body, HttpStatusCode.Created);
        return name;
    }

    public async Task<string> CreateApiKeyAsync(string[] workspaces, bool canReadCredentials = true)
    {
        var created = await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/api-keys",
            new { name = "test key", workspaces, can_read_credentials = canReadCredentials }, HttpStatusCode.Created);
        return created.GetProperty("api_key").GetString()!;
    }

    public HttpRequestMessage Gateway(HttpMethod method, string path, object? json = null, string? apiKey = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-API-Key", apiKey ?? server.ApiKey);
        if (json is not null)
        {
            request.Content = JsonContent.Create(json);
        }

        return request;
    }

    public async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpMethod method, string path, object? json = null, string? apiKey = null)
    {
        using var response = await server.Http.SendAsync(Gateway(method, path, json, apiKey));
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>POST /v1/request-connection; returns (auth_url, connection_id).</summary>
    public async Task<(string AuthUrl, string ConnectionId)> RequestAsync(string provider, string workspace = "user_abc123", string[]? scopes = null,
        string returnUrl = BrokerFixture.ReturnUrl, string? apiKey = null)
    {
        var (status, body) = await SendAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = workspace, provider_name = provider, scopes, return_url = returnUrl }, apiKey);
        Assert.True(status == HttpStatusCode.Created, $"request-connection answered {(int)status}: {body}");
        return (body.GetProperty("auth_url").GetString()!, body.GetProperty("connection_id").GetString()!);
    }

    /// <summary>The browser at the provider: returns the callback URL the provider redirects to.</summary>
    public async Task<string> ConsentAsync(string authUrl)
    {
        using var response = await Browser.GetAsync(authUrl);
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        var callback = response.Headers.Location!.ToString();
        Assert.StartsWith(server.Issuer + "/auth/callback?", callback);
        return callback;
    }

    /// <summary>The browser at Nexus's callback: returns the response (a redirect to return_url, or a problem).</summary>
    public Task<HttpResponseMessage> CallbackAsync(string callbackUrl) => Browser.GetAsync(callbackUrl);

    /// <summary>A whole handshake; returns the connection id and the query Nexus sent the browser to return_url with.</summary>
    /// <param name="personsBrowser">
    /// For a workspace that is a Nexus account's: a browser signed in as that person, who alone may complete its consent
    /// (Connections.PersonalConsent).
    /// </param>
    public async Task<(string ConnectionId, Dictionary<string, string> Returned)> ConnectAsync(string provider, string workspace = "user_abc123", string[]? scopes = null, string? apiKey = null,
        HttpClient? personsBrowser = null)
    {
        var (authUrl, id) = await RequestAsync(provider, workspace, scopes, apiKey: apiKey);
        using var response = await (personsBrowser ?? Browser).GetAsync(await ConsentAsync(authUrl));
        Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"callback answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return (id, ReturnedQuery(response));
    }

    public static Dictionary<string, string> ReturnedQuery(HttpResponseMessage redirect)
    {
        var location = redirect.Headers.Location!.ToString();
        Assert.StartsWith(BrokerFixture.ReturnUrl + "?", location);
        return QueryHelpers.ParseQuery(new Uri(location).Query).ToDictionary(kv => kv.Key, kv => kv.Value.ToString());
    }

    public void Dispose() => Browser.Dispose();
}
