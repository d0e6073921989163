using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.ApiReference;

/// <summary>
/// The OpenAPI document at /openapi/v1.json covers every public route with its error responses, equals the copy
/// checked in at docs/openapi.json (so an API change shows in review), and the page at /docs/api needs nothing
/// from outside the server.
/// </summary>
public sealed class ApiReferenceTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    public const string SnapshotPath = "docs/openapi.json";

    private NexusTestServer Server => fixture.Server;

    private async Task<(string Text, JsonElement Root)> DocumentAsync()
    {
        using var response = await Server.Http.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        return (text, JsonDocument.Parse(text).RootElement.Clone());
    }

    [Fact]
    public async Task TheDocumentIsOpenApi31WithTheThreeSecuritySchemes()
    {
        var (_, root) = await DocumentAsync();
        Assert.StartsWith("3.1", root.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        var schemes = root.GetProperty("components").GetProperty("securitySchemes");
        Assert.Equal("X-API-Key", schemes.GetProperty("ApiKey").GetProperty("name").GetString());
        Assert.Equal("header", schemes.GetProperty("ApiKey").GetProperty("in").GetString());
        Assert.Equal("basic", schemes.GetProperty("ClientBasic").GetProperty("scheme").GetString());
        Assert.Equal("bearer", schemes.GetProperty("Bearer").GetProperty("scheme").GetString());
        Assert.False(root.TryGetProperty("servers", out var servers) && servers.GetArrayLength() > 0, "the document names no instance's URL");
    }

    [Fact]
    public async Task EveryMappedPublicRouteIsDocumentedWithSummaryAndErrorResponses()
    {
        var (_, root) = await DocumentAsync();
        var paths = root.GetProperty("paths");
        var endpoints = Server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<IExcludeFromDescriptionMetadata>() is not { ExcludeFromDescription: true })
            .Where(e => e.RoutePattern.RawText != "/openapi/v1.json")
            .ToList();
        Assert.NotEmpty(endpoints);
        var problems = new List<string>();
        foreach (var endpoint in endpoints)
        {
            var path = "/" + endpoint.RoutePattern.RawText!.Trim('/').Replace("{**path}", "{path}", StringComparison.Ordinal);
            var methods = endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["GET", "POST", "PUT", "PATCH", "DELETE"];
            foreach (var method in methods)
            {
                if (!paths.TryGetProperty(path, out var item) || !item.TryGetProperty(method.ToLowerInvariant(), out var operation))
                {
                    problems.Add($"{method} {path}: not in the document (add a row to ApiCatalog)");
                    continue;
                }

                if (!operation.TryGetProperty("summary", out var summary) || string.IsNullOrWhiteSpace(summary.GetString()))
                {
                    problems.Add($"{method} {path}: no summary");
                }

                var statuses = operation.GetProperty("responses").EnumerateObject().Select(r => int.Parse(r.Name, System.Globalization.CultureInfo.InvariantCulture)).ToList();
                if (!statuses.Any(s => s < 400))
                {
                    problems.Add($"{method} {path}: no success response");
                }

                if (!statuses.Any(s => s >= 400))
                {
                    problems.Add($"{method} {path}: no error response");
                }
            }
        }

        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public async Task ErrorResponsesNameTheirCodesInTheProtocolsOwnFormat()
    {
        var (_, root) = await DocumentAsync();
        var paths = root.GetProperty("paths");

        // RFC 6749 §5.2 on the token endpoint: the OAuth error table, as "error".
        var token = paths.GetProperty("/oauth2/token").GetProperty("post");
        var tokenErrors = token.GetProperty("responses").GetProperty("400").GetProperty("content").GetProperty("application/json").GetProperty("schema");
        var oauthCodes = tokenErrors.GetProperty("properties").GetProperty("error").GetProperty("enum").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Contains("invalid_grant", oauthCodes);
        Assert.Contains("unsupported_grant_type", oauthCodes);
        Assert.Equal("#/components/schemas/OAuthError", tokenErrors.GetProperty("allOf")[0].GetProperty("$ref").GetString());
        Assert.Equal("ClientBasic", token.GetProperty("security")[0].EnumerateObject().Single().Name);

        // Problem details elsewhere, with the stable "code".
        var read = paths.GetProperty("/v1/token/{connectionId}").GetProperty("get");
        var conflict = read.GetProperty("responses").GetProperty("409").GetProperty("content").GetProperty("application/problem+json").GetProperty("schema");
        Assert.Contains("connection_not_active", conflict.GetProperty("properties").GetProperty("code").GetProperty("enum").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("ApiKey", read.GetProperty("security")[0].EnumerateObject().Single().Name);

        // A typed body: the request schema comes from the contract's record, in the API's snake_case.
        var create = paths.GetProperty("/v1/request-connection").GetProperty("post");
        var body = create.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("schema");
        var bodySchema = body.TryGetProperty("$ref", out var reference)
            ? root.GetProperty("components").GetProperty("schemas").GetProperty(reference.GetString()!.Split('/')[^1])
            : body;
        Assert.True(bodySchema.GetProperty("properties").TryGetProperty("workspace_id", out _), bodySchema.ToString());
    }

    [Fact]
    public async Task TheCallbacksErrorResponseListsTheProblemsItAnswersNotTheErrorsItRedirectsWith()
    {
        var (_, root) = await DocumentAsync();
        var callback = root.GetProperty("paths").GetProperty("/auth/callback").GetProperty("get");
        var responses = callback.GetProperty("responses");
        Assert.Equal(["302", "400"], responses.EnumerateObject().Select(r => r.Name).ToArray());

        // A 400 is a problem body, only where no verified state gives a return_url to redirect to.
        var schema = responses.GetProperty("400").GetProperty("content").GetProperty("application/problem+json").GetProperty("schema");
        var codes = schema.GetProperty("properties").GetProperty("code").GetProperty("enum").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Equal(["invalid_callback", "invalid_state", "state_already_used", "invalid_input"], codes);

        // not_found (a connection deleted during the code exchange) and the other failures are the redirect's error.
        var description = callback.GetProperty("description").GetString()!;
        Assert.Contains("`status=failed&error=not_found`", description, StringComparison.Ordinal);
        Assert.Contains("`issuer_mismatch`", description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryComponentSchemaIsReferenced()
    {
        // A schema generated from a handler's declared return type that the catalog replaced would describe nothing
        // (and misdescribe timestamps): only schemas an operation or another schema uses are published.
        var (text, root) = await DocumentAsync();
        var unreferenced = root.GetProperty("components").GetProperty("schemas").EnumerateObject()
            .Select(s => s.Name)
            .Where(name => !text.Contains($"\"#/components/schemas/{name}\"", StringComparison.Ordinal))
            .ToList();
        Assert.True(unreferenced.Count == 0, "Unreferenced: " + string.Join(", ", unreferenced));
    }

    [Fact]
    public async Task TheCheckedInCopyEqualsTheGeneratedDocument()
    {
        var (text, _) = await DocumentAsync();
        var snapshot = Path.Combine(RepositoryRoot(), SnapshotPath);
        if (Environment.GetEnvironmentVariable("NEXUS_UPDATE_OPENAPI") == "1")
        {
            await File.WriteAllTextAsync(snapshot, text);
        }

        Assert.True(File.Exists(snapshot), $"{SnapshotPath} is missing: run scripts/openapi.sh");
        var expected = await File.ReadAllTextAsync(snapshot);
        Assert.True(expected == text,
            $"{SnapshotPath} differs from the document the server generates. If the API change is intended, run scripts/openapi.sh and commit {SnapshotPath}.");
    }

    [Fact]
    public async Task TheReferencePageLoadsNothingFromOutsideTheServer()
    {
        using var response = await Server.Http.GetAsync("/docs/api");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var html = await response.Content.ReadAsStringAsync();
        Assert.True(html.Contains("openapi/v1.json", StringComparison.Ordinal), html);
        var external = System.Text.RegularExpressions.Regex.Matches(html, @"(?:src|href)\s*=\s*[""']?(?:https?:)?//[^""'\s>]+")
            .Select(m => m.Value).ToList();
        Assert.True(external.Count == 0, "external resources: " + string.Join(", ", external));
        Assert.DoesNotContain("cdn.jsdelivr", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("fonts.scalar.com", html, StringComparison.OrdinalIgnoreCase);

        // The script the page loads is served by Nexus.
        var script = System.Text.RegularExpressions.Regex.Match(html, @"<script[^>]+src=""([^""]+)""").Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(script), html);
        using var js = await Server.Http.GetAsync(new Uri(new Uri(Server.BaseUrl + "/docs/api/"), script));
        Assert.Equal(HttpStatusCode.OK, js.StatusCode);
    }

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Nexus.slnx")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Nexus.slnx not found above " + AppContext.BaseDirectory);
    }
}
