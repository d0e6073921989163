using Nexus.Server.ApiKeys;
using Nexus.Server.Audit;
using Nexus.Server.Hosting;

namespace Nexus.Server.Connections.Refresh;

/// <summary>
/// POST /v1/refresh/{connection_id}: refresh now, whatever the expiry, and answer the connection as GET
/// /v1/connections/{id} does. A refresh that another caller finished meanwhile counts (its token is the new one).
/// Also the manual way out of attention_required when the provider accepts the stored refresh token after all;
/// failed and pending connections answer 409 like credential reads.
/// </summary>
internal static class RefreshEndpoint
{
    public static void MapRefreshEndpoint(this IEndpointRouteBuilder app) =>
        app.MapGatewayGroup().MapPost("/v1/refresh/{connectionId}", RefreshAsync).WithTags("Connections");

    private static async Task<IResult> RefreshAsync(string connectionId, HttpContext context, Caller caller, ConnectionStore store,
        ConnectionRefresher refresher, AuditLog audit, TimeProvider time)
    {
        var connection = await store.FindAsync(connectionId, context.RequestAborted);
        if (connection is null || !caller.CanAccess(connection.WorkspaceId))
        {
            return Problems.NotFound("Connection");
        }

        if (connection.Status is not (ConnectionStatus.Active or ConnectionStatus.AttentionRequired))
        {
            return ConnectionProblems.NotActive(connection);
        }

        // The caller's request may end; the refresh, once started, completes either way.
        var result = await refresher.ForceRefreshAsync(connection, context.RequestAborted);
        var current = result.For(connection);
        if (result.Status == RefreshStatus.Gone)
        {
            // Deleted before or during the refresh: the disconnect audited "revoked", which ends the connection's story;
            // a "refreshed" entry (outcome gone) after it would say something happened to a connection that no longer exists.
            return Problems.NotFound("Connection");
        }

        // At the time the refresh took the connection's lock (AuditLog.RecordAtAsync): a disconnect that waited for it
        // records "revoked" after the refresh's "refreshed" whichever request writes first.
        await audit.RecordAtAsync(result.LockedAt, AuditEvents.Refreshed, caller.Actor, connection.WorkspaceId, connection.Id,
            new { provider = connection.ProviderName, outcome = Outcome(result.Status), error = result.Error }, CancellationToken.None);
        return result.Status switch
        {
            RefreshStatus.Refreshed or RefreshStatus.Current => TypedResults.Ok(ConnectionResponse.From(current)),
            RefreshStatus.Gone => Problems.NotFound("Connection"),
            RefreshStatus.NotRefreshable => Problems.Create(ProblemCatalog.RefreshNotSupported,
                "The provider issued no refresh token (or does not support refreshing); its access token is used until it expires, then the user must connect again.",
                new Dictionary<string, object?> { ["connection_id"] = connection.Id, ["status"] = current.Status }),
            RefreshStatus.RetryLater => ConnectionRefresher.Unavailable(connection.Id, result.RetryAtMs ?? time.GetUtcNow().ToUnixTimeMilliseconds() + 1000,
                time.GetUtcNow().ToUnixTimeMilliseconds(), result.Error),
            _ => ConnectionProblems.NotActive(current),
        };
    }

    /// <summary>The audit log's spelling of an outcome: snake_case like every enum value Nexus writes (attention_required, retry_later).</summary>
    internal static string Outcome(RefreshStatus status) => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(status.ToString());
}
