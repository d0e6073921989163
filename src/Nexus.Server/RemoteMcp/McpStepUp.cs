using Nexus.Server.Audit;
using Nexus.Server.Connections;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Vault;

namespace Nexus.Server.RemoteMcp;

/// <summary>
/// MCP authorization, Scope Challenge Handling (step-up): an MCP server answered 403 with error="insufficient_scope".
/// The connection (keeping its id and, meanwhile, its tokens) is armed for a new consent for the union of the scopes
/// it has and those the challenge names, and the caller gets that consent's auth_url. At most
/// <see cref="MaxRounds"/> authorization rounds per connection: the first consent and two step-ups, the step-ups
/// counted in the database (connections.authorization_rounds; every instance sees them). MCP authorization, Scope
/// Challenge Handling: clients SHOULD limit the rounds, and the conformance suite's auth/scope-retry-limit counts the
/// first authorization request among its three.
/// </summary>
internal sealed class McpStepUp(ConnectionStore store, StateSigner signer, AuditLog audit, NexusOptions options, TimeProvider time)
{
    public const int MaxRounds = 3;

    public async Task<IResult> StartAsync(Connection connection, Provider provider, string? challengeScope, CancellationToken ct)
    {
        var wanted = connection.ScopeList.Concat(challengeScope?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? []);
        var server = new McpAuthorizationServer(provider.Config.Issuer ?? "", "", "", null, null, null, provider.Config.Mcp?.AuthorizationServerScopes, false, false, null);
        var scopes = McpDiscovery.WithOfflineAccess(wanted, server);
        var now = time.GetUtcNow();
        var nonce = SecretGenerator.Base64Url(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var expiresAt = now.AddSeconds(options.PendingConnectionSeconds);
        var verifier = ProviderClient.NewCodeVerifier();
        if (!await store.BeginStepUpAsync(connection.Id, nonce, expiresAt.ToUnixTimeMilliseconds(), store.Encrypt(ConnectionStore.PkceVerifierColumn, connection.Id, verifier),
                string.Join(' ', scopes), MaxRounds - 1, ct))
        {
            return Problems.Create(ProblemCatalog.StepUpLimit,
                $"{MaxRounds} authorization rounds were started for this connection; connect it anew (POST /v1/request-connection) to try again.");
        }

        var state = signer.Create(connection.Id, nonce, expiresAt.ToUnixTimeSeconds());
        var authUrl = ProviderClient.AuthorizationUrl(provider, options.Issuer + GatewayEndpoints.CallbackPath, scopes, state, verifier);
        await audit.RecordAsync(AuditEvents.Requested, "bridge", connection.WorkspaceId, connection.Id, new { provider = provider.Name, scopes, step_up = true }, ct);
        return Problems.Create(ProblemCatalog.InsufficientScope,
            "Send the person to auth_url; the connection keeps its id and becomes usable with the wider scopes once they approve.",
            new Dictionary<string, object?> { ["auth_url"] = authUrl, ["connection_id"] = connection.Id, ["scopes"] = scopes }, title: "The MCP server needs more scopes; the person must approve them.");
    }
}
