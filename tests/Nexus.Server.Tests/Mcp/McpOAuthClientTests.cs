using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Authentication;
using ModelContextProtocol.Client;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.Mcp;
using Nexus.Server.Tests.AuthorizationServer;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Mcp;

/// <summary>
/// The official C# MCP client (ModelContextProtocol 2.4.0) with its OAuth client options, given nothing but the URL
/// of /mcp: no client registered by an admin, no token minted by the test. It meets the 401, reads the protected
/// resource metadata the challenge names (RFC 9728), reads the authorization server metadata (RFC 8414), identifies
/// itself by dynamic client registration (RFC 7591) or by a client ID metadata document, and sends the person to
/// /oauth2/authorize with PKCE and resource=BASE_URL/mcp (RFC 8707). The person's side (already signed in, approves on
/// the consent page) is driven over HTTP by <see cref="Browser"/>; the code goes back to the SDK, which redeems it and
/// retries. Every request the SDK makes is recorded, so the test can show the discovery really started from the 401.
/// Then, with the token it obtained, the client asks the person to connect a service (connect_service), the person
/// follows the link through the provider's consent, call_api reaches the upstream with the connection's credential,
/// and after the provider revoked the grant the tool answers "authorization required" with a new link.
/// </summary>
public sealed class McpOAuthClientTests(McpOAuthClientTests.Fixture fixture) : IClassFixture<McpOAuthClientTests.Fixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>
    /// <see cref="McpFixture"/>, plus an https document server on loopback for client ID metadata documents. The SDK
    /// accepts only an https metadata document URL (draft §3), so the server has a self-signed certificate, and Nexus's
    /// document HttpClient is told to trust that one certificate (by thumbprint) and nothing else beyond the usual.
    /// </summary>
    public sealed class Fixture : McpFixture
    {
        private WebApplication? documents;
        private X509Certificate2? certificate;

        public string DocumentsBaseUrl { get; private set; } = "";

        public ConcurrentDictionary<string, string> Documents { get; } = new();

        public ConcurrentDictionary<string, int> Fetches { get; } = new();

        public override async ValueTask InitializeAsync()
        {
            certificate = SelfSigned();
            var port = LoopbackHost.FreePort();
            DocumentsBaseUrl = $"https://127.0.0.1:{port}";
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, listen => listen.UseHttps(certificate)));
            documents = builder.Build();
            documents.Run(async context =>
            {
                var path = context.Request.Path.Value!;
                Fetches.AddOrUpdate(path, 1, (_, n) => n + 1);
                if (!Documents.TryGetValue(path, out var body))
                {
                    context.Response.StatusCode = 404;
                    return;
                }

                context.Response.ContentType = "application/json";
                context.Response.Headers.CacheControl = "max-age=300";
                await context.Response.WriteAsync(body);
            });
            await documents.StartAsync();
            await base.InitializeAsync();
        }

        protected override void ConfigureServices(IServiceCollection services)
        {
            var thumbprint = certificate!.GetCertHashString(HashAlgorithmName.SHA256);
            services.Configure<HttpClientFactoryOptions>(ClientMetadataDocuments.HttpClientName, options => options.HttpMessageHandlerBuilderActions.Add(handler =>
            {
                if (handler.PrimaryHandler is SocketsHttpHandler sockets)
                {
                    sockets.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, errors) =>
                        errors == System.Net.Security.SslPolicyErrors.None
                        || (presented is not null && presented.GetCertHashString(HashAlgorithmName.SHA256) == thumbprint);
                }
            }));
        }

        public override async ValueTask DisposeAsync()
        {
            await base.DisposeAsync();
            if (documents is not null)
            {
                await documents.DisposeAsync();
            }

            certificate?.Dispose();
        }

        private static X509Certificate2 SelfSigned()
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
            var names = new SubjectAlternativeNameBuilder();
            names.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(names.Build());
            using var ephemeral = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(2));
            // Kestrel needs the key in a form SslStream can use on Linux: round-trip through PKCS#12.
            return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null);
        }
    }

    [Fact]
    public async Task TheCSharpSdkClientRegistersItselfGetsConsentConnectsAServiceJustInTimeAndCallsItsApi()
    {
        var service = await fixture.RegisterServiceAsync();
        var (browser, userId) = await fixture.PersonAsync();
        using var _ = browser;
        var run = new SdkRun(fixture, browser);

        await using var client = await run.ConnectAsync(new ClientOAuthOptions
        {
            RedirectUri = new Uri($"http://127.0.0.1:{LoopbackHost.FreePort()}/callback"),
            DynamicClientRegistration = new DynamicClientRegistrationOptions { ClientName = "SDK Assistant (DCR)" },
        });

        // Discovery started from the 401 and went through registration before the first authorized request.
        run.AssertDiscoveryOrder("POST /oauth2/register");
        var clientId = run.ClientId;
        Assert.StartsWith("nxc_", clientId);
        Assert.Equal("dynamic", (await fixture.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{Uri.EscapeDataString(clientId)}")).GetProperty("registration").GetString());
        Assert.Contains("SDK Assistant (DCR)", run.ConsentPage);
        Assert.Contains("registered itself", run.ConsentPage);

        await run.AssertTokenAndToolsAsync(client, userId, service);
    }

    [Fact]
    public async Task TheCSharpSdkClientIdentifiesItselfByAMetadataDocumentGetsConsentConnectsAServiceJustInTimeAndCallsItsApi()
    {
        var service = await fixture.RegisterServiceAsync();
        var (browser, userId) = await fixture.PersonAsync();
        using var _ = browser;
        var run = new SdkRun(fixture, browser);

        var redirect = $"http://127.0.0.1:{LoopbackHost.FreePort()}/callback";
        var path = $"/clients/sdk-{Guid.NewGuid():N}.json";
        var documentUrl = fixture.DocumentsBaseUrl + path;
        fixture.Documents[path] = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["client_id"] = documentUrl,
            ["client_name"] = "SDK Assistant (metadata document)",
            ["redirect_uris"] = new[] { redirect },
            ["grant_types"] = new[] { "authorization_code", "refresh_token" },
            ["response_types"] = new[] { "code" },
            ["token_endpoint_auth_method"] = "none",
        });

        await using var client = await run.ConnectAsync(new ClientOAuthOptions
        {
            RedirectUri = new Uri(redirect),
            ClientMetadataDocumentUri = new Uri(documentUrl),
        });

        // No registration: the client_id Nexus saw is the document's URL, which Nexus fetched once.
        run.AssertDiscoveryOrder(null);
        Assert.DoesNotContain(run.Requests, r => r.StartsWith("POST /oauth2/register", StringComparison.Ordinal));
        Assert.Equal(documentUrl, run.ClientId);
        Assert.Equal(1, fixture.Fetches[path]);
        Assert.Equal("metadata_document", (await fixture.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{Uri.EscapeDataString(documentUrl)}")).GetProperty("registration").GetString());
        Assert.Contains("SDK Assistant (metadata document)", run.ConsentPage);
        Assert.Contains("registered itself", run.ConsentPage);

        await run.AssertTokenAndToolsAsync(client, userId, service);
    }

    /// <summary>One SDK client's connection: its recorded requests, the person's side of the flow, and its tokens.</summary>
    private sealed class SdkRun(McpFixture fixture, Browser browser)
    {
        private readonly ConcurrentQueue<string> lines = new();
        private readonly HeldTokens tokens = new();
        private readonly List<Uri> authorizations = [];

        public IReadOnlyList<string> Requests => lines.ToList();

        public string ConsentPage { get; private set; } = "";

        /// <summary>The client_id the SDK sent to /oauth2/authorize.</summary>
        public string ClientId => Browser.Query(Assert.Single(authorizations))["client_id"];

        public async Task<McpClient> ConnectAsync(ClientOAuthOptions oauth)
        {
            oauth.TokenCache = tokens;
            oauth.AuthorizationCallbackHandler = SignInAndConsentAsync;
            // The HttpClient, which the transport owns, disposes the recorder.
            var http = new HttpClient(new Recorder(lines));
            var transport = new HttpClientTransport(
                new HttpClientTransportOptions { Endpoint = new Uri(fixture.McpUrl), TransportMode = HttpTransportMode.StreamableHttp, OAuth = oauth },
                http, ownsHttpClient: true);
            return await McpClient.CreateAsync(transport, cancellationToken: Ct);
        }

        /// <summary>The person in their browser: opens the authorization URL (already signed in), approves, and the redirect's query goes back to the SDK.</summary>
        private async Task<AuthorizationResult?> SignInAndConsentAsync(AuthorizationCallbackContext context, CancellationToken ct)
        {
            authorizations.Add(context.AuthorizationUri);
            var query = Browser.Query(context.AuthorizationUri);
            // RFC 8707: the SDK asks for a token for /mcp itself; RFC 7636: with S256.
            Assert.Equal(fixture.McpUrl, query["resource"]);
            Assert.Equal("S256", query["code_challenge_method"]);

            var landed = await browser.NavigateAsync(context.AuthorizationUri.AbsoluteUri);
            Assert.True(browser.LastStatus == HttpStatusCode.OK, $"{landed} answered {browser.LastStatus}:\n{browser.LastPage}\nrequests so far: {string.Join(", ", Requests)}");
            ConsentPage = browser.LastPage;
            var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
            Assert.Equal(context.RedirectUri.GetLeftPart(UriPartial.Path), back.GetLeftPart(UriPartial.Path));
            var answer = Browser.Query(back);
            return new AuthorizationResult { Code = answer["code"], State = answer.GetValueOrDefault("state"), Iss = answer.GetValueOrDefault("iss") };
        }

        /// <summary>
        /// The first request to /mcp was refused with 401; then protected resource metadata, authorization server
        /// metadata, <paramref name="registration"/> (when given), the token endpoint, and /mcp again, accepted.
        /// </summary>
        public void AssertDiscoveryOrder(string? registration)
        {
            var lines = Requests;
            var mcp = new Uri(fixture.McpUrl).AbsolutePath;
            Assert.Equal($"POST {mcp} 401", lines[0]);
            var expected = new List<string> { "GET /.well-known/oauth-protected-resource/mcp 200", "GET /.well-known/oauth-authorization-server 200" };
            if (registration is not null)
            {
                expected.Add(registration + " 201");
            }

            expected.Add("POST /oauth2/token 200");
            expected.Add($"POST {mcp} 200");
            var position = 0;
            foreach (var line in lines)
            {
                if (position < expected.Count && line == expected[position])
                {
                    position++;
                }
            }

            Assert.True(position == expected.Count, $"expected, in this order: {string.Join(", ", expected)}\nrecorded: {string.Join(", ", lines)}");
        }

        /// <summary>
        /// The SDK holds an access token for /mcp (aud) for the person (sub), can list and call tools with it, and
        /// goes through the whole just-in-time connection (<see cref="McpFixture.AssertJustInTimeConnectionAsync"/>).
        /// </summary>
        public async Task AssertTokenAndToolsAsync(McpClient client, string userId, string service)
        {
            var held = await tokens.GetTokensAsync(Ct);
            Assert.NotNull(held?.AccessToken);
            var claims = ResourceIndicatorTests.Payload(held.AccessToken);
            Assert.Equal(fixture.McpUrl, claims.GetProperty("aud").GetString());
            Assert.Equal(userId, claims.GetProperty("sub").GetString());
            Assert.Equal(ClientId, claims.GetProperty("client_id").GetString());
            Assert.Equal(McpResource.Scopes.Order(), held.Scope!.Split(' ').Intersect(McpResource.Scopes).Order());

            var tools = (await client.ListToolsAsync(cancellationToken: Ct)).Select(t => t.Name).Order().ToList();
            Assert.Equal(["add_mcp_server", "call_api", "call_remote_tool", "connect_service", "connection_status", "disconnect_service", "list_connections", "list_remote_tools", "list_services"], tools);
            var services = McpFixture.Structured(await client.CallToolAsync("list_services", cancellationToken: Ct)).GetProperty("services");
            Assert.Contains(services.EnumerateArray(), s => s.GetProperty("service").GetString() == service);

            // With the token it obtained itself: connect_service, the person's consent at the provider (same browser,
            // same signed-in person), call_api through the Bridge, and "authorization required" after revocation.
            await fixture.AssertJustInTimeConnectionAsync(
                async (tool, arguments) => McpFixture.Structured(await client.CallToolAsync(tool, arguments, cancellationToken: Ct)), browser, service);
        }
    }

    /// <summary>Where the SDK keeps its tokens, so the test can read the access token it holds.</summary>
    private sealed class HeldTokens : ITokenCache
    {
        private TokenContainer? held;

        public ValueTask StoreTokensAsync(TokenContainer tokens, CancellationToken cancellationToken)
        {
            held = tokens;
            return ValueTask.CompletedTask;
        }

        public ValueTask<TokenContainer?> GetTokensAsync(CancellationToken cancellationToken) => ValueTask.FromResult(held);
    }

    /// <summary>Records "METHOD path status" for each request the SDK sends (MCP and OAuth alike).</summary>
    private sealed class Recorder(ConcurrentQueue<string> lines) : DelegatingHandler(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false })
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            lines.Enqueue($"{request.Method} {request.RequestUri!.AbsolutePath} {(int)response.StatusCode}");
            return response;
        }
    }
}
