using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>Client ID metadata documents, served by a loopback web server the test controls (allowed in tests by AllowInsecureUpstreams).</summary>
public sealed class ClientMetadataDocumentTests(ClientMetadataDocumentTests.Fixture fixture) : IClassFixture<ClientMetadataDocumentTests.Fixture>
{
    public const string Redirect = "http://127.0.0.1/assistant/callback";

    /// <summary>A Nexus server and a document server whose answers each test sets per path.</summary>
    public sealed class Fixture : ServerFixture, IAsyncLifetime
    {
        private WebApplication? documents;

        public string DocumentsBaseUrl { get; private set; } = "";

        /// <summary>Path → (status, content type, body, extra headers).</summary>
        public ConcurrentDictionary<string, (int Status, string ContentType, string Body, Dictionary<string, string> Headers)> Answers { get; } = new();

        public ConcurrentDictionary<string, int> Fetches { get; } = new();

        async ValueTask IAsyncLifetime.InitializeAsync()
        {
            await InitializeAsync();
            var (builder, baseUrl) = LoopbackHost.CreateBuilder();
            DocumentsBaseUrl = baseUrl;
            documents = builder.Build();
            documents.Run(async context =>
            {
                var path = context.Request.Path.Value!;
                Fetches.AddOrUpdate(path, 1, (_, n) => n + 1);
                if (!Answers.TryGetValue(path, out var answer))
                {
                    context.Response.StatusCode = 404;
                    return;
                }

                context.Response.StatusCode = answer.Status;
                context.Response.ContentType = answer.ContentType;
                foreach (var (name, value) in answer.Headers)
                {
                    context.Response.Headers[name] = value;
                }

                await context.Response.WriteAsync(answer.Body);
            });
            await documents.StartAsync();
        }

        async ValueTask IAsyncDisposable.DisposeAsync()
        {
            if (documents is not null)
            {
                await documents.DisposeAsync();
            }

            await DisposeAsync();
        }
    }

    private NexusTestServer Server => fixture.Server;

    private string Publish(string name, Func<string, object> document, int status = 200, string contentType = "application/json", Dictionary<string, string>? headers = null)
    {
        var path = $"/clients/{name}-{Guid.NewGuid():N}.json";
        var url = fixture.DocumentsBaseUrl + path;
        // The documents' host looks answers up by the path as its server decoded it.
        fixture.Answers[Uri.UnescapeDataString(path)] = (status, contentType, JsonSerializer.Serialize(document(url)), headers ?? new() { ["Cache-Control"] = "max-age=600" });
        return url;
    }

    private static Dictionary<string, object?> Document(string clientId, string? redirect = Redirect, object? extra = null) => new Dictionary<string, object?>
    {
        ["client_id"] = clientId,
        ["client_name"] = "Document Assistant",
        ["client_uri"] = "https://assistant.example",
        ["redirect_uris"] = new[] { redirect },
        ["grant_types"] = new[] { "authorization_code", "refresh_token" },
        ["response_types"] = new[] { "code" },
        ["token_endpoint_auth_method"] = "none",
        ["padding"] = extra,
    };

