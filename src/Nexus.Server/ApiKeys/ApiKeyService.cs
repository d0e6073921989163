using Nexus.Server.Vault;

namespace Nexus.Server.ApiKeys;

/// <summary>
/// Gateway API keys, whoever asks: /v1/admin/api-keys, the dashboard's Site management › API keys and the
/// <c>api-keys</c> commands all call this (issue 13: domain services out of endpoint classes). Callers authorize
/// first; this validates and does the work. A key is shown once and stored as a keyed hash.
/// </summary>
internal sealed class ApiKeyService(ApiKeyStore store, SecretHasher hasher, TimeProvider time)
{
    public const string KeyPrefix = "nxk_";
    private const int MaxWorkspaces = 1000;

    public Task<IReadOnlyList<ApiKey>> ListAsync(CancellationToken ct) => store.ListAsync(ct);

    public Task<ApiKey?> FindAsync(string id, CancellationToken ct) => store.FindAsync(id, ct);

    /// <summary>Validates and creates a gateway API key; the key itself is returned once.</summary>
    public async Task<(ApiKey? Key, string? Secret, Dictionary<string, string[]> Errors)> CreateAsync(ApiKeyRequest body, CancellationToken ct)
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

    /// <summary>Revokes the key at once and returns it as stored now. Revoking twice is not an error; the record stays so that audit events keep naming it.</summary>
    public async Task<ApiKey> RevokeAsync(ApiKey key, CancellationToken ct)
    {
        await store.RevokeAsync(key, ct);
        return await store.FindAsync(key.Id, ct) ?? key;
    }
}
