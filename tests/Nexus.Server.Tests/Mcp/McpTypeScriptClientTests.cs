using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Mcp;

/// <summary>
/// The official TypeScript MCP SDK client (npm <c>@modelcontextprotocol/sdk</c>, pinned in tests/mcp-client-ts) reaches
/// /mcp from its URL alone, through dynamic client registration: tests/mcp-client-ts/client.mjs runs the SDK's
/// StreamableHTTPClientTransport with an OAuthClientProvider whose redirectToAuthorization prints the URL; this test
/// plays the person (signed in, approves the consent page) with <see cref="Browser"/> and writes the URL the browser
/// was sent back to on the script's stdin; the script checks the state, redeems the code, reconnects, lists the tools
/// and calls list_services. scripts/test.sh runs <c>npm ci</c> there and requires the package
/// (NEXUS_TEST_REQUIRE_CONFORMANCE=1); elsewhere, without node_modules, the test is skipped with that instruction.
/// </summary>
public sealed class McpTypeScriptClientTests(McpFixture fixture) : IClassFixture<McpFixture>
{
    [Fact]
    public async Task TheTypeScriptSdkClientRegistersItselfGetsConsentAndCallsATool()
    {
        var folder = Path.Combine(RepositoryRoot(), "tests", "mcp-client-ts");
        if (!Directory.Exists(Path.Combine(folder, "node_modules", "@modelcontextprotocol", "sdk")))
        {
            Assert.False(Environment.GetEnvironmentVariable("NEXUS_TEST_REQUIRE_CONFORMANCE") == "1", "The TypeScript MCP SDK is missing: npm ci in tests/mcp-client-ts failed.");
            Assert.Skip("Run `npm ci` in tests/mcp-client-ts first (scripts/test.sh does).");
        }

        var service = await fixture.RegisterServiceAsync();
        var (browser, userId) = await fixture.PersonAsync();
        using var _ = browser;
        var redirect = $"http://127.0.0.1:{LoopbackHost.FreePort()}/callback";

        var start = new ProcessStartInfo("node")
        {
            WorkingDirectory = folder,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "client.mjs", fixture.McpUrl, redirect })
        {
            start.ArgumentList.Add(argument);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        using var process = Process.Start(start)!;
        var errors = process.StandardError.ReadToEndAsync(timeout.Token);
        var log = new StringBuilder();
        JsonElement? result = null;
        string? consentPage = null;
        try
        {
            while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                log.AppendLine(line);
                if (line.StartsWith("AUTHORIZE ", StringComparison.Ordinal))
                {
                    // The person's browser: already signed in, sees the consent page, approves; the redirect goes back.
                    var url = new Uri(line["AUTHORIZE ".Length..]);
                    var query = Browser.Query(url);
                    Assert.Equal(fixture.McpUrl, query["resource"]);
                    Assert.Equal("S256", query["code_challenge_method"]);
                    await browser.NavigateAsync(url.AbsoluteUri);
                    Assert.True(browser.LastStatus == HttpStatusCode.OK, $"{url} answered {browser.LastStatus}:\n{browser.LastPage}");
                    consentPage = browser.LastPage;
                    var back = await browser.SubmitAsync("/oauth2/authorize", new Dictionary<string, string> { ["decision"] = "allow" });
                    Assert.Equal(redirect, back.GetLeftPart(UriPartial.Path));
                    await process.StandardInput.WriteLineAsync(back.AbsoluteUri.AsMemory(), timeout.Token);
                    await process.StandardInput.FlushAsync(timeout.Token);
                }
                else if (line.StartsWith("RESULT ", StringComparison.Ordinal))
                {
                    result = JsonDocument.Parse(line["RESULT ".Length..]).RootElement.Clone();
                }
            }

            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        var output = log + await errors;
        Assert.True(process.ExitCode == 0 && result is not null, $"client.mjs exited {process.ExitCode}:\n{output}");
        var run = result.Value;

        // It registered itself (RFC 7591) as a public client, and the person saw that on the consent page.
        var clientId = run.GetProperty("client_id").GetString()!;
        Assert.StartsWith("nxc_", clientId);
        Assert.Equal("dynamic", (await fixture.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/applications/{clientId}")).GetProperty("registration").GetString());
        Assert.Contains("TypeScript SDK Assistant", consentPage);
        Assert.Contains("registered itself", consentPage);

        // Discovery started from the 401 (RFC 9728 metadata, RFC 8414 metadata, registration), then the code was redeemed.
        var requests = run.GetProperty("requests").EnumerateArray().Select(r => r.GetString()!).ToList();
        var mcp = new Uri(fixture.McpUrl).AbsolutePath;
        Assert.Equal($"POST {mcp} 401", requests[0]);
        string[] expected = ["GET /.well-known/oauth-protected-resource/mcp 200", "GET /.well-known/oauth-authorization-server 200", "POST /oauth2/register 201", "POST /oauth2/token 200", $"POST {mcp} 200"];
        var position = 0;
        foreach (var request in requests)
        {
            if (position < expected.Length && request == expected[position])
            {
                position++;
            }
        }

        Assert.True(position == expected.Length, $"expected, in this order: {string.Join(", ", expected)}\nrecorded: {string.Join(", ", requests)}");

        // The token is for /mcp (RFC 8707 aud) and for the person who consented.
        var claims = run.GetProperty("claims");
        Assert.Equal(fixture.McpUrl, claims.GetProperty("aud").GetString());
        Assert.Equal(userId, claims.GetProperty("sub").GetString());
        Assert.Equal(clientId, claims.GetProperty("client_id").GetString());

        Assert.Equal(["call_api", "connect_service", "connection_status", "disconnect_service", "list_connections", "list_services"],
            run.GetProperty("tools").EnumerateArray().Select(t => t.GetString()!));
        var text = run.GetProperty("list_services").GetProperty("content")[0].GetProperty("text").GetString()!;
        Assert.Contains(JsonDocument.Parse(text).RootElement.GetProperty("services").EnumerateArray(), s => s.GetProperty("service").GetString() == service);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Nexus.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Nexus.slnx not found above " + AppContext.BaseDirectory);
    }
}
