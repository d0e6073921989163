namespace Nexus.Server.Tests.Infrastructure;

/// <summary>The browser tests wait for pages the one way that does not hang on a load event (<see cref="PageWaits"/>).</summary>
public sealed class PageWaitsTests
{
    /// <summary>
    /// Playwright's WaitForURLAsync (and a bare WaitForLoadStateAsync) awaits the page's load event when the URL already
    /// matches, which a loaded CI machine has missed for 90 s more than once (the last time in RemoteMcpConnectTests,
    /// 2026-12-08). PageWaits.WaitForPageAsync asks the page instead.
    /// </summary>
    [Fact]
    public void NoBrowserTestWaitsForPlaywrightsLoadEventOutsidePageWaits()
    {
        var own = Path.Combine("Infrastructure", "BrowserFixture.cs");
        var offenders = Directory.EnumerateFiles(Repository.PathOf("tests", "Nexus.Server.Tests"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.EndsWith(own, StringComparison.Ordinal) && !f.EndsWith(nameof(PageWaitsTests) + ".cs", StringComparison.Ordinal))
            .Where(f => File.ReadAllText(f) is var text && (text.Contains(".WaitForURLAsync(", StringComparison.Ordinal) || text.Contains(".WaitForLoadStateAsync(", StringComparison.Ordinal)))
            .Select(f => Path.GetRelativePath(Repository.Root, f))
            .ToList();

        Assert.True(offenders.Count == 0, "Use PageWaits.WaitForPageAsync instead of WaitForURLAsync/WaitForLoadStateAsync in: " + string.Join(", ", offenders));
    }
}
