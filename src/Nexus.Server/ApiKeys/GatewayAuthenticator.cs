using System.Security.Claims;
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

    /// <summary>The same caller as claims (<see cref="NexusPolicies"/>), built once per key.</summary>
    public ClaimsPrincipal Principal { get; } = new(new ClaimsIdentity(Claims(actor, keyId, workspaces, canReadCredentials), ApiKeyAuthenticationHandler.GatewayScheme));

    public bool CanAccess(string workspaceId) => Workspaces is null || Workspaces.Contains(workspaceId);

    /// <summary>
    /// Minimal API binding: the caller the ApiKey scheme authenticated for the gateway policy (the route group requires
    /// it, so a handler that takes a Caller never runs without one).
    /// </summary>
    public static ValueTask<Caller?> BindAsync(HttpContext context) => ValueTask.FromResult(context.Features.Get<Caller>());

    private static IEnumerable<Claim> Claims(string actor, string? keyId, IReadOnlySet<string>? workspaces, bool canReadCredentials)
    {
        yield return new Claim(ClaimTypes.Name, actor);
        if (keyId is null)
        {
            yield return new Claim(NexusPolicies.AdminClaim, "true");
        }

        foreach (var workspace in workspaces ?? new HashSet<string> { ApiKey.AllWorkspaces })
        {
            yield return new Claim(NexusPolicies.WorkspaceClaim, workspace);
        }

        yield return new Claim(NexusPolicies.CanReadCredentialsClaim, canReadCredentials ? "true" : "false");
    }
}

/// <summary>
/// Identifies X-API-Key on the gateway API (/v1/request-connection, /v1/connections, /v1/token, the Bridge): the
/// bootstrap API_KEY (every workspace) or a key created with POST /v1/admin/api-keys (its workspaces only). The
/// ApiKey authentication scheme calls it for the gateway policy; the Bridge calls <see cref="AuthenticateAsync"/>
/// itself (it answers from a plain request delegate, see BridgeEndpoints).
/// </summary>
internal sealed class GatewayAuthenticator(AdminApiKey adminKey, ApiKeyStore store, SecretHasher hasher)
{
    private readonly Caller bootstrap = new("bootstrap", null, null, true);
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<ApiKey, Caller> callers = [];

    /// <summary>The caller the request's X-API-Key names, or null. A created key's lookup is cached (ApiKeyStore).</summary>
    public async ValueTask<Caller?> IdentifyAsync(HttpContext context)
    {
        var presented = context.Request.Headers[AdminApiKey.HeaderName];
        if (presented.Count == 1 && presented[0] is { Length: > 0 and <= 512 } key)
        {
            // A created key (the gateway's everyday caller, the Bridge's hot path) is looked up first, so it costs one
            // keyed hash rather than that and the admin key's comparison too.
            if (key.StartsWith(ApiKeyService.KeyPrefix, StringComparison.Ordinal)
                && await store.FindByHashCachedAsync(hasher.Hash(key), context.RequestAborted) is { IsRevoked: false } apiKey)
            {
                return callers.GetValue(apiKey, k => new Caller("api_key:" + k.Id, k.Id,
                    k.Workspaces.Contains(ApiKey.AllWorkspaces) ? null : new HashSet<string>(k.Workspaces, StringComparer.Ordinal), k.CanReadCredentials));
            }

            if (adminKey.Matches(key))
            {
                return bootstrap;
            }
        }

        return null;
    }

    public async ValueTask<(Caller? Caller, IResult? Error)> AuthenticateAsync(HttpContext context) =>
        await IdentifyAsync(context) is { } caller ? (caller, null) : (null, Refusal(context));

    /// <summary>The gateway's 401.</summary>
    public static IResult Refusal(HttpContext context)
    {
        context.Response.Headers.WWWAuthenticate = AdminApiKey.Challenge;
        return Problems.Create(ProblemCatalog.Unauthorized,
            "Send an API key from POST /v1/admin/api-keys (or the deployment's API_KEY) in the X-API-Key header.");
    }
}
