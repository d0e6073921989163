using System.Text.RegularExpressions;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Architecture;

/// <summary>
/// Issue 13 item 3: the components of src/Nexus.Server (one folder each) depend on each other without cycles. The
/// graph is read from the code: a file of component A depends on component B when it names B's namespace
/// (<c>using Nexus.Server.B</c>, <c>Nexus.Server.B.X</c>) or qualifies a type with it (<c>B.Type</c>), comments and
/// string literals aside.
/// </summary>
public sealed partial class ComponentGraphTests
{
    /// <summary>
    /// Edges that close cycles today and are to be removed (issue 13): each must still exist, so that removing one from
    /// the code also removes it here, and no other edge may close a cycle.
    /// </summary>
    /// (None left: AuthorizationServer -> Providers went when UpstreamPolicy, the outbound URL policy, moved to Hosting.)
    internal static readonly Dictionary<string, string> KnownBackEdges = new(StringComparer.Ordinal);

    [Fact]
    public void NoDependencyBetweenComponentsClosesACycleBeyondTheKnownOnes()
    {
        var graph = Graph();
        foreach (var edge in KnownBackEdges.Keys)
        {
            var (from, to) = Split(edge);
            graph[from].Remove(to);
        }

        var cycle = FindCycle(graph);
        Assert.True(cycle is null, $"Components depend on each other in a cycle: {string.Join(" -> ", cycle ?? [])}. Depend on the lower component only (see README, Architecture).");
    }

    [Fact]
    public void EveryKnownBackEdgeStillExists()
    {
        var graph = Graph();
        var gone = KnownBackEdges.Keys.Where(e => Split(e) is var (from, to) && !(graph.TryGetValue(from, out var targets) && targets.Contains(to))).ToList();
        Assert.True(gone.Count == 0, $"Removed from the code, so remove from KnownBackEdges too: {string.Join(", ", gone)}");
    }

    [Fact]
    public void HostingIsALeafThatNamesNoOtherComponent()
    {
        // What it shows or checks of the components, they register through the interfaces of Hosting/HostContributions.cs.
        Assert.Empty(Graph()["Hosting"]);
    }

    [Fact]
    public void TheCredentialLayerDependsOnNeitherTheBridgeNorConnections()
    {
        var credentials = Graph()["Credentials"];
        Assert.DoesNotContain("Bridge", credentials);
        Assert.DoesNotContain("Connections", credentials);
        Assert.Contains("Credentials", Graph()["Bridge"]);
        Assert.Contains("Credentials", Graph()["Connections"]);
    }

    [Fact]
    public void TheGraphIsReadFromTheCode()
    {
        var graph = Graph();
        Assert.Contains("Connections", graph.Keys);
        Assert.Contains("Data", graph["Vault"]);
        Assert.Contains("Connections", graph["Bridge"]);
        Assert.DoesNotContain("Dashboard", graph["Data"]);
    }

    /// <summary>
    /// Issue 13 item 1: a page, a tool or another component calls a service of the owning component, never a method of
    /// its endpoint classes, and the dashboard and the MCP tools register providers through ProviderRegistration
    /// (the admin API's service) rather than an auth mode's handler. The address of a route (a method named *Url or
    /// *Path) is exempt: it is what the endpoint class is there to tell.
    /// </summary>
    [Fact]
    public void NoComponentCallsAnotherComponentsEndpointClassesOrModeHandlers()
    {
        var source = Repository.PathOf("src", "Nexus.Server");
        var files = Directory.EnumerateFiles(source, "*.cs", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(source, f).Split(Path.DirectorySeparatorChar).Any(d => d is "bin" or "obj"))
            .Select(f => (Component: Path.GetRelativePath(source, f).Split(Path.DirectorySeparatorChar)[0], Path: f, Code: CommentsAndStrings().Replace(File.ReadAllText(f), " ")))
            .ToList();
        var owners = files.SelectMany(f => EndpointClass().Matches(f.Code).Select(m => (Class: m.Groups[1].Value, f.Component)))
            .DistinctBy(c => c.Class).ToDictionary(c => c.Class, c => c.Component, StringComparer.Ordinal);
        var calls = files.SelectMany(f => EndpointCall().Matches(f.Code)
                .Where(m => owners.TryGetValue(m.Groups[1].Value, out var owner) && owner != f.Component
                    && !m.Groups[2].Value.EndsWith("Url", StringComparison.Ordinal) && !m.Groups[2].Value.EndsWith("Path", StringComparison.Ordinal))
                .Select(m => $"{Path.GetRelativePath(source, f.Path)}: {m.Value.TrimEnd('(', ' ')}"))
            .ToList();
        calls.AddRange(files.Where(f => f.Component is "Dashboard" or "Mcp" && f.Code.Contains("IProviderModeHandler", StringComparison.Ordinal))
            .Select(f => $"{Path.GetRelativePath(source, f.Path)}: IProviderModeHandler (use ProviderRegistration)"));
        Assert.True(calls.Count == 0, $"Call the owning component's service instead: {string.Join("; ", calls)}");
    }

