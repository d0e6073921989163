using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.Hosting;

namespace Nexus.Server.ApiKeys;

/// <summary>Contract of POST /v1/admin/api-keys.</summary>
internal sealed record ApiKeyRequest(string? Name, string[]? Workspaces, bool? CanReadCredentials);

internal sealed record ApiKeyResponse(
    string Id,
    string Name,
    IReadOnlyList<string> Workspaces,
    bool CanReadCredentials,
    string Status,
    DateTimeOffset CreatedAt,
    DateTimeOffset? RevokedAt,
    string? ApiKey = null)
{
    public static ApiKeyResponse From(ApiKey k, string? key = null) =>
        new(k.Id, k.Name, k.Workspaces, k.CanReadCredentials, k.IsRevoked ? "revoked" : "active", k.CreatedAt, k.RevokedAt, key);
}

/// <summary>
/// /v1/admin/api-keys: keys for the gateway API, each bound to an explicit list of workspaces (or the explicit
/// wildcard ["*"]). The key is shown once and stored as a keyed hash. A key created with
/// can_read_credentials=false can manage connections but never read a credential (a Bridge-only key).
/// </summary>
/// <summary>GET /v1/admin/api-keys: every key, revoked ones included (never a key's secret).</summary>
internal sealed record ApiKeyList(IEnumerable<ApiKeyResponse> ApiKeys);

internal static class ApiKeysAdminEndpoints
{
    public static void MapApiKeysAdmin(this RouteGroupBuilder admin)
    {
        var keys = admin.MapGroup("").WithTags("API keys");
        keys.MapPost("/v1/admin/api-keys", CreateAsync);
        keys.MapGet("/v1/admin/api-keys", async (ApiKeyService apiKeys, CancellationToken ct) => TypedResults.Ok(new ApiKeyList((await apiKeys.ListAsync(ct)).Select(k => ApiKeyResponse.From(k)))));
        keys.MapGet("/v1/admin/api-keys/{id}", GetAsync);
        keys.MapDelete("/v1/admin/api-keys/{id}", RevokeAsync);
    }

    private static async Task<Results<Created<ApiKeyResponse>, ProblemHttpResult>> CreateAsync(HttpRequest request, ApiKeyService apiKeys, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<ApiKeyRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var (key, secret, errors) = await apiKeys.CreateAsync(body!, ct);
        return key is null ? Problems.TypedValidation(errors) : TypedResults.Created($"/v1/admin/api-keys/{key.Id}", ApiKeyResponse.From(key, secret));
    }

    private static async Task<Results<Ok<ApiKeyResponse>, ProblemHttpResult>> GetAsync(string id, ApiKeyService apiKeys, CancellationToken ct) =>
        await apiKeys.FindAsync(id, ct) is { } key ? TypedResults.Ok(ApiKeyResponse.From(key)) : Problems.TypedNotFound("API key");

    private static async Task<Results<NoContent, ProblemHttpResult>> RevokeAsync(string id, ApiKeyService apiKeys, CancellationToken ct)
    {
        if (await apiKeys.FindAsync(id, ct) is not { } key)
        {
            return Problems.TypedNotFound("API key");
        }

        await apiKeys.RevokeAsync(key, ct);
        return TypedResults.NoContent();
    }
}
