using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Mcp;

/// <summary>
/// The official MCP conformance suite (npm <c>@modelcontextprotocol/conformance</c>, pinned in tests/conformance) runs
/// its server scenarios that apply to Nexus against /mcp. Its CLI sends no token, so a loopback forwarder in front of
/// /mcp adds a valid one, and presents its own origin as Nexus's (as a reverse proxy in front of Nexus would), while a
/// foreign Host or Origin goes through unchanged for the DNS rebinding scenario. scripts/test.sh runs <c>npm ci</c>
/// there first and requires the package (NEXUS_TEST_REQUIRE_CONFORMANCE=1); elsewhere, without node_modules, these
/// tests are skipped with that instruction.
/// </summary>
public sealed class McpConformanceTests(McpFixture fixture) : IClassFixture<McpFixture>
{
    [Theory]
    [InlineData("server-initialize")]
    [InlineData("ping")]
    [InlineData("tools-list")]
    [InlineData("dns-rebinding-protection")]
    public async Task TheOfficialConformanceScenarioPasses(string scenario)
    {
        var folder = Path.Combine(RepositoryRoot(), "tests", "conformance");
        var cli = Path.Combine(folder, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js");
        if (!File.Exists(cli))
        {
            // scripts/test.sh installs the package and requires it; a developer's run without it skips, saying how.
            Assert.False(Environment.GetEnvironmentVariable("NEXUS_TEST_REQUIRE_CONFORMANCE") == "1", "The conformance package is missing: npm ci in tests/conformance failed.");
            Assert.Skip("Run `npm ci` in tests/conformance first (scripts/test.sh does).");
        }

        var (_, userId) = await fixture.PersonAsync();
        await using var forwarder = await Forwarder.StartAsync(fixture.McpUrl, fixture.McpToken(userId));

        var start = new ProcessStartInfo("node") { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Node 20 lacks fs.globSync, which the package imports; the shared shim supplies it (a no-op need on Node 22+).
        var shim = Path.Combine(RepositoryRoot(), "..", "shared", "tools", "node20-globsync", "register.mjs");
        if (File.Exists(shim))
        {
            start.ArgumentList.Add("--import");
            start.ArgumentList.Add(new Uri(Path.GetFullPath(shim)).AbsoluteUri);
        }

        var results = Path.Combine(Path.GetTempPath(), "nexus-conformance-" + Guid.NewGuid().ToString("N"));
        foreach (var argument in new[] { cli, "server", "--url", forwarder.Url, "--scenario", scenario, "-o", results })
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var errors = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        var log = await output + await errors;
        Assert.True(process.ExitCode == 0, $"conformance {scenario} exited {process.ExitCode}:\n{log}");
        Assert.DoesNotContain("FAILURE", log);
        Assert.Matches(@"Passed: (\d+)/\1, 0 failed", log);
        Directory.Delete(results, recursive: true);
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

    /// <summary>A loopback reverse proxy to /mcp that adds the bearer token the conformance CLI cannot send.</summary>
    private sealed class Forwarder : IAsyncDisposable
    {
        private readonly WebApplication app;
        private readonly HttpClient http = new(new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false });

        private Forwarder(WebApplication app, string url)
        {
            this.app = app;
            Url = url;
        }

        public string Url { get; }

        public static async Task<Forwarder> StartAsync(string target, string token)
        {
            var (builder, baseUrl) = LoopbackHost.CreateBuilder();
            var app = builder.Build();
            var forwarder = new Forwarder(app, baseUrl + "/mcp");
            var targetOrigin = new Uri(target).GetLeftPart(UriPartial.Authority);
            var ownHost = new Uri(baseUrl).Authority;
            app.Map("/mcp", async context =>
            {
                using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), target);
                if (context.Request.ContentLength > 0 || context.Request.Headers.TransferEncoding.Count > 0)
                {
                    request.Content = new StreamContent(context.Request.Body);
                }

                foreach (var (name, values) in context.Request.Headers)
                {
                    if (name is "Host" or "Content-Length" or "Transfer-Encoding" or "Connection")
                    {
                        continue;
                    }

                    var value = values.ToString();
                    // The proxy's own origin stands for Nexus's; any other is passed on for Nexus to judge.
                    if (name.Equals("Origin", StringComparison.OrdinalIgnoreCase) && value == "http://" + ownHost)
                    {
                        value = targetOrigin;
                    }

                    if (!request.Headers.TryAddWithoutValidation(name, value))
                    {
                        request.Content?.Headers.TryAddWithoutValidation(name, value);
                    }
                }

                // A Host naming another site (DNS rebinding) reaches Nexus as it came.
                if (context.Request.Host.Value is { } host && host != ownHost)
                {
                    request.Headers.Host = host;
                }

                request.Headers.Authorization = new("Bearer", token);
                using var response = await forwarder.http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
                context.Response.StatusCode = (int)response.StatusCode;
                foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
                {
                    if (name is not ("Transfer-Encoding" or "Connection"))
                    {
                        context.Response.Headers[name] = values.ToArray();
                    }
                }

                await response.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
            });
            await app.StartAsync();
            return forwarder;
        }

        public async ValueTask DisposeAsync()
        {
            http.Dispose();
            await app.DisposeAsync();
        }
    }
}
