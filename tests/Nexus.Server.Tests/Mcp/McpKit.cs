using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Mcp;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Mcp;

/// <summary>
/// A Nexus with a rotating OAuth provider whose API is an echo upstream, and the means to act as a person and as
/// their assistant: sign up in a browser, hold an MCP access token, and connect the official C# MCP client to /mcp.
/// </summary>
public class McpFixture : IAsyncLifetime
{
    public const string Password = "correct horse battery";

    public NexusTestServer Server { get; private set; } = null!;

    public TestDatabase Database { get; private set; } = null!;

    public RotatingProvider Provider { get; private set; } = null!;

    public EchoUpstream Api { get; private set; } = null!;

    public string ClientId { get; private set; } = null!;

    /// <summary>What the server logged (at the levels the test host enables).</summary>
    public CapturedLogs Logs { get; } = new();

    public string McpUrl => Server.Issuer + McpResource.Path;

    /// <summary>A browser origin listed in Nexus:Mcp:AllowedOrigins, as browsers send it.</summary>
    public const string OtherAllowedOrigin = "https://assistant.example.com";

    public virtual async ValueTask InitializeAsync()
    {
        Provider = await RotatingProvider.StartAsync();
        Api = await EchoUpstream.StartAsync();
        Database = await TestDatabase.CreateAsync();
        // Two browser origins besides Nexus's own may use /mcp; the first written as an operator might (case, port 443, /).
        Server = await NexusTestServer.StartAsync(Database, settings =>
            {
                settings["Nexus:Mcp:AllowedOrigins"] = "https://Assistant.example.com:443/, http://localhost:6274";
                // What the SDK's failure entries become (McpElicitationLogLevel) is written at Debug.
                settings["Logging:LogLevel:ModelContextProtocol.Server.McpServer"] = "Debug";
            },
            services: services =>
            {
                services.AddSingleton<ILoggerProvider>(Logs);
                ConfigureServices(services);
            });
        (ClientId, _) = await Server.CreateAppClientAsync(name: "an assistant");
    }

    /// <summary>Test services added to Nexus before it starts (none here).</summary>
    protected virtual void ConfigureServices(IServiceCollection services)
    {
    }

