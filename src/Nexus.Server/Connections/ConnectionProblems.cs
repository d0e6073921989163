using Nexus.Server.Hosting;

namespace Nexus.Server.Connections;

/// <summary>Problems about a connection's state, the same on every endpoint that reads one (GET /v1/token, refresh, the Bridge).</summary>
internal static class ConnectionProblems
{
    /// <summary>
    /// 409 connection_not_active: the connection exists but its state does not allow a credential. "status" is the
    /// connection's status (seed contract: "attention_required"), so the problem carries no numeric status member;
    /// "error" is why it stopped (invalid_grant, access_denied) when known.
    /// </summary>
    public static IResult NotActive(Connection connection)
    {
        var extensions = new Dictionary<string, object?> { ["status"] = connection.Status, ["connection_id"] = connection.Id };
        if (connection.Error is not null)
        {
            extensions["error"] = connection.Error;
        }

        return Problems.Create(ProblemCatalog.ConnectionNotActive,
            connection.Status == ConnectionStatus.Pending ? "The user has not completed consent yet." : "Ask the user to connect again: POST /v1/request-connection.",
            extensions, title: $"The connection is {connection.Status}, not active.");
    }
}
