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
/// and calls list_services. Then the test drives the SDK client one tools/call at a time over stdin/stdout through the
/// same just-in-time connection as the C# clients (<see cref="McpFixture.AssertJustInTimeConnectionAsync"/>):
/// connect_service, the person's consent at the provider in the test's browser, call_api through the Bridge, and
/// "authorization required" after the provider revoked the grant. scripts/test.sh runs <c>npm ci</c> there and requires the package
/// (NEXUS_TEST_REQUIRE_CONFORMANCE=1); elsewhere, without node_modules, the test is skipped with that instruction.
/// </summary>
public sealed class McpTypeScriptClientTests(McpFixture fixture) : IClassFixture<McpFixture>
{
    [Fact]
    public async Task TheTypeScriptSdkClientRegistersItselfGetsConsentConnectsAServiceJustInTimeAndCallsItsApi()
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
        string? consentPage = null;

        // The script's next line with the prefix; the person's side is played on every AUTHORIZE line on the way.
        async Task<JsonElement> ReadAsync(string prefix)
        {
            while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                log.AppendLine(line.Length > 2000 ? line[..2000] + "…" : line);
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
                    await WriteAsync(back.AbsoluteUri);
                }
                else if (line.StartsWith(prefix + " ", StringComparison.Ordinal))
                {
                    return JsonDocument.Parse(line[(prefix.Length + 1)..]).RootElement.Clone();
                }
            }

            await process.WaitForExitAsync(timeout.Token);
            Assert.Fail($"client.mjs exited {process.ExitCode} before {prefix}:\n{log}{await errors}");
            return default;
        }

        async Task WriteAsync(string line)
        {
            await process.StandardInput.WriteLineAsync(line.AsMemory(), timeout.Token);
            await process.StandardInput.FlushAsync(timeout.Token);
        }

        JsonElement run;
        try
        {
            run = await ReadAsync("RESULT");
            await AssertRegistrationAndToolsAsync(run, consentPage, userId, service);

            // The rest goes through the TypeScript SDK one tool call at a time, the person's side in the browser.
            await fixture.AssertJustInTimeConnectionAsync(async (tool, arguments) =>
            {
                await WriteAsync("CALL " + JsonSerializer.Serialize(new { name = tool, arguments }));
                var result = await ReadAsync("TOOL");
                Assert.False(result.TryGetProperty("sdk_error", out var error), $"{tool}: {error}");
                return JsonDocument.Parse(result.GetProperty("content")[0].GetProperty("text").GetString()!).RootElement.Clone();
            }, browser, service);

            await WriteAsync("END");
            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        Assert.True(process.ExitCode == 0, $"client.mjs exited {process.ExitCode}:\n{log}{await errors}");
    }

    private async Task AssertRegistrationAndToolsAsync(JsonElement run, string? consentPage, string userId, string service)
    {
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

        Assert.Equal(["add_mcp_server", "call_api", "call_remote_tool", "connect_service", "connection_status", "disconnect_service", "list_connections", "list_remote_tools", "list_services"],
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
