using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Providers;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>
/// A Nexus whose catalog holds Shopify-, Salesforce- and Mailchimp-like entries pointing at one <see cref="TenantProvider"/>
/// (tenant hosts under .localhost), each registered once, plus a public-client provider and a webhook receiver.
/// </summary>
public sealed class TenantFixture : IAsyncLifetime
{
    public const string ReturnUrl = BrokerFixture.ReturnUrl;

    public NexusTestServer Server { get; private set; } = null!;

    public TestDatabase Database { get; private set; } = null!;

    public TenantProvider Fake { get; private set; } = null!;

    public WebhookReceiver Hooks { get; private set; } = null!;

    public BrokerKit Kit { get; private set; } = null!;

    /// <summary>The registered providers: shop, sf, mc (catalog entries with per-connection values) and public (no secret).</summary>
    public const string Shop = "shop";

    public const string Sf = "sf";

    public const string Mc = "mc";

    public const string Public = "public";

    public async ValueTask InitializeAsync()
    {
        Fake = await TenantProvider.StartAsync();
        Hooks = await WebhookReceiver.StartAsync();
        Database = await TestDatabase.CreateAsync();
        var catalog = Catalog(Fake.Port);
        Assert.DoesNotContain(catalog.Validate(), e => !e.Contains("https", StringComparison.Ordinal));
        Server = await NexusTestServer.StartAsync(Database, s =>
        {
            s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/";
            s["Nexus:AuditTokenReadIntervalSeconds"] = "0";
        }, services: services => services.AddSingleton(catalog));
        Kit = new BrokerKit(Server, null!);
        foreach (var name in new[] { Shop, Sf, Mc })
        {
            await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new { name, catalog = name + "like", client_id = Fake.ClientId, client_secret = Fake.ClientSecret },
                HttpStatusCode.Created);
        }

        await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = Public,
            authorization_url = Fake.Url("public.localhost", "/authorize"),
            token_url = Fake.Url("public.localhost", "/token"),
            api_base_url = Fake.Url("public.localhost", "/api"),
            client_id = Fake.ClientId,
            token_endpoint_auth = "none",
            scopes = new[] { "read" },
        }, HttpStatusCode.Created);
        await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/webhooks", new { url = Hooks.Url, events = new[] { "connection.recovered", "connection.revoked" } },
            HttpStatusCode.Created);
    }

    private static ProviderCatalog Catalog(int port)
    {
        string U(string host, string path) => $"http://{host}.localhost:{port}{path}";
        CatalogEntry Entry(string name, string host, string tokenHost, string apiHost, Dictionary<string, CatalogPlaceholder> placeholders, CatalogMetadata? metadata = null) => new()
        {
            DisplayName = name,
            AuthMode = AuthModes.OAuth2,
            Categories = ["test"],
            DocsUrl = "https://example.test/docs",
            AuthorizationUrl = U(host, "/authorize"),
            TokenUrl = U(tokenHost, "/token"),
            RevocationUrl = U(apiHost, "/revoke"),
            ApiBaseUrl = U(apiHost, "/api"),
            DefaultScopes = [],
            Pkce = PkceModes.Supported,
            TokenEndpointAuth = ClientAuthMethods.Post,
            Refresh = new CatalogRefresh { Supported = true },
            Placeholders = placeholders,
            Metadata = metadata,
        };
        return new ProviderCatalog(new CatalogDocument
        {
            Version = 1,
            Providers = new()
            {
                ["shoplike"] = Entry("Shop-like", "{shop}", "{shop}", "{shop}", new()
                {
                    ["shop"] = new CatalogPlaceholder { Description = "Your store's name", Pattern = "^[a-z0-9][a-z0-9-]*$", Source = PlaceholderSources.Connection },
                }),
                ["sflike"] = Entry("Salesforce-like", "login", "login", "{instance}", new()
                {
                    // As loose as the real entry's: dots are allowed, so the host-label rule is what stops worse.
                    ["instance"] = new CatalogPlaceholder { Description = "My Domain", Pattern = "^[A-Za-z0-9][A-Za-z0-9.-]*$", Source = PlaceholderSources.TokenResponse, Field = "instance_url" },
                }),
                ["mclike"] = Entry("Mailchimp-like", "login", "login", "{dc}", new()
                {
                    ["dc"] = new CatalogPlaceholder { Description = "Data centre", Pattern = "^[a-z]+[0-9]+$", Source = PlaceholderSources.Metadata, Field = "dc" },
                }, new CatalogMetadata { Url = U("login", "/metadata"), AuthScheme = "OAuth" }),
            },
        });
    }

    /// <summary>POST /v1/request-connection; returns the status and body.</summary>
    public Task<(HttpStatusCode Status, JsonElement Body)> RequestAsync(string provider, object? connectionConfig = null, string workspace = "ws_tenant") =>
        Kit.SendAsync(HttpMethod.Post, "/v1/request-connection", new { workspace_id = workspace, provider_name = provider, return_url = ReturnUrl, connection_config = connectionConfig });

    /// <summary>Consent at the fake and Nexus's callback; returns the query Nexus sent the browser back to return_url with.</summary>
    public async Task<Dictionary<string, string>> CompleteAsync(string authorizeUrl)
    {
        var callback = await Fake.ConsentAsync(authorizeUrl);
        Assert.StartsWith(Server.Issuer + "/auth/callback?", callback);
        using var response = await Kit.Browser.GetAsync(callback);
        Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"callback answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return QueryHelpers.ParseQuery(response.Headers.Location!.Query).ToDictionary(kv => kv.Key, kv => kv.Value.ToString());
    }

    /// <summary>A whole connection; returns its id.</summary>
    public async Task<string> ConnectAsync(string provider, object? connectionConfig = null, string workspace = "ws_tenant")
    {
        var (status, body) = await RequestAsync(provider, connectionConfig, workspace);
        Assert.True(status == HttpStatusCode.Created, $"request-connection answered {(int)status}: {body}");
        var returned = await CompleteAsync(body.GetProperty("auth_url").GetString()!);
        Assert.Equal("active", returned["status"]);
        return body.GetProperty("connection_id").GetString()!;
    }

    public async Task<JsonElement> ConnectionAsync(string id)
    {
        var (status, body) = await Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}");
        Assert.Equal(HttpStatusCode.OK, status);
        return body;
    }

    public async Task<string> TokenAsync(string id)
    {
        var (status, body) = await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.True(status == HttpStatusCode.OK, $"token answered {(int)status}: {body}");
        return body.GetProperty("credentials").GetProperty("access_token").GetString()!;
    }

    /// <summary>A GET through the Bridge; returns the status and the host the upstream saw.</summary>
    public async Task<(HttpStatusCode Status, string? Host)> BridgeAsync(string id)
    {
        var (status, body) = await Kit.SendAsync(HttpMethod.Get, $"/v1/bridge/{id}/orders");
        return (status, status == HttpStatusCode.OK ? body.GetProperty("host").GetString() : null);
    }

    public async ValueTask DisposeAsync()
    {
        Kit.Dispose();
        await Server.DisposeAsync();
        await Database.DisposeAsync();
        await Hooks.DisposeAsync();
        await Fake.DisposeAsync();
    }
}
