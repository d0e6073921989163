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

/// <summary>
/// The Content-Security-Policy of /docs/api. Scalar's HTML starts the reference from one inline module script whose
/// text depends on the page's path; instead of allowing every inline script ('unsafe-inline'), the page is buffered
/// and the policy lists the SHA-256 of each inline script it carries (CSP Level 3 §8.3, hash-source), so an injected
/// script would not run. Scalar adds its styles at run time (style elements and attributes), which no hash can name:
/// style-src keeps 'unsafe-inline', which lets a page be restyled but runs nothing.
/// </summary>
internal static partial class ScalarPagePolicy
{
    private const string Rest = "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
        + "form-action 'none'; frame-ancestors 'none'";

    [System.Text.RegularExpressions.GeneratedRegex("<script(?![^>]*\\ssrc\\s*=)[^>]*>(?<body>.*?)</script>", System.Text.RegularExpressions.RegexOptions.Singleline
        | System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex InlineScript();

    /// <summary>The policy for a page whose inline scripts are those of <paramref name="html"/>.</summary>
    public static string For(string html)
    {
        var hashes = InlineScript().Matches(html)
            .Select(m => $" 'sha256-{Convert.ToBase64String(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(m.Groups["body"].Value)))}'")
            .Distinct();
        return $"default-src 'none'; script-src 'self'{string.Concat(hashes)}; {Rest}";
    }

    public static async Task ApplyAsync(HttpContext context, RequestDelegate next)
    {
        var headers = context.Response.Headers;
        headers.XFrameOptions = "DENY";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        // The scripts, the redirect to the trailing slash, an error: no inline script to allow.
        headers.ContentSecurityPolicy = For("");
        if (!HttpMethods.IsGet(context.Request.Method) || Path.HasExtension(context.Request.Path.Value))
        {
            await next(context);
            return;
        }

        var original = context.Response.Body;
        using var buffer = new MemoryStream();
        context.Response.Body = buffer;
        try
        {
            await next(context);
        }
        finally
        {
            context.Response.Body = original;
        }

        if (context.Response.ContentType?.StartsWith("text/html", StringComparison.OrdinalIgnoreCase) == true && !context.Response.HasStarted)
        {
            headers.ContentSecurityPolicy = For(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
        }

        buffer.Position = 0;
        await buffer.CopyToAsync(original, context.RequestAborted);
    }
}
