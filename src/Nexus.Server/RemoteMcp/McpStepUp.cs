using Nexus.Server.Audit;
using Nexus.Server.Connections;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Vault;

namespace Nexus.Server.RemoteMcp;

/// <summary>
/// MCP authorization, Scope Challenge Handling (step-up): an MCP server answered 403 with error="insufficient_scope".
/// The connection (keeping its id and, meanwhile, its tokens) is armed for a new consent for the union of the scopes
/// it has and those the challenge names, and the caller gets that consent's auth_url.
/// <para>
/// At most <see cref="MaxRounds"/> authorization rounds per <b>operation</b> (issue 15, item 4; the specification:
/// clients SHOULD limit the rounds, so that a server that is never satisfied cannot loop a person through consent).
/// An operation is one attempt to obtain, from the person, a grant that satisfies one need of one connection:
/// </para>
/// <list type="bullet">
/// <item>A connect (POST /v1/request-connection) or a reconnect (POST /v1/connections/{id}/reconnect, the dashboard's
/// Reconnect) begins an operation; its consent is round 1, for the scopes it asks.</item>
/// <item>A step-up <b>continues</b> the connection's open operation (round n + 1) when every scope its challenge
/// names was already asked for in that operation (the earlier consent did not satisfy the server: the same need
/// again), and the operation's latest round began less than <see cref="OperationWindow"/> ago. Its scopes are added
/// to the operation's.</item>
/// <item>Any other step-up <b>begins</b> a new operation at round 1: the challenge names a scope this operation never
/// asked for (another tool, another need), or the operation is older than <see cref="OperationWindow"/> (the person
/// comes back later).</item>
/// </list>
/// <para>
/// A step-up that would be round <see cref="MaxRounds"/> + 1 of its operation is refused with
/// <c>step_up_limit</c>. The operation (its scopes, rounds, and when its latest round began) is stored on the
/// connection's row and changed by compare-and-set, so every instance counts the same rounds, and a consent that
/// finishes on another instance changes nothing about the count. The conformance suite's auth/scope-retry-limit
/// counts the first authorization request among its three: its server names the same scope at the connect and at
/// every challenge, so they are the rounds of one operation.
/// </para>
/// </summary>
internal sealed class McpStepUp(ConnectionStore store, StateSigner signer, AuditLog audit, NexusOptions options, TimeProvider time)
{
    public const int MaxRounds = 3;

    /// <summary>How long after its latest round began an operation can be continued by a step-up.</summary>
    public static readonly TimeSpan OperationWindow = TimeSpan.FromHours(1);

    /// <summary>The operation after a step-up for <paramref name="challenged"/> (asking for <paramref name="asked"/>); null when the limit refuses it.</summary>
    public static AuthorizationOperation? NextRound(AuthorizationOperation current, IEnumerable<string> challenged, IEnumerable<string> asked, DateTimeOffset now)
    {
        var operationScopes = (current.Scopes ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        var continues = current.Rounds > 0 && now.ToUnixTimeMilliseconds() - current.RoundAt < (long)OperationWindow.TotalMilliseconds
            && challenged.All(operationScopes.Contains);
        if (!continues)
        {
            return new AuthorizationOperation { Scopes = string.Join(' ', asked.Distinct(StringComparer.Ordinal)), Rounds = 1, RoundAt = now.ToUnixTimeMilliseconds() };
        }

        return current.Rounds >= MaxRounds ? null : new AuthorizationOperation
        {
            Scopes = string.Join(' ', operationScopes.Concat(asked).Distinct(StringComparer.Ordinal)),
            Rounds = current.Rounds + 1,
            RoundAt = now.ToUnixTimeMilliseconds(),
        };
    }

    public async Task<IResult> StartAsync(Connection connection, Provider provider, string? challengeScope, CancellationToken ct)
    {
        var challenged = challengeScope?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        var wanted = connection.ScopeList.Concat(challenged);
        var server = new McpAuthorizationServer(provider.Config.Issuer ?? "", "", "", null, null, null, provider.Config.Mcp?.AuthorizationServerScopes, false, false, null);
        var scopes = McpDiscovery.WithOfflineAccess(wanted, server);
        var now = time.GetUtcNow();
        var nonce = SecretGenerator.Base64Url(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var expiresAt = now.AddSeconds(options.PendingConnectionSeconds);
        var verifier = ProviderClient.NewCodeVerifier();
        var encryptedVerifier = store.Encrypt(ConnectionStore.PkceVerifierColumn, connection.Id, verifier);
        AuthorizationOperation? next = null;
        // Compare-and-set: another instance counting a round of the same connection at the same moment makes this
        // one read the operation again; a few attempts settle any realistic race.
        for (var attempt = 0; attempt < 5; attempt++)
        {
            if (await store.FindAuthorizationOperationAsync(connection.Id, ct) is not { } current)
            {
                // The connection stopped being active meanwhile (revoked, or a refresh failed on another instance).
                return await store.FindAsync(connection.Id, ct) is { } changed ? ConnectionProblems.NotActive(changed)
                    : Problems.NotFound("Connection");
            }

            next = NextRound(current, challenged, scopes, now);
            if (next is null)
            {
                return Problems.Create(ProblemCatalog.StepUpLimit,
                    $"This operation already started {MaxRounds} authorization rounds for these scopes and the server is still not satisfied; " +
                    "reconnect the connection (POST /v1/connections/{id}/reconnect), which begins a new operation, or try again later.",
                    new Dictionary<string, object?> { ["connection_id"] = connection.Id, ["rounds"] = current.Rounds });
            }

            if (await store.BeginStepUpAsync(connection.Id, nonce, expiresAt.ToUnixTimeMilliseconds(), encryptedVerifier, string.Join(' ', scopes), current, next, ct))
            {
                break;
            }

            next = null;
        }

        if (next is null)
        {
            return Problems.Create(ProblemCatalog.StepUpBusy, "Try the request again.");
        }

        var state = signer.Create(connection.Id, nonce, expiresAt.ToUnixTimeSeconds());
        var authUrl = ProviderClient.AuthorizationUrl(provider, options.Issuer + GatewayEndpoints.CallbackPath, scopes, state, verifier);
        await audit.RecordAsync(AuditEvents.Requested, "bridge", connection.WorkspaceId, connection.Id, new { provider = provider.Name, scopes, step_up = true, round = next.Rounds }, ct);
        return Problems.Create(ProblemCatalog.InsufficientScope,
            "Send the person to auth_url; the connection keeps its id and becomes usable with the wider scopes once they approve.",
            new Dictionary<string, object?> { ["auth_url"] = authUrl, ["connection_id"] = connection.Id, ["scopes"] = scopes }, title: "The MCP server needs more scopes; the person must approve them.");
    }
}