    /// <summary>Registers a provider that signs in at the rotating provider and whose API is the echo upstream.</summary>
    public async Task<string> RegisterServiceAsync()
    {
        var name = "svc-" + Guid.NewGuid().ToString("N")[..8];
        await Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new Dictionary<string, object?>
        {
            ["name"] = name,
            ["authorization_url"] = Provider.Url("authorize"),
            ["token_url"] = Provider.Url("token"),
            ["revocation_url"] = Provider.Url("revoke"),
            ["api_base_url"] = Api.BaseUrl,
            ["client_id"] = Provider.ClientId,
            ["client_secret"] = Provider.ClientSecret,
            ["scopes"] = new[] { "read" },
        }, HttpStatusCode.Created);
        return name;
    }

    /// <summary>A person signed up in a browser; returns the browser and their user id.</summary>
    public async Task<(Browser Browser, string UserId)> PersonAsync()
    {
        var email = $"mcp-{Guid.NewGuid():N}@example.com";
        var browser = new Browser(Server);
        await browser.SignUpAsync(email, Password);
        using var scope = Server.Services.CreateScope();
        var user = await scope.ServiceProvider.GetRequiredService<UserManager<NexusUser>>().FindByEmailAsync(email);
        return (browser, user!.Id);
    }

    /// <summary>
    /// An access token for the person, issued by Nexus's own token issuer for the MCP resource (RFC 8707 aud). The
    /// authorization-server side of issue 14 (DCR, CIMD, resource on /oauth2/authorize) issues the same tokens.
    /// </summary>
    public string McpToken(string userId, IEnumerable<string>? scopes = null, string? resource = null) =>
        Server.Services.GetRequiredService<AccessTokenIssuer>()
            .Issue(userId, ClientId, string.Join(" ", scopes ?? McpResource.Scopes), 600, audience: resource ?? McpUrl).Token;

    /// <summary>The official C# MCP client, connected to /mcp with the token.</summary>
    public async Task<McpClient> ClientAsync(string token, McpClientOptions? options = null)
    {
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(McpUrl),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + token },
        });
        return await McpClient.CreateAsync(transport, options, cancellationToken: TestContext.Current.CancellationToken);
    }

    /// <summary>A raw JSON-RPC POST to /mcp, for the answers an SDK client would not show.</summary>
    public Task<HttpResponseMessage> PostAsync(string? token, string method, object? @params = null, string? origin = null, string? url = null) =>
        PostContentAsync(token, new StringContent(JsonSerializer.Serialize(new { jsonrpc = "2.0", id = 1, method, @params = @params ?? new { } }), Encoding.UTF8, "application/json"), origin, url);

    /// <summary>A POST to /mcp with the body exactly as given (its order of members, its framing).</summary>
    public async Task<HttpResponseMessage> PostContentAsync(string? token, HttpContent content, string? origin = null, string? url = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url ?? McpUrl) { Content = content };
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.Add("MCP-Protocol-Version", "2025-11-25");
        if (token is not null)
        {
            request.Headers.Authorization = new("Bearer", token);
        }

        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        return await Server.Http.SendAsync(request);
    }

    /// <summary>One tools/call through whichever MCP client a test drives: the tool's structured answer.</summary>
    public delegate Task<JsonElement> ToolCall(string tool, Dictionary<string, object?> arguments);

    /// <summary>
    /// The just-in-time connection, as any MCP client sees it (issue 14): call_api on a service not connected yet
    /// answers "authorization required" with a link; connect_service makes a link; the person, signed in in
    /// <paramref name="browser"/>, follows it through the provider's consent; call_api then reaches the upstream with
    /// the connection's credential, which the answer never echoes; once the provider revoked the grant (the token is
    /// rejected and the refresh answers invalid_grant), call_api answers "authorization required" again, with a link.
    /// </summary>
    public async Task AssertJustInTimeConnectionAsync(ToolCall call, Browser browser, string service)
    {
        var before = await call("call_api", new() { ["service"] = service, ["method"] = "GET", ["path"] = "/protected" });
        Assert.Equal("authorization_required", before.GetProperty("status").GetString());
        Assert.StartsWith(Server.Issuer + McpConnectLinks.PagePath + "?ticket=", before.GetProperty("connect_url").GetString());

        var link = await call("connect_service", new() { ["service"] = service });
        Assert.Equal("link_created", link.GetProperty("status").GetString());
        var family = await ConsentThroughLinkAsync(browser, link.GetProperty("connect_url").GetString()!, service);

        var status = await call("connection_status", new() { ["service"] = service });
        Assert.Equal("active", status.GetProperty("connection").GetProperty("status").GetString());

        // call_api reaches the service's API with the connection's credential, which the assistant never sees.
        var issued = family.Chain.Last();
        Api.AcceptedTokens[issued.AccessToken] = true;
        var answer = await call("call_api", new()
        {
            ["service"] = service, ["method"] = "GET", ["path"] = "/protected", ["query"] = new Dictionary<string, string> { ["page"] = "2" },
        });
        Assert.Equal(200, answer.GetProperty("status").GetInt32());
        var seen = Api.Requests.Last(r => r.Path == "/protected");
        Assert.Equal("Bearer " + issued.AccessToken, seen.Headers["Authorization"]);
        Assert.Equal("?page=2", seen.Query);
        Assert.DoesNotContain(issued.AccessToken, answer.GetRawText());
        Assert.DoesNotContain(issued.RefreshToken!, answer.GetRawText());

        // The service revokes the grant: the token stops working and the refresh is refused, so the person must act.
        Api.AcceptedTokens.TryRemove(issued.AccessToken, out _);
        Provider.RevokeFamily(issued.AccessToken);
        var after = await call("call_api", new() { ["service"] = service, ["method"] = "GET", ["path"] = "/protected" });
        Assert.Contains(Provider.RefreshCalls, c => c.FamilyId == family.Id && c.Outcome == "revoked");
        Assert.Equal("authorization_required", after.GetProperty("status").GetString());
        Assert.Equal("attention_required", after.GetProperty("connection_status").GetString());
        Assert.StartsWith(Server.Issuer + McpConnectLinks.PagePath + "?ticket=", after.GetProperty("connect_url").GetString());
        Assert.DoesNotContain(issued.AccessToken, after.GetRawText());
    }

    /// <summary>
    /// The person opens a connect link signed in, sees the permissions, and approves them at the provider; returns
    /// the grant (token family) the provider issued for it.
    /// </summary>
    public async Task<RotatingProvider.Family> ConsentThroughLinkAsync(Browser browser, string connectUrl, string service)
    {
        await browser.NavigateAsync(connectUrl);
        Assert.Equal(System.Net.HttpStatusCode.OK, browser.LastStatus);
        Assert.Contains("Your AI assistant asked", browser.LastPage);
        Assert.Contains("<code>read</code>", browser.LastPage);
        var known = Provider.Families.Keys.ToHashSet();
        var landed = await browser.SubmitAsync("/dashboard/connect/" + service, followForeign: true);
        Assert.Equal("/dashboard", landed.AbsolutePath);
        return Provider.Families[Assert.Single(Provider.Families.Keys, k => !known.Contains(k))];
    }

    public static JsonElement Structured(CallToolResult result) =>
        JsonDocument.Parse(result.Content.OfType<TextContentBlock>().Single().Text).RootElement.Clone();

    public virtual async ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        await Server.DisposeAsync();
        await Database.DisposeAsync();
        await Api.DisposeAsync();
        await Provider.DisposeAsync();
    }
}
