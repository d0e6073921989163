using System.Security.Cryptography;
using System.Text;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.ApiKeys;

/// <summary>Who is calling the gateway API, and for which workspaces.</summary>
internal sealed class Caller(string actor, string? keyId, IReadOnlySet<string>? workspaces, bool canReadCredentials)
{
    /// <summary>Audit name: "bootstrap" for API_KEY, "api_key:{id}" for a created key.</summary>
    public string Actor { get; } = actor;

    public string? KeyId { get; } = keyId;

    /// <summary>Null means every workspace.</summary>
    public IReadOnlySet<string>? Workspaces { get; } = workspaces;

    public bool CanReadCredentials { get; } = canReadCredentials;

    public bool CanAccess(string workspaceId) => Workspaces is null || Workspaces.Contains(workspaceId);
}

/// <summary>
/// Authenticates X-API-Key on the gateway API (/v1/request-connection, /v1/connections, /v1/token): the bootstrap
/// API_KEY (every workspace) or a key created with POST /v1/admin/api-keys (its workspaces only).
/// </summary>
internal sealed class GatewayAuthenticator
{
    private readonly byte[]? bootstrapHash;
    private readonly Caller bootstrap = new("bootstrap", null, null, true);
    private readonly ApiKeyStore store;
    private readonly SecretHasher hasher;
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<ApiKey, Caller> callers = [];

    public GatewayAuthenticator(NexusOptions options, ApiKeyStore store, SecretHasher hasher)
    {
        bootstrapHash = string.IsNullOrEmpty(options.ApiKey) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.ApiKey));
        this.store = store;
        this.hasher = hasher;
    }

    public async ValueTask<(Caller? Caller, IResult? Error)> AuthenticateAsync(HttpContext context)
    {
        var presented = context.Request.Headers[AdminApiKeyFilter.HeaderName];
        if (presented.Count == 1 && presented[0] is { Length: > 0 and <= 512 } key)
        {
            if (bootstrapHash is not null && MatchesBootstrap(key))
            {
                return (bootstrap, null);
            }

            if (key.StartsWith(ApiKeysAdminEndpoints.KeyPrefix, StringComparison.Ordinal)
                && await store.FindByHashCachedAsync(hasher.Hash(key), context.RequestAborted) is { IsRevoked: false } apiKey)
            {
                return (callers.GetValue(apiKey, k => new Caller("api_key:" + k.Id, k.Id,
                    k.Workspaces.Contains(ApiKey.AllWorkspaces) ? null : new HashSet<string>(k.Workspaces, StringComparer.Ordinal), k.CanReadCredentials)), null);
            }
        }

        context.Response.Headers.WWWAuthenticate = "ApiKey header=\"X-API-Key\"";
        return (null, Problems.Create(ProblemCatalog.Unauthorized,
            "Send an API key from POST /v1/admin/api-keys (or the deployment's API_KEY) in the X-API-Key header."));
    }

    private bool MatchesBootstrap(string presented)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        return CryptographicOperations.FixedTimeEquals(hash, bootstrapHash);
    }
}
