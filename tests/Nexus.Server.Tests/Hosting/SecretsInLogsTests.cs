using System.Net;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// Issue 12, item 10 and "keep them out": one run through everything that handles a secret, with every log
/// category at Trace, and not one of those secrets in the log output. RFC 9700 §4.2.4 (codes must not leak) and
/// the project rule that tokens, codes, state, client secrets, keys and passwords are never logged.
/// </summary>
public sealed class SecretsInLogsTests
{
    private static readonly string[] Categories = ["Default", "Microsoft", "Microsoft.AspNetCore", "Microsoft.AspNetCore.Hosting.Diagnostics", "System", "System.Net.Http.HttpClient"];

    [Fact]
    public Task AFullRunWithEveryCategoryAtTraceLogsNoTokenCodeStateSecretPasswordOrKey() => RunAsync(json: false);

    /// <summary>
    /// Issue 18: the same run with every category at Debug, written by the JSON console formatter with scopes (trace
    /// and span ids) as an operator would run it (Logging__Console__FormatterName=json), with traces on.
    /// </summary>
    [Fact]
    public Task AFullRunAtDebugThroughTheJsonConsoleFormatterLogsNoSecretEither() => RunAsync(json: true);

    private static async Task RunAsync(bool json)
    {
        var plain = new CapturedLogs();
        JsonFormattedLogs? formatted = null;
        await using var scene = await RefreshScene.StartAsync(provider: new { refresh_margin_seconds = 60 }, configure: s =>
        {
            foreach (var category in Categories)
            {
                s[$"Logging:LogLevel:{category}"] = json ? "Debug" : "Trace";
            }

            if (json)
            {
                s["Logging:Console:FormatterName"] = "json";
                s["Logging:Console:FormatterOptions:IncludeScopes"] = "true";
                s["Nexus:Telemetry:Traces"] = "true";
            }
        }, services: s =>
        {
            if (json)
            {
                s.AddSingleton<ILoggerProvider>(sp => formatted = new JsonFormattedLogs(sp.GetServices<ConsoleFormatter>().Single(f => f.Name == ConsoleFormatterNames.Json)));
            }
            else
            {
                s.AddSingleton<ILoggerProvider>(plain);
            }
        });
        await using var echo = await EchoUpstream.StartAsync();
        var server = scene.Server;
        var secrets = new List<(string What, string Value)>
        {
            ("admin API key", server.ApiKey),
            ("encryption key", server.EncryptionKey),
            ("provider client secret", scene.Upstream.ClientSecret),
            ("webhook secret", scene.WebhookSecret),
        };

        // A person signs up, signs out, and signs in again.
        var email = NewEmail();
        using var browser = new Browser(server);
        await browser.SignUpAsync(email, Password);
        secrets.Add(("password", Password));
        await browser.NavigateAsync("/");
        await browser.SubmitAsync("/account/signout");

        // An OAuth application: authorization code + PKCE, consent, exchange, refresh (RFC 6749 §4.1, RFC 7636).
        var (clientId, clientSecret) = await RegisterApplicationAsync(server);
        secrets.Add(("application client secret", clientSecret!));
        var (verifier, challenge) = Pkce();
        var state = "st-" + Guid.NewGuid().ToString("N");
        secrets.Add(("PKCE verifier", verifier));
        secrets.Add(("application state", state));
        var landed = await browser.NavigateAsync(AuthorizeUrl(clientId, challenge, state));
        Assert.Equal("/account/signin", landed.AbsolutePath);
        await browser.SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = Password });
        var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
        var code = Browser.Query(back)["code"];
        secrets.Add(("authorization code", code));
        var (exchanged, tokens) = await ExchangeCodeAsync(server, clientId, clientSecret, code, verifier);
        Assert.Equal(HttpStatusCode.OK, exchanged);
        secrets.Add(("access token", tokens.GetProperty("access_token").GetString()!));
        secrets.Add(("refresh token", tokens.GetProperty("refresh_token").GetString()!));
        secrets.Add(("ID token", tokens.GetProperty("id_token").GetString()!));
        var (refreshedStatus, refreshed) = await TokenAsync(server, clientId, clientSecret, ("grant_type", "refresh_token"), ("refresh_token", tokens.GetProperty("refresh_token").GetString()!));
        Assert.Equal(HttpStatusCode.OK, refreshedStatus);
        secrets.Add(("refreshed access token", refreshed.GetProperty("access_token").GetString()!));
        secrets.Add(("rotated refresh token", refreshed.GetProperty("refresh_token").GetString()!));

        // A replayed code (an error path logs too).
        var (replayed, _) = await ExchangeCodeAsync(server, clientId, clientSecret, code, verifier);
        Assert.Equal(HttpStatusCode.BadRequest, replayed);

        // Client credentials.
        var (appClientId, appClientSecret) = await server.CreateAppClientAsync();
        secrets.Add(("App Client secret", appClientSecret));
        secrets.Add(("client credentials token", await server.IssueTokenAsync(appClientId, appClientSecret)));

        // The broker: request-connection, consent at the provider, Nexus's callback with code and state.
        var apiKey = (await scene.Kit.ExpectAsync(HttpMethod.Post, "/v1/admin/api-keys", new { name = "agent", workspaces = new[] { "ws_logs" } }, HttpStatusCode.Created))
            .GetProperty("api_key").GetString()!;
        secrets.Add(("gateway API key", apiKey));
        var requested = await scene.Kit.ExpectAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_logs", provider_name = scene.Provider, return_url = BrokerFixture.ReturnUrl }, HttpStatusCode.Created);
        var authUrl = requested.GetProperty("auth_url").GetString()!;
        var connectionId = requested.GetProperty("connection_id").GetString()!;
        secrets.Add(("broker state", QueryHelpers.ParseQuery(new Uri(authUrl).Query)["state"].ToString()));
        using (var noRedirects = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false }))
        {
            using var consent = await noRedirects.GetAsync(authUrl);
            var callback = consent.Headers.Location!;
            secrets.Add(("provider authorization code", QueryHelpers.ParseQuery(callback.Query)["code"].ToString()));
            using var returned = await noRedirects.GetAsync(callback);
            Assert.Contains("status=active", returned.Headers.Location!.ToString(), StringComparison.Ordinal);
        }

        // A token read, then one within the margin that refreshes at the provider.
        var first = await scene.Kit.TokenAsync(connectionId);
        server.Time.Advance(TimeSpan.FromSeconds(3600 - 30));
        var second = await scene.Kit.TokenAsync(connectionId);
        Assert.NotEqual(first, second);
        secrets.Add(("provider access token", first));
        secrets.Add(("refreshed provider access token", second));

        // The Bridge, with a key sent in the query string, plus a captured API key credential.
        await scene.Kit.ExpectAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "echo_logs",
            auth_mode = "api_key",
            api_base_url = echo.BaseUrl,
            api_key = new { @in = "query", name = "api_key" },
        }, HttpStatusCode.Created);
        var credential = await scene.Kit.ExpectAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_logs", provider_name = "echo_logs", return_url = BrokerFixture.ReturnUrl }, HttpStatusCode.Created);
        var credentialId = credential.GetProperty("connection_id").GetString()!;
        var providerKey = "sk-live-" + Guid.NewGuid().ToString("N");
        secrets.Add(("captured provider API key", providerKey));
        await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/connections/{credentialId}/credentials", new { api_key = providerKey }, HttpStatusCode.OK);
        using (var bridged = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{credentialId}/items?page=2"))
        {
            bridged.Headers.Add("X-API-Key", apiKey);
            using var response = await server.Http.SendAsync(bridged);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // A callback with a forged code and a replayed state: Nexus logs the refusal, not the values.
        var forgedCode = "forged-" + Guid.NewGuid().ToString("N");
        secrets.Add(("forged code", forgedCode));
        using (await server.Http.GetAsync($"/auth/callback?code={forgedCode}&state={Uri.EscapeDataString(secrets.Single(s => s.What == "broker state").Value)}"))
        {
        }

        // Every provider token the rotating provider handed out, refresh tokens included.
        foreach (var issued in scene.Upstream.Families.Values.SelectMany(f => f.Chain))
        {
            secrets.Add(("provider access token (issued)", issued.AccessToken));
            if (issued.RefreshToken is not null)
            {
                secrets.Add(("provider refresh token", issued.RefreshToken));
            }
        }

        // The run did log, down to the per-request lines and the provider calls, so the assertion means something.
        var all = json ? formatted!.All : plain.All;
        Assert.Contains("Microsoft.AspNetCore.Hosting.Diagnostics", all, StringComparison.Ordinal);
        Assert.Contains("System.Net.Http.HttpClient", all, StringComparison.Ordinal);
        Assert.Contains("/oauth2/token", all, StringComparison.Ordinal);
        if (json)
        {
            // JSON lines, with the trace and span ids of the request in their scopes.
            Assert.Contains("\"Category\":\"Microsoft.AspNetCore.Hosting.Diagnostics\"", all, StringComparison.Ordinal);
            Assert.Matches("\"TraceId\":\"[0-9a-f]{32}\"", all);
            Assert.Matches("\"SpanId\":\"[0-9a-f]{16}\"", all);
        }

        var leaks = secrets.Where(s => s.Value.Length >= 8 && all.Contains(s.Value, StringComparison.Ordinal))
            .Select(s => $"{s.What}: {Around(all, s.Value)}").ToList();
        Assert.True(leaks.Count == 0, "Secrets in the log:\n" + string.Join("\n", leaks));
    }

    private static string Around(string all, string secret)
    {
        var at = all.IndexOf(secret, StringComparison.Ordinal);
        var start = all.LastIndexOf('\n', at) + 1;
        var end = all.IndexOf('\n', at);
        return all[start..(end < 0 ? all.Length : Math.Min(end, start + 400))];
    }

    [Theory]
    [InlineData("https://app.example.com/callback?code=abc123&state=xyz&iss=https%3A%2F%2Fnexus", "https://app.example.com/callback?code=[redacted]&state=[redacted]&iss=https%3A%2F%2Fnexus")]
    [InlineData("GET /auth/callback?state=s1.s2&code=c0de HTTP/1.1", "GET /auth/callback?state=[redacted]&code=[redacted] HTTP/1.1")]
    [InlineData("https://api.example/v1?API_KEY=sk-1&page=2&access_token=t", "https://api.example/v1?API_KEY=[redacted]&page=2&access_token=[redacted]")]
    [InlineData("grant_type=refresh_token&refresh_token=r1&client_secret=s3cret", "grant_type=refresh_token&refresh_token=[redacted]&client_secret=[redacted]")]
    [InlineData("/back?return=https%3A%2F%2Fa%2Fcb%3Fcode%3Dabc%26state%3Ddef", "/back?return=https%3A%2F%2Fa%2Fcb%3Fcode%3D[redacted]%26state%3D[redacted]")]
    [InlineData("/authorize?scope=read&code_challenge=abc&response_type=code", "/authorize?scope=read&code_challenge=abc&response_type=code")]
    [InlineData("no url here", "no url here")]
    [InlineData("/next%3fcode%3dabc%26scope%3dread", "/next%3fcode%3d[redacted]%26scope%3dread")]
    [InlineData("/a%20b/c%2Fd", "/a%20b/c%2Fd")]
    public void RedactsSecretQueryParametersAndLeavesTheRest(string text, string expected)
    {
        Assert.Equal(expected, LogRedaction.Redact(text));
    }

    [Fact]
    public void TheRedactingLoggerRewritesMessageAndValuesAndKeepsTheTemplate()
    {
        var logs = new CapturedLogs();
        using var factory = new RedactingLoggerFactory(LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(logs)));
        var logger = factory.CreateLogger("test");
        logger.LogInformation("Redirecting to {Destination}.", "https://app/cb?code=SECRETCODE&state=SECRETSTATE");
        logger.LogInformation("Nothing to hide in {Value}", 42);
        using (logger.BeginScope("HTTP GET {Uri}", new Uri("https://p/cb?token=SECRETTOKEN")))
        {
        }

        var all = logs.All;
        Assert.DoesNotContain("SECRET", all, StringComparison.Ordinal);
        Assert.Contains("Redirecting to https://app/cb?code=[redacted]&state=[redacted]", all, StringComparison.Ordinal);
        Assert.Contains("{OriginalFormat}=Redirecting to {Destination}.", all, StringComparison.Ordinal);
        Assert.Contains("Nothing to hide in 42", all, StringComparison.Ordinal);
    }

    [Fact]
    public void AValueNamedAsASecretIsRedactedByItsClassificationWhateverItHolds()
    {
        var logs = new CapturedLogs();
        var services = new ServiceCollection().AddNexusRedaction().BuildServiceProvider();
        var redactor = services.GetRequiredService<Microsoft.Extensions.Compliance.Redaction.IRedactorProvider>().GetRedactor(NexusTaxonomy.Secret);
        using var factory = new RedactingLoggerFactory(LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(logs)), redactor);
        var logger = factory.CreateLogger("test");
        logger.LogWarning("Client {ClientId} sent {ClientSecret} and {AccessToken}", "app_1", "plain-secret-value", "eyJplain-token");
        logger.LogInformation("STS said {Code}", "AccessDenied");

        var all = logs.All;
        Assert.DoesNotContain("plain-secret-value", all, StringComparison.Ordinal);
        Assert.DoesNotContain("eyJplain-token", all, StringComparison.Ordinal);
        Assert.Contains("Client app_1 sent [redacted] and [redacted]", all, StringComparison.Ordinal);
        Assert.Contains("STS said AccessDenied", all, StringComparison.Ordinal);
    }
}
