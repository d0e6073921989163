using Nexus.Server.Audit;
using Nexus.Server.AuthorizationServer;
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
/// <para>
/// A machine-to-machine server (client_credentials) has nobody to consent: its round is a new client_credentials grant
/// for the wider scopes, asked for at once, and the Bridge sends the request once more with the new token
/// (<see cref="MachineStepUpAsync"/>). Its rounds are counted the same way (its connect and reconnect begin an
/// operation too), so a server that is never satisfied costs at most <see cref="MaxRounds"/> granted or refused token
/// requests per operation, not one per request; a grant that failed transiently (network, 5xx, 429) does not count.
/// </para>
/// </summary>
internal sealed class McpStepUp(ConnectionStore store, StateSigner signer, AuditLog audit, NexusOptions options, TimeProvider time, MachineGrants machine)
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

    /// <summary>
    /// The answer to a 403 insufficient_scope of the connection's MCP server, naming <paramref name="challengeScope"/>.
    /// A person's connection is armed for a step-up consent (the answer carries its auth_url); a machine-to-machine
    /// connection gets a token for the wider scopes at once (<see cref="MachineStepUpAsync"/>).
    /// </summary>
    /// <param name="canResend">Whether the Bridge can send the request again (its body was buffered).</param>
    public async Task<StepUpAnswer> StartAsync(Connection connection, Provider provider, string? challengeScope, bool canResend, CancellationToken ct)
    {
        var challenged = challengeScope?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        var machine = provider.Config.Mcp?.IsClientCredentials == true;
        var wanted = connection.ScopeList.Concat(challenged).Distinct(StringComparer.Ordinal).ToArray();
        // A person's consent also asks for offline_access where the authorization server lists it.
        var scopes = machine ? wanted : McpDiscovery.WithOfflineAccess(wanted, provider.Config.Mcp?.AuthorizationServerScopes);
        // The server's challenge is held to the rule an administrator's scopes are, on the list that would be stored and
        // sent: a hostile one (thousands of scopes, characters RFC 6749 §3.3 does not allow) is neither.
        if (!ScopeSyntax.IsValidList(scopes))
        {
            return new StepUpAnswer(Problems.Create(ProblemCatalog.StepUpLimit,
                $"The MCP server asked for scopes Nexus does not request for it: with the connection's, more than {ScopeSyntax.MaxScopes}, or not RFC 6749 §3.3 scope tokens. " +
                "The connection keeps its token and scopes.",
                new Dictionary<string, object?> { ["connection_id"] = connection.Id }));
        }

        if (machine)
        {
            return await MachineStepUpAsync(connection, provider, challenged, canResend, ct);
        }

        var now = time.GetUtcNow();
        var nonce = SecretGenerator.Base64Url(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var expiresAt = now.AddSeconds(options.PendingConnectionSeconds);
        var verifier = ProviderClient.NewCodeVerifier();
        var encryptedVerifier = store.Encrypt(ConnectionStore.PkceVerifierColumn, connection.Id, verifier);
        var (_, next, problem) = await CountRoundAsync(connection, challenged, scopes, now, machine: false,
            (current, next) => store.BeginStepUpAsync(connection.Id, nonce, expiresAt.ToUnixTimeMilliseconds(), encryptedVerifier, string.Join(' ', scopes), current, next, ct), ct);
        if (next is null)
        {
            return new StepUpAnswer(problem!);
        }

        var state = signer.Create(connection.Id, nonce, expiresAt.ToUnixTimeSeconds());
        var authUrl = ProviderClient.AuthorizationUrl(provider, options.Issuer + GatewayEndpoints.CallbackPath, scopes, state, verifier);
        await audit.RecordAsync(AuditEvents.Requested, "bridge", connection.WorkspaceId, connection.Id, new { provider = provider.Name, scopes, step_up = true, round = next.Rounds }, ct);
        return new StepUpAnswer(Problems.Create(ProblemCatalog.InsufficientScope,
            "Send the person to auth_url; the connection keeps its id and becomes usable with the wider scopes once they approve.",
            new Dictionary<string, object?> { ["auth_url"] = authUrl, ["connection_id"] = connection.Id, ["scopes"] = scopes }, title: "The MCP server needs more scopes; the person must approve them."));
    }

    /// <summary>
    /// A machine-to-machine server (client_credentials) asked for more scopes: nobody can consent, so the round is a new
    /// client_credentials grant for the connection's scopes and the challenged ones, at once (<see cref="MachineGrants"/>),
    /// and the Bridge sends the request once more with it. Rounds are counted as for a person's step-ups (at most
    /// <see cref="MaxRounds"/> per operation, compare-and-set), so a server that keeps refusing cannot make every
    /// request a token request. When the authorization server refuses the wider scopes, or the server still refuses
    /// the new token, the answer is <c>scope_not_allowed</c> (no auth_url: there is nobody to send to one).
    /// </summary>
    private async Task<StepUpAnswer> MachineStepUpAsync(Connection connection, Provider provider, string[] challenged, bool canResend, CancellationToken ct)
    {
        var scopes = connection.ScopeList.Concat(challenged).Distinct(StringComparer.Ordinal).ToArray();
        var (seen, next, problem) = await CountRoundAsync(connection, challenged, scopes, time.GetUtcNow(), machine: true,
            (current, next) => store.CountMachineRoundAsync(connection.Id, current, next, ct), ct);
        if (next is null)
        {
            return new StepUpAnswer(problem!);
        }

        await audit.RecordAsync(AuditEvents.Requested, "bridge", connection.WorkspaceId, connection.Id,
            new { provider = provider.Name, scopes, grant_type = "client_credentials", step_up = true, round = next.Rounds }, ct);
        // The grant gives the round back when it fails transiently, and its audit entry says whether the round counted.
        var granted = await machine.GrantAsync(provider, connection, scopes, MachineGrantReason.StepUp, "bridge", null, ct, new MachineRound(seen!, next));
        // A challenge may name no scope (RFC 6750 §3: scope is optional); the token is then asked for again as it was.
        var wanted = challenged.Length == 0 ? "more scopes without naming them" : string.Join(' ', challenged);
        var extensions = new Dictionary<string, object?> { ["connection_id"] = connection.Id, ["scopes"] = scopes };
        if (granted.Status is null)
        {
            return new StepUpAnswer(Problems.NotFound("Connection"));
        }

        if (!granted.Succeeded)
        {
            extensions["error"] = granted.Result.Error;
            extensions["error_description"] = granted.Result.ErrorDescription;
            if (granted.Result.Error != OAuthErrorCatalog.InvalidScope.Error && granted.Result.Error != OAuthErrorCatalog.UnauthorizedClient.Error)
            {
                // Not a refusal of the scope (RFC 6749 §5.2 invalid_scope, unauthorized_client) but of the client or of
                // the exchange itself (invalid_client after a rotated secret, server_error, unreachable): said as such.
                return new StepUpAnswer(Problems.Create(ProblemCatalog.TokenRequestFailed,
                    $"The MCP server asked for {wanted}; its authorization server did not issue a token for {string.Join(' ', scopes)} " +
                    $"({ProviderClient.Describe(granted.Result.Error, granted.Result.ErrorDescription)}). The connection keeps its token and scopes; try again later, " +
                    "or check the machine client's credentials (PATCH /v1/providers/{name}).", extensions));
            }

            return new StepUpAnswer(Problems.Create(ProblemCatalog.ScopeNotAllowed,
                $"The MCP server asked for {wanted}, and its authorization server refused a token for {string.Join(' ', scopes)} " +
                $"({ProviderClient.Describe(granted.Result.Error, granted.Result.ErrorDescription)}). The connection keeps its token and scopes; " +
                "an administrator of the authorization server must allow the machine client that scope.", extensions));
        }

        if (!canResend)
        {
            // The request's body streamed through and is gone: the caller sends it again, and the new token goes with it.
            // Its own code, not step_up_busy (another step-up is starting): nothing is busy, the step-up succeeded.
            return new StepUpAnswer(Problems.Create(ProblemCatalog.StepUpSendAgain,
                "The connection now has a token for the wider scopes; this request's body was too large for the Bridge to send again. Send the request again.",
                extensions));
        }

        return new StepUpAnswer(Problems.Create(ProblemCatalog.ScopeNotAllowed,
            $"The MCP server asked for {wanted} and still refused a token its authorization server granted for {string.Join(' ', scopes)}; " +
            "the machine client is not allowed what the server wants. The connection keeps the new token.", extensions), granted.Result.AccessToken);
    }

    /// <summary>
    /// Counts this step-up as a round of the connection's authorization operation (<see cref="NextRound"/>), written by
    /// <paramref name="write"/> as a compare-and-set on the operation read: another instance counting a round of the
    /// same connection at the same moment makes this one read the operation again; a few attempts settle any realistic
    /// race. Returns the operation it read and the operation after this round, or the problem that refuses it.
    /// </summary>
    private async Task<(AuthorizationOperation? Seen, AuthorizationOperation? Next, IResult? Problem)> CountRoundAsync(Connection connection, string[] challenged, IEnumerable<string> asked, DateTimeOffset now,
        bool machine, Func<AuthorizationOperation, AuthorizationOperation, Task<bool>> write, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            if (await store.FindAuthorizationOperationAsync(connection.Id, ct) is not { } current)
            {
                // The connection stopped being active meanwhile (revoked, or a refresh failed on another instance).
                return (null, null, await store.FindAsync(connection.Id, ct) is { } changed ? ConnectionProblems.NotActive(changed) : Problems.NotFound("Connection"));
            }

            if (NextRound(current, challenged, asked, now) is not { } next)
            {
                return (null, null, Problems.Create(ProblemCatalog.StepUpLimit,
                    machine
                        ? $"This operation already asked for these scopes {MaxRounds} times and the MCP server is still not satisfied; the machine client is not " +
                          "allowed what it wants. Try again later, or reconnect the connection (POST /v1/connections/{id}/reconnect), which begins a new operation."
                        : $"This operation already started {MaxRounds} authorization rounds for these scopes and the server is still not satisfied; " +
                          "reconnect the connection (POST /v1/connections/{id}/reconnect), which begins a new operation, or try again later.",
                    new Dictionary<string, object?> { ["connection_id"] = connection.Id, ["rounds"] = current.Rounds }));
            }

            if (await write(current, next))
            {
                return (current, next, null);
            }
        }

        return (null, null, Problems.Create(ProblemCatalog.StepUpBusy, "Try the request again."));
    }
}

/// <summary>
/// The step-up's answer to an MCP server's 403 insufficient_scope. <paramref name="RetryToken"/>: a machine-to-machine
/// connection's new access token for the wider scopes; the Bridge sends the request once more with it and gives
/// <paramref name="Answer"/> only when the server refuses again. Without one, <paramref name="Answer"/> is the answer.
/// </summary>
internal sealed record StepUpAnswer(IResult Answer, string? RetryToken = null);
