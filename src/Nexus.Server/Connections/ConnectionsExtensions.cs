using System.Data.Common;
using Microsoft.Extensions.Options;
using Nexus.Server.Audit;
using Nexus.Server.Credentials;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.Connections;

internal static class ConnectionsExtensions
{
    public static WebApplicationBuilder AddConnections(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton<ConnectionStore>();
        services.AddSingleton<ConnectionService>();
        services.AddSingleton<MachineGrants>();
        services.AddSingleton<StateSigner>();
        services.AddSingleton<PersonalConsent>();
        services.AddSingleton<ReturnUrlPolicy>();
        services.AddSingleton<ProviderClient>();
        services.AddSingleton<ICredentialDeletions>(sp => sp.GetRequiredService<ConnectionStore>());
        services.AddSingleton<ConnectionCredentials>();
        services.AddSingleton(ConnectionStore.AccessTokenColumn);
        services.AddSingleton(ConnectionStore.RefreshTokenColumn);
        services.AddSingleton(ConnectionStore.PkceVerifierColumn);
        services.AddSingleton<IStartupStep, ConnectionsStartup>();
        services.AddSingleton<IRetentionRule, ConnectionRetention>();
        services.AddSingleton<IValidateOptions<NexusOptions>, ConnectionsOptionsValidator>();
        services.AddConnectionsCommands();
        return builder;
    }

    public static WebApplication MapConnections(this WebApplication app)
    {
        app.MapGateway();
        app.MapCallback();
        return app;
    }

    /// <summary>Loads the state key (created by the first instance) and fails pending connections nobody completed.</summary>
    private sealed class ConnectionsStartup(ServerSecrets secrets, StateSigner signer, ConnectionStore store, AuditLog audit, ILogger<ConnectionsStartup> logger) : IStartupStep
    {
        public async Task RunAsync(DbConnection connection, StartupPurpose purpose, CancellationToken ct)
        {
            signer.Initialize(await secrets.GetOrCreateAsync(connection, "state_signing_key", ct));
            var expired = await store.ExpireStaleAsync(connection, null, ct);
            foreach (var c in expired)
            {
                await audit.RecordAsync(connection, AuditEvents.Failed, "system", c.WorkspaceId, c.Id, new { error = ConnectionStore.ExpiredError }, ct);
            }

            if (expired.Count > 0)
            {
                logger.LogInformation("Marked {Count} pending connection(s) that were never completed as failed (expired).", expired.Count);
            }
        }
    }
}
