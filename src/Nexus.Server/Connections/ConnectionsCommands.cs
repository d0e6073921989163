using Nexus.Server.Hosting;
using Nexus.Server.Hosting.Commands;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections;

/// <summary>
/// The connections' commands: <c>connections list|revoke</c>, calling <see cref="ConnectionService"/> as
/// GET /v1/connections and DELETE /v1/connections/{id} do. The command line acts for every workspace, like API_KEY.
/// </summary>
internal static class ConnectionsCommands
{
    /// <summary>The actor the audit log records for what the command line does.</summary>
    public const string Actor = "cli";

    public static IServiceCollection AddConnectionsCommands(this IServiceCollection services) => services
        .AddNexusCommand("connections list", "list connections (all workspaces, or filtered)", """
            Usage: Nexus.Server connections list [--workspace ID] [--status STATUS] [--provider NAME] [--limit N] [--json]
              Lists connections, newest last, as GET /v1/connections does for the bootstrap API_KEY (every workspace).
              --status   pending, active, attention_required or failed
              --limit    up to N connections (1 to 1000; default 100)
              --json     {"connections":[{"connection_id","status","provider","workspace_id","scopes",…}]} (never a token)
            """, ListAsync, options: ["workspace", "status", "provider", "limit"])
        .AddNexusCommand("connections revoke", "revoke a connection's tokens at the provider and delete it", """
            Usage: Nexus.Server connections revoke CONNECTION_ID [--json]
              Revokes the connection's tokens at the provider where it can (best effort) and deletes the connection, as
              DELETE /v1/connections/{id} does; the audit log keeps the record (actor "cli") and webhooks are sent.
              --json   {"connection_id","revoked":true,"provider","workspace_id"}
            """, RevokeAsync, arguments: 1);

    private static async Task<int> ListAsync(CommandContext context, CancellationToken ct)
    {
        var args = context.Args;
        var limit = args.Int("limit") ?? 100;
        if (limit is < 1 or > 1000)
        {
            throw new CommandUsageException("--limit is 1 to 1000.");
        }

        var status = args.Option("status");
        if (status is not null and not (ConnectionStatus.Pending or ConnectionStatus.Active or ConnectionStatus.AttentionRequired or ConnectionStatus.Failed))
        {
            throw new CommandUsageException("--status is pending, active, attention_required or failed.");
        }

        var provider = args.Option("provider");
        if (provider is not null && !ProviderNames.IsValid(provider))
        {
            throw new CommandUsageException("--provider is the name of a registered provider (lowercase letters, digits, '_' or '-').");
        }

        var workspace = args.Option("workspace");
        var connections = (await context.Get<ConnectionService>().ListAsync(workspace is null ? null : [workspace], status, provider, null, limit, ct))
            .Select(ConnectionResponse.From).ToList();
        return await context.ListAsync(new { connections }, connections, "No connections.",
            ("CONNECTION_ID", c => c.ConnectionId), ("PROVIDER", c => c.Provider), ("WORKSPACE", c => c.WorkspaceId), ("STATUS", c => c.Status),
            ("CREATED", c => DateTimeOffset.FromUnixTimeSeconds(c.CreatedAt).ToString("u")));
    }

    private static async Task<int> RevokeAsync(CommandContext context, CancellationToken ct)
    {
        var id = context.Args.Argument(0, "CONNECTION_ID (conn_…)");
        var connection = await context.Get<ConnectionStore>().FindAsync(id, ct)
            ?? throw new CommandFailedException($"There is no connection '{id}'. See `connections list`.", ProblemCatalog.NotFound);
        await context.Get<ConnectionService>().RevokeAsync(connection, Actor, ct);
        return await context.ResultAsync(new { connection_id = connection.Id, revoked = true, provider = connection.ProviderName, workspace_id = connection.WorkspaceId },
            $"Revoked connection {connection.Id} ({connection.ProviderName}, workspace {connection.WorkspaceId}).");
    }
}
