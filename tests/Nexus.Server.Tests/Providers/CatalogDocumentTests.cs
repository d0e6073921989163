using Nexus.Server.Tests.Infrastructure;
using Nexus.Server.Providers;

namespace Nexus.Server.Tests.Providers;

/// <summary>docs/provider-catalog.md lists what the shipped catalog holds, so it is generated, and this test notices a stale copy.</summary>
public sealed class CatalogDocumentTests
{
    /// <summary>Set to 1 to rewrite the checked-in document instead of comparing (scripts/regenerate-catalog-doc.sh does).</summary>
    private const string WriteVariable = "NEXUS_WRITE_CATALOG_DOC";

    [Fact]
    public void TheCheckedInProviderCatalogDocumentMatchesTheCatalog()
    {
        var path = Path.Combine(Repository.Root, CatalogDocument.RelativePath);
        var current = File.ReadAllText(path);
        var generated = CatalogDocument.Render(current, ProviderCatalog.LoadEmbedded());
        if (Environment.GetEnvironmentVariable(WriteVariable) == "1")
        {
            File.WriteAllText(path, generated);
            return;
        }

        Assert.True(
            generated == current.Replace("\r\n", "\n", StringComparison.Ordinal),
            $"{CatalogDocument.RelativePath} is stale: it no longer matches src/Nexus.Server/Providers/catalog.json. Regenerate it with scripts/regenerate-catalog-doc.sh (or {WriteVariable}=1 and this test) and commit the result.");
    }

    [Fact]
    public void TheGeneratedPartDescribesEveryProviderOnceAndKeepsTheHandWrittenPart()
    {
        var handWritten = "# Provider catalog\n\nIntro written by hand.\n\n## Providers\n\n" + CatalogDocument.Marker + "\n\nstale list\n";
        var catalog = ProviderCatalog.LoadEmbedded();
        var generated = CatalogDocument.Render(handWritten, catalog);
        Assert.StartsWith("# Provider catalog\n\nIntro written by hand.\n\n## Providers\n\n" + CatalogDocument.Marker + "\n\n", generated, StringComparison.Ordinal);
        Assert.DoesNotContain("stale list", generated, StringComparison.Ordinal);
        Assert.Contains($"**{catalog.Entries.Count} providers**", generated, StringComparison.Ordinal);
        Assert.All(catalog.Entries.Keys, key => Assert.Single(generated.Split('\n'), line => line == $"### {key}"));
        Assert.Contains("| `https://www.googleapis.com/auth/gmail.send` | Send email on your behalf |", generated, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => CatalogDocument.Render("# no marker\n", catalog));
    }
}
