using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Nexus.Server.Providers;

/// <summary>
/// GET /v1/catalog: the providers Nexus knows how to connect to, optionally filtered by auth_mode and category.
/// The catalog is public product data (endpoints, scopes, credential forms) and holds no secret, so it needs no
/// API key. The unfiltered answer is serialized once.
/// </summary>
internal static class CatalogEndpoint
{
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static void MapCatalog(this IEndpointRouteBuilder app)
    {
        string? everything = null;
        app.MapGet("/v1/catalog", (ProviderCatalog catalog, HttpResponse response, [Microsoft.AspNetCore.Mvc.FromQuery(Name = "auth_mode")] string? authMode, string? category) =>
        {
            response.Headers.CacheControl = "public, max-age=300";
            var json = authMode is null && category is null
                ? everything ??= Serialize(catalog, _ => true)
                : Serialize(catalog, e => (authMode is null || e.AuthMode == authMode) && (category is null || e.Categories.Contains(category)));
            return TypedResults.Text(json, "application/json");
        }).WithTags("Providers");
    }

    private static string Serialize(ProviderCatalog catalog, Func<CatalogEntry, bool> filter)
    {
        var list = new JsonArray();
        foreach (var (key, entry) in catalog.Entries.Where(e => filter(e.Value)))
        {
            var node = JsonSerializer.SerializeToNode(entry, Options)!.AsObject();
            node.Insert(0, "key", key);
            list.Add(node);
        }

        return new JsonObject { ["version"] = catalog.Version, ["count"] = list.Count, ["providers"] = list }.ToJsonString();
    }
}
