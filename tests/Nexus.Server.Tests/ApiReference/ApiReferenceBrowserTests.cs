using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.ApiReference;

/// <summary>The API reference page in a real browser (Debian Chromium): it renders under a policy that runs no inline script but its own.</summary>
public sealed class ApiReferenceBrowserTests(ChromiumFixture chromium, ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task TheReferenceRendersUnderAPolicyThatAllowsOnlyItsOwnInlineScript()
    {
        await using var session = await BrowserSession.StartAsync(chromium, fixture.Database.Engine);
        var page = session.Page;
        var response = await page.GotoAsync(fixture.Server.BaseUrl + "/docs/api/");
        var policy = response!.Headers["content-security-policy"];
        var scripts = policy.Split(';').Select(d => d.Trim()).Single(d => d.StartsWith("script-src ", StringComparison.Ordinal));
        Assert.DoesNotContain("'unsafe-inline'", scripts, StringComparison.Ordinal);
        Assert.DoesNotContain("'unsafe-eval'", scripts, StringComparison.Ordinal);
        Assert.Contains("'sha256-", scripts, StringComparison.Ordinal);

        // Scalar ran (its inline module script is the one the hash allows) and rendered the document's operations.
        await page.GetByText("Register a provider (from the catalog or custom)").First.WaitForAsync();
        session.AssertNoConsoleErrors();
        await session.ScreenshotAsync("api-reference");

        // A script injected into the page is refused by the same policy.
        var ran = await page.EvaluateAsync<bool>("""
            () => {
              const script = document.createElement('script');
              script.textContent = 'window.injected = true';
              document.body.appendChild(script);
              return window.injected === true;
            }
            """);
        Assert.False(ran);
    }
}
