using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// Issue 13, item 5: one route table you can read. Every route pattern Nexus maps is written out whole, as one string
/// literal, at its Map call (no route-group prefix, no constant, no concatenation), so a search for a URL of the
/// README finds its code; and every URL the README documents is a route the server maps (docs/architecture.md,
/// "Finding the code of a route").
/// </summary>
public sealed partial class RouteTableTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    /// <summary>
    /// Routes a library maps under a path Nexus gives it: the pattern as routed, and the literal that stands at the
    /// library's Map call instead.
    /// </summary>
    private static readonly Dictionary<string, string> LibraryRoutes = new(StringComparer.Ordinal)
    {
        // The MCP SDK's MapMcp("/mcp") maps its Streamable HTTP endpoint as "" on a group at that path.
        ["/mcp/"] = "/mcp",

        // Scalar's MapScalarApiReference("/docs/api") maps the page and its scripts below that path.
        ["/docs/api/{documentName?}"] = "/docs/api",
        ["/docs/api/scalar.js"] = "/docs/api",
        ["/docs/api/scalar.aspnetcore.js"] = "/docs/api",
        ["/docs/api/favicon.svg"] = "/docs/api",
    };

    private static readonly Lazy<string> Sources = new(() => string.Join(
        "\n",
        Directory.EnumerateFiles(Repository.PathOf("src", "Nexus.Server"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(File.ReadAllText)));

    private List<RouteEndpoint> Endpoints =>
        fixture.Server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();

    [Fact]
    public void EveryRoutePatternIsOneStringLiteralAtItsMapCall()
    {
        var patterns = Endpoints.Select(e => e.RoutePattern.RawText!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        Assert.Contains("/v1/admin/api-keys/{id}", patterns);
        var missing = patterns
            .Where(p => !MappedLiterally(LibraryRoutes.GetValueOrDefault(p, p)))
            .ToList();
        Assert.True(missing.Count == 0, "Not written out whole at a Map call (MapGet(\"<pattern>\", …)) in src/Nexus.Server:\n" + string.Join("\n", missing));
    }

    [Theory]
    [InlineData("/v1/admin/api-keys", "api_keys")]
    [InlineData("/v1/admin/webhooks", "webhooks")]
    [InlineData("/v1/admin/clients", "clients")]
    [InlineData("/v1/admin/applications", "applications")]
    [InlineData("/v1/admin/signing-keys", "keys")]
    [InlineData("/v1/providers", "providers")]
    public async Task ACollectionOnceMappedUnderAGroupAnswersWithAndWithoutATrailingSlash(string path, string items)
    {
        // Under a group prefix these were mapped as "/v1/admin/api-keys/"; written out they are "/v1/admin/api-keys".
        // Routing ignores a trailing slash either way: both spellings still reach the same handler.
        foreach (var spelling in new[] { path, path + "/" })
        {
            var answer = await fixture.Server.AdminJsonAsync(HttpMethod.Get, spelling);
            Assert.Equal(System.Text.Json.JsonValueKind.Array, answer.GetProperty(items).ValueKind);
        }
    }

    [Fact]
    public void RouteGroupsCarryNoPrefix()
    {
        // A group's prefix would split a route's path between two places; groups only attach policies and metadata.
        var prefixed = MapGroupCall().Matches(Sources.Value).Select(m => m.Value).Where(m => !m.EndsWith("(\"\")", StringComparison.Ordinal)).ToList();
        Assert.True(prefixed.Count == 0, "MapGroup with a prefix: " + string.Join(", ", prefixed));
    }

    [Fact]
    public void TheConstantsThatBuildLinksNameMappedRoutes()
    {
        // Constants stay where code builds links and metadata from them (discovery, redirects, the dashboard's forms);
        // each must still name a route that is mapped.
        var patterns = Endpoints.Select(e => e.RoutePattern.RawText!).ToHashSet(StringComparer.Ordinal);
        string[] constants =
        [
            Server.AuthorizationServer.AuthorizeEndpoint.Path,
            Server.AuthorizationServer.AuthorizeEndpoint.SeedPath,
            Server.AuthorizationServer.TokenEndpoint.Path,
            Server.AuthorizationServer.TokenEndpoint.SeedPath,
            Server.AuthorizationServer.RevocationEndpoint.Path,
            Server.AuthorizationServer.IntrospectionEndpoint.Path,
            Server.AuthorizationServer.UserInfoEndpoint.Path,
            Server.AuthorizationServer.ExchangeEndpoint.Path,
            Server.AuthorizationServer.JwksEndpoint.Path,
            Server.AuthorizationServer.RegistrationEndpoint.Path,
            Server.AuthorizationServer.EndSessionEndpoint.Path,
            Server.AuthorizationServer.Resources.ProtectedResourceMetadataEndpoint.WellKnownPrefix,
            Server.AuthorizationServer.Resources.ProtectedResourceMetadataEndpoint.McpMetadataPath,
            Server.RemoteMcp.ClientMetadataDocumentEndpoint.Path,
            Server.Connections.GatewayEndpoints.CallbackPath,
            Server.Connections.CredentialCapture.FormPath,
            Server.Connections.ConnectionValuesPage.FormPath,
            Server.Accounts.SetupEndpoints.Path,
            Server.Accounts.AccountEndpoints.SignInPath,
            Server.Accounts.UpstreamSignIn.StartPath,
            Server.Accounts.UpstreamSignIn.CallbackPath,
            Server.Dashboard.ConnectionsPages.Path,
            Server.Dashboard.SiteManagementBrokerPages.McpFormPath,
            Server.Mcp.McpConnectLinks.PagePath,
            Server.Mcp.McpResource.Path + "/",
            Server.ApiReference.ApiReferenceExtensions.DocumentPath,
            Server.ApiReference.ApiReferenceExtensions.PagePath + "/{documentName?}",
            Server.Observability.ObservabilityExtensions.MetricsPath,
            Server.Bridge.BridgeEndpoints.BridgePrefix + "{connectionId}",
            Server.Bridge.BridgeEndpoints.ProxyPrefix + "/{**path}",
        ];
        var unmapped = constants.Where(c => !patterns.Contains(c)).ToList();
        Assert.True(unmapped.Count == 0, "Not mapped: " + string.Join(", ", unmapped));
    }

    [Fact]
    public void EveryUrlTheReadmeDocumentsIsMapped()
    {
        var routes = Endpoints
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["*"]).Select(m => (Method: m, Path: Normalize(e.RoutePattern.RawText!))))
            .ToList();
        var documented = DocumentedUrls(File.ReadAllText(Repository.PathOf("README.md"))).ToList();
        Assert.True(documented.Count > 100, $"Only {documented.Count} URLs found in README.md: has the parser stopped reading it?");
        Assert.Contains(documented, d => d.Path == "/v1/admin/api-keys/{}" && d.Methods.Contains("DELETE"));

        var unmapped = documented.Where(d => !(d.Methods.Length == 0
            ? routes.Any(r => Names(r.Path, d.Path, asPrefix: true))
            : d.Methods.All(m => routes.Any(r => (r.Method == m || r.Method == "*") && Names(r.Path, d.Path, d.Prefix)))))
            .Select(d => d.Source)
            .Distinct(StringComparer.Ordinal)
            .ToList();
        Assert.True(unmapped.Count == 0, "Documented in README.md but not mapped:\n" + string.Join("\n", unmapped));
    }

    /// <summary>Whether a mapped route is the documented path; with a method, "GET /v1/token" names GET /v1/token/{id} too.</summary>
    private static bool Names(string route, string documented, bool asPrefix) =>
        route == documented
        || route == documented + "/{}"
        || (asPrefix && route.StartsWith(documented + "/", StringComparison.Ordinal));

    private static bool MappedLiterally(string pattern) =>
        new Regex(@"\bMap\w*\(\s*""" + Regex.Escape(pattern) + @"""", RegexOptions.CultureInvariant).IsMatch(Sources.Value);

    /// <summary>Parameters by any name become "{}", a trailing slash goes: /v1/connections/{id} names /v1/connections/{connectionId}.</summary>
    private static string Normalize(string path)
    {
        var normal = Parameter().Replace(path, "{}").TrimEnd('/');
        return normal.Length == 0 ? "/" : normal;
    }

    private static readonly string[] RoutePrefixes =
    [
        "/v1/", "/oauth2/", "/.well-known/", "/api/", "/nexus/", "/auth/", "/connect/", "/dashboard", "/admin", "/account",
        "/mcp", "/setup", "/healthz", "/readyz", "/metrics", "/openapi/", "/docs/api",
    ];

    /// <summary>
    /// The README's code spans that name a route: "`GET|PATCH /v1/providers/{name}`", "`/v1/bridge/{id}/…`",
    /// "`GET /v1/connections[?workspace_id=…]`", "`GET /v1/admin/api-keys[/{id}]`". A span without a method, or one
    /// ending in "…" or "*", may name a group of routes (its path is then a prefix of a mapped route).
    /// </summary>
    private static IEnumerable<(string Source, string[] Methods, string Path, bool Prefix)> DocumentedUrls(string readme)
    {
        var prose = FencedBlock().Replace(readme, "");
        foreach (Match span in CodeSpan().Matches(prose))
        {
            var methods = span.Groups["methods"].Success ? span.Groups["methods"].Value.Split("\\|") : [];
            var path = span.Groups["path"].Value;
            if (!RoutePrefixes.Any(p => path.StartsWith(p, StringComparison.Ordinal)))
            {
                continue;
            }

            path = Query().Replace(path, "");
            var prefix = path.EndsWith('…') || path.EndsWith('*');
            path = path.TrimEnd('…', '*');
            var optional = OptionalSegment().Match(path);
            IEnumerable<string> variants = optional.Success
                ? [path.Remove(optional.Index, optional.Length), path.Remove(optional.Index, optional.Length).Insert(optional.Index, optional.Groups[1].Value)]
                : [path];
            foreach (var variant in variants)
            {
                yield return (span.Value, methods, Normalize(variant), prefix);
            }
        }
    }

    [GeneratedRegex(@"\bMapGroup\(\s*[^)]*\)")]
    private static partial Regex MapGroupCall();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex Parameter();

    [GeneratedRegex(@"^```.*?^```", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex FencedBlock();

    [GeneratedRegex(@"`(?:(?<methods>(?:GET|POST|PUT|PATCH|DELETE)(?:\\\|(?:GET|POST|PUT|PATCH|DELETE))*) )?(?<path>/[^`\s]*)[^`]*`")]
    private static partial Regex CodeSpan();

    [GeneratedRegex(@"\[\?[^\]]*\]")]
    private static partial Regex Query();

    [GeneratedRegex(@"\[(/[^\]]*)\]")]
    private static partial Regex OptionalSegment();
}
