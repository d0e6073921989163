using System.Text;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Architecture;

/// <summary>
/// Issue 18 item 6: the diagram in docs/architecture.md is the component graph <see cref="ComponentGraphTests"/> reads
/// from the code, so it cannot drift from it. The block between the markers is generated; <c>NEXUS_UPDATE_DOCS=1</c>
/// (scripts/regenerate-docs.sh) rewrites it, and this test fails while it is stale. The prose around it is written by hand.
/// </summary>
public sealed class ArchitectureDocTests
{
    public const string DocumentPath = "docs/architecture.md";
    private const string Begin = "<!-- BEGIN GENERATED: component graph (tests/Nexus.Server.Tests/Architecture/ArchitectureDocTests.cs) -->";
    private const string End = "<!-- END GENERATED: component graph -->";

    [Fact]
    public void TheDiagramInTheArchitectureDocumentIsTheComponentGraphOfTheCode()
    {
        var path = Repository.PathOf(DocumentPath);
        Assert.True(File.Exists(path), $"{DocumentPath} is missing");
        var text = File.ReadAllText(path);
        var start = text.IndexOf(Begin, StringComparison.Ordinal);
        var end = text.IndexOf(End, StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, $"{DocumentPath} lacks the markers {Begin} … {End}");
        var current = text[..(start + Begin.Length)] + "\n" + Diagram() + text[end..];
        if (Environment.GetEnvironmentVariable("NEXUS_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(path, current);
            text = current;
        }

        Assert.True(text == current, $"The diagram in {DocumentPath} is not the component graph of the code. Run scripts/regenerate-docs.sh and commit {DocumentPath}.");
    }

    /// <summary>
    /// A mermaid flowchart: one node per component (a folder of src/Nexus.Server), an arrow from each component to each
    /// one it uses; the known back edges (cycles to be removed) dashed.
    /// </summary>
    private static string Diagram()
    {
        var graph = ComponentGraphTests.Graph();
        var back = ComponentGraphTests.KnownBackEdges.Keys.Select(ComponentGraphTests.Split).ToHashSet();
        var md = new StringBuilder("```mermaid\nflowchart TD\n");
        foreach (var component in graph.Keys.Order(StringComparer.Ordinal))
        {
            md.Append("    ").Append(component).Append('\n');
        }

        foreach (var (from, targets) in graph.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            foreach (var to in targets.Order(StringComparer.Ordinal))
            {
                md.Append("    ").Append(from).Append(back.Contains((from, to)) ? " -.-> " : " --> ").Append(to).Append('\n');
            }
        }

        md.Append("    Data --> Database[(SQLite or PostgreSQL)]\n```\n");
        return md.ToString();
    }
}
