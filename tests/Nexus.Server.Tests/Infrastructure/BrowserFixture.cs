using Microsoft.Playwright;

[assembly: AssemblyFixture(typeof(Nexus.Server.Tests.Infrastructure.ChromiumFixture))]

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// One headless Debian Chromium for the whole run, driven by Playwright. Each test gets its own browser context
/// (its own cookies), and every page it opens is watched for console errors and saved as a screenshot.
/// </summary>
public sealed class ChromiumFixture : IAsyncLifetime
{
    private IPlaywright? playwright;
    private IBrowser? browser;

    public static string ExecutablePath => Environment.GetEnvironmentVariable("NEXUS_CHROMIUM") ?? "/usr/bin/chromium";

    public async Task<IBrowser> BrowserAsync()
    {
        if (browser is null)
        {
            if (!File.Exists(ExecutablePath))
            {
                throw new InvalidOperationException($"Chromium was not found at {ExecutablePath}. scripts/test.sh installs it (apt-get install chromium); or set NEXUS_CHROMIUM.");
            }

            playwright = await Playwright.CreateAsync();
            browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ExecutablePath,
                Headless = true,
                Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
            });
        }

        return browser;
    }

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (browser is not null)
        {
            await browser.DisposeAsync();
        }

        playwright?.Dispose();
    }
}

/// <summary>A browser context for one test: console errors collected, screenshots saved under artifacts/screenshots/{engine}/.</summary>
public sealed class BrowserSession : IAsyncDisposable
{
    private readonly List<string> consoleErrors = [];
    private readonly string screenshotDirectory;

    private BrowserSession(IBrowserContext context, IPage page, string engine)
    {
        Context = context;
        Page = page;
        screenshotDirectory = Path.Combine(ArtifactsRoot(), "screenshots", engine);
        Directory.CreateDirectory(screenshotDirectory);
        Watch(page);
    }

    public IBrowserContext Context { get; }

    public IPage Page { get; }

    public IReadOnlyList<string> ConsoleErrors => consoleErrors;

    public static async Task<BrowserSession> StartAsync(ChromiumFixture chromium, string engine)
    {
        var browser = await chromium.BrowserAsync();
        var context = await browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1200, Height = 900 } });
        // Every wait below is on an event (a URL, an element); the timeout only bounds a stuck run. Playwright's
        // 30 s default was once missed by a page load while the PostgreSQL suite kept both cores busy.
        context.SetDefaultTimeout(90_000);
        context.SetDefaultNavigationTimeout(90_000);
        return new BrowserSession(context, await context.NewPageAsync(), engine);
    }

    public void Watch(IPage page)
    {
        page.Console += (_, message) =>
        {
            // Network failures are judged below from the responses themselves: a deliberate 4xx answer to the
            // page (a failed sign-in, a 403) is not a defect; a failing stylesheet, script or image is.
            if (message.Type == "error" && !message.Text.StartsWith("Failed to load resource", StringComparison.Ordinal))
            {
                consoleErrors.Add($"{page.Url}: {message.Text}");
            }
        };
        page.Response += (_, response) =>
        {
            if (response.Status >= 400 && response.Request.ResourceType != "document")
            {
                consoleErrors.Add($"{page.Url}: {response.Request.ResourceType} {response.Url} answered {response.Status}");
            }
        };
        page.RequestFailed += (_, request) => consoleErrors.Add($"{page.Url}: {request.ResourceType} {request.Url} failed: {request.Failure}");
        page.PageError += (_, error) => consoleErrors.Add($"{page.Url}: {error}");
    }

    /// <summary>
    /// Saves a screenshot of the page (an artifact for the docs, not an assertion). Chromium's capture sometimes fails
    /// once on a busy machine ("Unable to capture screenshot", seen in a CI run); it is taken once more after the page
    /// reports itself loaded, and a second failure is the test's.
    /// </summary>
    public async Task ScreenshotAsync(string name)
    {
        var options = new PageScreenshotOptions { Path = Path.Combine(screenshotDirectory, name + ".png"), FullPage = true };
        try
        {
            await Page.ScreenshotAsync(options);
        }
        catch (PlaywrightException e) when (e.Message.Contains("Unable to capture screenshot", StringComparison.Ordinal))
        {
            await Page.WaitForLoadStateAsync(LoadState.Load);
            await Page.ScreenshotAsync(options);
        }
    }

    public void AssertNoConsoleErrors() => Assert.True(consoleErrors.Count == 0, "Console errors:\n" + string.Join("\n", consoleErrors));

    public static string ArtifactsRoot()
    {
        if (Environment.GetEnvironmentVariable("NEXUS_ARTIFACTS") is { Length: > 0 } configured)
        {
            return configured;
        }

        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Nexus.slnx")))
        {
            directory = directory.Parent;
        }

        return Path.Combine(directory?.FullName ?? Path.GetTempPath(), "artifacts");
    }

    public async ValueTask DisposeAsync() => await Context.DisposeAsync();
}