    private async Task<(Browser Browser, Uri Landed)> StartAsync(string clientId, string redirect = "http://127.0.0.1:45123/assistant/callback", string? challenge = null)
    {
        var browser = await SignedInBrowserAsync(Server);
        var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge ?? Pkce().Challenge, scope: "nexus:connections nexus:call offline_access", redirectUri: redirect)
            + "&resource=" + Uri.EscapeDataString(Server.Issuer + "/mcp"));
        return (browser, landed);
    }

    [Fact]
    public async Task AGoodDocumentIsFetchedCachedAndItsClientCompletesTheFlow()
    {
        var clientId = Publish("good", url => Document(url));
        var (verifier, challenge) = Pkce();
        const string redirect = "http://127.0.0.1:45123/assistant/callback";
        var (browser, _) = await StartAsync(clientId, redirect, challenge);
        using (browser)
        {
            // The consent page names the client, where the answer goes, and that it registered itself.
            Assert.Contains("Document Assistant", browser.LastPage);
            Assert.Contains("registered itself", browser.LastPage);
            Assert.Contains("127.0.0.1:45123", browser.LastPage);
            var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
            Assert.Equal(redirect, back.GetLeftPart(UriPartial.Path));

            var (status, tokens) = await TokenAsync(Server, clientId, null, ("grant_type", "authorization_code"), ("code", Browser.Query(back)["code"]),
                ("redirect_uri", redirect), ("code_verifier", verifier), ("client_id", clientId));
            Assert.True(status == HttpStatusCode.OK, tokens.ToString());
            var claims = ResourceIndicatorTests.Payload(tokens.GetProperty("access_token").GetString()!);
            Assert.Equal(clientId, claims.GetProperty("client_id").GetString());
            Assert.Equal(Server.Issuer + "/mcp", claims.GetProperty("aud").GetString());

            // Refresh works for the public document client too.
            var (refreshStatus, _) = await TokenAsync(Server, clientId, null, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!), ("client_id", clientId));
            Assert.Equal(HttpStatusCode.OK, refreshStatus);
        }

        // Within its max-age the document is not fetched again.
        using var second = (await StartAsync(clientId)).Browser;
        Assert.Equal(1, fixture.Fetches[new Uri(clientId).AbsolutePath]);

        // It shows up in the admin API as a self-registered application.
        Assert.Equal("metadata_document", (await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{Uri.EscapeDataString(clientId)}")).GetProperty("registration").GetString());
    }

    [Theory]
    [InlineData("revoked")]
    // A URL with a percent-escape of its own: sent escaped in a path, then decoded by the server before routing (all
    // but %2F), a second decoding made another id of it, and the revocation found nothing.
    [InlineData("pct%41")]
    public async Task APersonRevokesADocumentClientWhoseIdIsAUrlFromTheAuthorizedApplicationsPage(string name)
    {
        var clientId = Publish(name, url => Document(url));
        var (verifier, challenge) = Pkce();
        const string redirect = "http://127.0.0.1:45123/assistant/callback";
        var (browser, _) = await StartAsync(clientId, redirect, challenge);
        using (browser)
        {
            var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
            var (_, tokens) = await TokenAsync(Server, clientId, null, ("grant_type", "authorization_code"), ("code", Browser.Query(back)["code"]),
                ("redirect_uri", redirect), ("code_verifier", verifier), ("client_id", clientId));
            var refreshToken = tokens.GetProperty("refresh_token").GetString()!;

            // Follow the page's own link and form, as a person does: the client id travels escaped in the path (%2F included).
            await browser.NavigateAsync("/account/applications");
            var link = Regex.Match(browser.LastPage, "href=\"(/account/applications/[^\"]+/withdraw)\"").Groups[1].Value;
            Assert.Contains("%2F", link);
            await browser.NavigateAsync(WebUtility.HtmlDecode(link));
            Assert.Contains("Revoke access for Document Assistant?", browser.LastPage);
            var form = Browser.Forms(browser.LastPage).Single(f => f.Action.EndsWith("/withdraw", StringComparison.Ordinal));
            await browser.SubmitAsync(form.Action);
            Assert.Equal(HttpStatusCode.OK, browser.LastStatus);
            Assert.DoesNotContain("Document Assistant", browser.LastPage);

            // The grant is gone with the consent: the refresh token no longer works.
            var (status, body) = await TokenAsync(Server, clientId, null, ("grant_type", "refresh_token"), ("refresh_token", refreshToken), ("client_id", clientId));
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Equal("invalid_grant", body.GetProperty("error").GetString());

            // Posting again finds nothing to revoke, and says so.
            await browser.PostAsync(form.Action, form.Hidden);
            Assert.Equal(HttpStatusCode.NotFound, browser.LastStatus);
        }

        // The admin API finds it by its id, escaped once as any client sends a path segment.
        Assert.Equal(clientId, (await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{Uri.EscapeDataString(clientId)}")).GetProperty("client_id").GetString());
    }

    [Fact]
    public async Task ADocumentThatForbidsCachingIsFetchedForEveryAuthorization()
    {
        var clientId = Publish("nocache", url => Document(url), headers: new() { ["Cache-Control"] = "no-store" });
        using (var first = (await StartAsync(clientId)).Browser)
        {
            Assert.Contains("Document Assistant", first.LastPage);
        }

        using var second = (await StartAsync(clientId)).Browser;
        Assert.Equal(2, fixture.Fetches[new Uri(clientId).AbsolutePath]);
    }

    public static TheoryData<string, string> Refused() => new()
    {
        { "mismatch", "client_id does not equal the URL" },
        { "large", "larger than 5120 bytes" },
        { "redirected", "redirect" },
        { "notjson", "application/json" },
        { "secret", "token_endpoint_auth_method must be none" },
        { "missing", "answered 404" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task ABadDocumentIsRefusedOnANexusPage(string kind, string reason)
    {
        var clientId = kind switch
        {
            "mismatch" => Publish(kind, url => Document(url + "-other")),
            "large" => Publish(kind, url => Document(url, extra: new string('x', 6000))),
            "redirected" => Publish(kind, url => Document(url), status: 302, headers: new() { ["Location"] = fixture.DocumentsBaseUrl + "/elsewhere.json" }),
            "notjson" => Publish(kind, url => Document(url), contentType: "text/html"),
            "secret" => Publish(kind, url => new Dictionary<string, object> { ["client_id"] = url, ["redirect_uris"] = new[] { Redirect }, ["token_endpoint_auth_method"] = "client_secret_basic" }),
            _ => fixture.DocumentsBaseUrl + "/clients/nothing-here.json",
        };
        var (browser, landed) = await StartAsync(clientId);
        using (browser)
        {
            Assert.Equal(new Uri(Server.BaseUrl).Authority, landed.Authority); // never redirected
            Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
            Assert.Contains(WebUtility.HtmlEncode(reason), browser.LastPage);
        }
    }

    [Fact]
    public async Task ARedirectUriTheDocumentDoesNotListIsRefused()
    {
        var clientId = Publish("redirect", url => Document(url));
        var (browser, landed) = await StartAsync(clientId, redirect: "https://evil.example/assistant/callback");
        using (browser)
        {
            Assert.Equal(new Uri(Server.BaseUrl).Authority, landed.Authority);
            Assert.Contains("redirect_uri does not match", browser.LastPage);
        }
    }

    [Theory]
    [InlineData("https://10.0.0.7/client.json", "private or loopback")]
    [InlineData("https://169.254.169.254/latest/meta-data.json", "private or loopback")]
    [InlineData("https://[fd00::1]/client.json", "private or loopback")]
    [InlineData("https://127.0.0.1:1/client.json", "private or loopback")]
    // A name is resolved at connect time: refused there, with the one answer every unreachable document gets.
    [InlineData("https://localhost:1/client.json", "could not be fetched")]
    [InlineData("http://assistant.example/client.json", "https")]
    [InlineData("https://assistant.example/", "path")]
    [InlineData("https://assistant.example/a/../client.json", ". or ..")]
    public async Task PrivateAddressesAndBadUrlsAreRefusedWithoutInsecureUpstreams(string clientId, string reason)
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["Nexus:AllowInsecureUpstreams"] = "false");
        using var browser = await SignedInBrowserAsync(server);
        var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, Pkce().Challenge, redirectUri: Redirect));
        Assert.Equal(new Uri(server.BaseUrl).Authority, landed.Authority);
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        Assert.Contains("metadata document", browser.LastPage);
        Assert.Contains(reason, browser.LastPage);
    }

    [Fact]
    public async Task AClientAnAdministratorRevokedStaysRevokedWhenItsDocumentIsFetchedAgain()
    {
        var clientId = Publish("revoked", url => Document(url), headers: new() { ["Cache-Control"] = "no-cache" });
        using (var first = (await StartAsync(clientId)).Browser)
        {
            Assert.Contains("Document Assistant", first.LastPage);
        }

        await Server.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/applications/{Uri.EscapeDataString(clientId)}", expected: HttpStatusCode.NoContent);
        using var second = (await StartAsync(clientId)).Browser;
        Assert.Contains("not registered", second.LastPage);
    }
}
