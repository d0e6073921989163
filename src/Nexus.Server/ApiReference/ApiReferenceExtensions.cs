using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Scalar.AspNetCore;

namespace Nexus.Server.ApiReference;

/// <summary>
/// The API reference: an OpenAPI 3.1 document generated from the mapped endpoints (Microsoft.AspNetCore.OpenApi) and
/// completed from <see cref="ApiCatalog"/> (summaries, bodies, the error responses each endpoint documents), served at
/// <c>/openapi/v1.json</c>, with an interactive page at <c>/docs/api</c> (Scalar, its script bundled in the package:
/// the page loads nothing from any CDN). The document is built once, on its first request, and then served from memory.
/// </summary>
internal static class ApiReferenceExtensions
{
    public const string DocumentPath = "/openapi/v1.json";
    public const string PagePath = "/docs/api";

    public static WebApplicationBuilder AddApiReference(this WebApplicationBuilder builder)
    {
        builder.Services.AddOpenApi("v1", o =>
        {
            o.OpenApiVersion = OpenApiSpecVersion.OpenApi3_1;
            o.AddDocumentTransformer<ApiDocumentTransformer>();
            o.AddOperationTransformer<ApiOperationTransformer>();
        });
        builder.Services.AddSingleton<ApiDocumentCache>();
        return builder;
    }

    public static WebApplication MapApiReference(this WebApplication app)
    {
        app.MapGet("/openapi/v1.json", async (ApiDocumentCache cache, HttpResponse response, CancellationToken ct) =>
        {
            response.Headers.CacheControl = "public, max-age=300";
            return TypedResults.Text(await cache.JsonAsync(ct), "application/json; charset=utf-8");
        }).ExcludeFromDescription();
        // The page's headers: no framing, no Referer, and a CSP that lets it reach only Nexus itself (ScalarPagePolicy).
        app.UseWhen(context => context.Request.Path.StartsWithSegments(PagePath), branch => branch.Use(ScalarPagePolicy.ApplyAsync));
        app.MapScalarApiReference("/docs/api", o => o
            .WithTitle("Nexus API")
            .WithOpenApiRoutePattern(DocumentPath)
            // Everything the page needs comes from Nexus itself: no web fonts from a CDN, no telemetry.
            .DisableDefaultFonts()
            .DisableTelemetry());
        return app;
    }
}

/// <summary>The generated document, serialized once (generation walks every endpoint; a request should not).</summary>
internal sealed class ApiDocumentCache(IServiceProvider services)
{
    private readonly Lazy<Task<string>> json = new(() => GenerateAsync(services));

    public Task<string> JsonAsync(CancellationToken ct) => json.Value.WaitAsync(ct);

    public static async Task<string> GenerateAsync(IServiceProvider services)
    {
        var provider = services.GetRequiredKeyedService<IOpenApiDocumentProvider>("v1");
        var document = await provider.GetOpenApiDocumentAsync(CancellationToken.None);
        using var writer = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
        var json = new OpenApiJsonWriter(writer, new OpenApiJsonWriterSettings());
        document.SerializeAsV31(json);
        return writer.ToString().ReplaceLineEndings("\n") + "\n";
    }
}