/// <summary>Waits that depend on what a page shows, not on when its subresources finish loading.</summary>
public static class PageWaits
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    /// <summary>
    /// Waits until the page has navigated to <paramref name="url"/> (a URL, or a glob: ** any characters, * any but
    /// '/') and its document is parsed; it does not wait for the load event (stylesheets, images, favicon). Both are
    /// asked of the page, not awaited as Playwright load-state events: a CI run once waited 90 s for a DOMContentLoaded
    /// event of a page that had long reached network idle, and another for the load event that Playwright's
    /// WaitForURL awaits whatever its WaitUntil when the URL already matches (WaitUntil=Commit has no load state, so
    /// it falls back to "load").
    /// </summary>
    public static Task WaitForPageAsync(this IPage page, string url) => page.WaitForPageAsync(Matcher(url));

    /// <inheritdoc cref="WaitForPageAsync(IPage, string)"/>
    public static async Task WaitForPageAsync(this IPage page, Func<string, bool> url)
    {
        await CommittedAsync(page, url);
        await DocumentParsedAsync(page);
    }

    /// <summary>The main frame's URL matches: now, or at the navigation that makes it match (the FrameNavigated event).</summary>
    private static async Task CommittedAsync(IPage page, Func<string, bool> url)
    {
        var committed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnNavigated(object? sender, IFrame frame)
        {
            if (frame == page.MainFrame && url(frame.Url))
            {
                committed.TrySetResult();
            }
        }

        page.FrameNavigated += OnNavigated;
        try
        {
            // Checked after subscribing, so a navigation between the check and the subscription cannot be missed.
            if (!url(page.Url))
            {
                try
                {
                    await committed.Task.WaitAsync(Timeout);
                }
                catch (TimeoutException)
                {
                    throw new TimeoutException($"The page did not navigate to the expected URL within {Timeout.TotalSeconds} s; it is at {page.Url}.");
                }
            }
        }
        finally
        {
            page.FrameNavigated -= OnNavigated;
        }
    }

    /// <summary>Re-evaluated by Playwright in the new document if a navigation replaces the current one meanwhile.</summary>
    private static async Task DocumentParsedAsync(IPage page)
    {
        var parsed = await page.WaitForFunctionAsync("() => document.readyState !== 'loading'");
        await parsed.DisposeAsync();
    }

    /// <summary>Playwright's URL globs as the tests use them: ** any characters, * any but '/', the rest literal.</summary>
    internal static Func<string, bool> Matcher(string glob)
    {
        if (!glob.Contains('*', StringComparison.Ordinal))
        {
            return candidate => string.Equals(candidate, glob, StringComparison.Ordinal);
        }

        var pattern = new System.Text.StringBuilder("^");
        for (var i = 0; i < glob.Length; i++)
        {
            if (glob[i] == '*')
            {
                var any = i + 1 < glob.Length && glob[i + 1] == '*';
                pattern.Append(any ? ".*" : "[^/]*");
                i += any ? 1 : 0;
            }
            else
            {
                pattern.Append(System.Text.RegularExpressions.Regex.Escape(glob[i].ToString()));
            }
        }

        var regex = new System.Text.RegularExpressions.Regex(pattern.Append('$').ToString());
        return candidate => regex.IsMatch(candidate);
    }
}
