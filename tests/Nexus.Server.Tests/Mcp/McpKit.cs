using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
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

    public string McpUrl => Server.Issuer + McpResource.Path;

    public virtual async ValueTask InitializeAsync()
    {
        Provider = await RotatingProvider.StartAsync();
        Api = await EchoUpstream.StartAsync();
        Database = await TestDatabase.CreateAsync();
        Server = await NexusTestServer.StartAsync(Database, services: ConfigureServices);
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
    public async Task<McpClient> ClientAsync(string token)
    {
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(McpUrl),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + token },
        });
        return await McpClient.CreateAsync(transport, cancellationToken: TestContext.Current.CancellationToken);
    }

    /// <summary>A raw JSON-RPC POST to /mcp, for the answers an SDK client would not show.</summary>
    public async Task<HttpResponseMessage> PostAsync(string? token, string method, object? @params = null, string? origin = null, string? url = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url ?? McpUrl)
        {
            Content = new StringContent(JsonSerializer.Serialize(new { jsonrpc = "2.0", id = 1, method, @params = @params ?? new { } }), Encoding.UTF8, "application/json"),
        };
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
