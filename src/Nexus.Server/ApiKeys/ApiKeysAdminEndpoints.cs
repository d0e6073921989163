using Nexus.Server.Hosting;
using Nexus.Server.Vault;

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
internal static class ApiKeysAdminEndpoints
{
    public const string KeyPrefix = "nxk_";
    private const int MaxWorkspaces = 1000;

    public static void MapApiKeysAdmin(this RouteGroupBuilder admin)
    {
        var keys = admin.MapGroup("/api-keys").WithTags("API keys");
        keys.MapPost("", CreateAsync);
        keys.MapGet("", async (ApiKeyStore store, CancellationToken ct) => TypedResults.Ok(new { api_keys = (await store.ListAsync(ct)).Select(k => ApiKeyResponse.From(k)) }));
        keys.MapGet("/{id}", async (string id, ApiKeyStore store, CancellationToken ct) =>
            await store.FindAsync(id, ct) is { } key ? TypedResults.Ok(ApiKeyResponse.From(key)) : Problems.NotFound("API key"));
        keys.MapDelete("/{id}", async (string id, ApiKeyStore store, CancellationToken ct) =>
        {
            var key = await store.FindAsync(id, ct);
            if (key is null)
            {
                return Problems.NotFound("API key");
            }

            // Revoking twice is not an error; the record stays so that audit events keep naming it.
            await store.RevokeAsync(key, ct);
            return TypedResults.NoContent();
        });
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, ApiKeyStore store, SecretHasher hasher, TimeProvider time, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<ApiKeyRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var (key, secret, errors) = await CreateKeyAsync(body!, store, hasher, time, ct);
        return key is null ? Problems.Validation(errors) : TypedResults.Created($"/v1/admin/api-keys/{key.Id}", ApiKeyResponse.From(key, secret));
    }

    /// <summary>Validates and creates a gateway API key; shared by the admin API and the dashboard.</summary>
    public static async Task<(ApiKey? Key, string? Secret, Dictionary<string, string[]> Errors)> CreateKeyAsync(ApiKeyRequest body, ApiKeyStore store, SecretHasher hasher,
        TimeProvider time, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(body.Name) || body.Name.Trim().Length > 200)
        {
            errors["name"] = ["Give the key a name of 1 to 200 characters."];
        }

        // Deliberately no default: a key that silently acted for every workspace would be the easiest mistake to make.
        if (body.Workspaces is null || body.Workspaces.Length == 0)
        {
            errors["workspaces"] = ["List the workspace ids this key may act for, or [\"*\"] for every workspace."];
        }
        else if (body.Workspaces.Length > MaxWorkspaces)
        {
            errors["workspaces"] = [$"At most {MaxWorkspaces} workspaces; use [\"*\"] for a key that acts for all of them."];
        }
        else if (body.Workspaces.Contains(ApiKey.AllWorkspaces) && body.Workspaces.Length > 1)
        {
            errors["workspaces"] = ["\"*\" already means every workspace; send it alone."];
        }
        else if (!body.Workspaces.Contains(ApiKey.AllWorkspaces) && body.Workspaces.Any(w => !WorkspaceIds.IsValid(w)))
        {
            errors["workspaces"] = ["Workspace ids are 1 to 200 letters, digits or _ . : @ + -."];
        }

        if (errors.Count > 0)
        {
            return (null, null, errors);
        }

        var secret = SecretGenerator.Secret(KeyPrefix);
        var key = new ApiKey(SecretGenerator.Id("ak_"), body.Name!.Trim(), hasher.Hash(secret), body.Workspaces!.Distinct(StringComparer.Ordinal).ToArray(),
            body.CanReadCredentials ?? true, time.GetUtcNow(), null);
        await store.CreateAsync(key, ct);
        return (key, secret, errors);
    }
}