    [GeneratedRegex(@"\bclass\s+(\w+Endpoints?)\b")]
    private static partial Regex EndpointClass();

    [GeneratedRegex(@"(?<![\w.])(\w+Endpoints?)\.(\w+)\s*(?:<[^>()]*>)?\s*\(")]
    private static partial Regex EndpointCall();

    internal static (string From, string To) Split(string edge) => edge.Split(" -> ") is [var from, var to] ? (from, to) : throw new ArgumentException(edge);

    internal static Dictionary<string, HashSet<string>> Graph()
    {
        var source = Repository.PathOf("src", "Nexus.Server");
        var components = Directory.GetDirectories(source).Select(Path.GetFileName).OfType<string>()
            .Where(d => d is not ("bin" or "obj" or "Properties") && Directory.EnumerateFiles(Path.Combine(source, d), "*.cs", SearchOption.AllDirectories).Any())
            .ToList();
        var graph = components.ToDictionary(c => c, _ => new HashSet<string>(StringComparer.Ordinal), StringComparer.Ordinal);
        foreach (var component in components)
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(source, component), "*.cs", SearchOption.AllDirectories))
            {
                var code = CommentsAndStrings().Replace(File.ReadAllText(file), " ");
                foreach (var other in components.Where(o => o != component))
                {
                    if (Regex.IsMatch(code, $@"\bNexus\.Server\.{other}\b") || Regex.IsMatch(code, $@"(?<![\w.]){other}\.[A-Z]\w*"))
                    {
                        graph[component].Add(other);
                    }
                }
            }
        }

        return graph;
    }

    private static List<string>? FindCycle(Dictionary<string, HashSet<string>> graph)
    {
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 1 = on the path, 2 = done
        var path = new List<string>();

        List<string>? Visit(string node)
        {
            state[node] = 1;
            path.Add(node);
            foreach (var next in graph[node].Order(StringComparer.Ordinal))
            {
                if (state.GetValueOrDefault(next) == 1)
                {
                    return [.. path.Skip(path.IndexOf(next)), next];
                }

                if (state.GetValueOrDefault(next) == 0 && Visit(next) is { } found)
                {
                    return found;
                }
            }

            path.RemoveAt(path.Count - 1);
            state[node] = 2;
            return null;
        }

        foreach (var node in graph.Keys.Order(StringComparer.Ordinal))
        {
            if (state.GetValueOrDefault(node) == 0 && Visit(node) is { } cycle)
            {
                return cycle;
            }
        }

        return null;
    }

    // Line and block comments, verbatim, raw and regular string literals, character literals.
    [GeneratedRegex(@"//[^\n]*|/\*.*?\*/|""""""[\s\S]*?""""""|@""(?:[^""]|"""")*""|""(?:[^""\\\n]|\\.)*""|'(?:[^'\\\n]|\\.)'", RegexOptions.Singleline)]
    private static partial Regex CommentsAndStrings();
}
