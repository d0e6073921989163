using System.Data.Common;
using Nexus.Server.Data;

namespace Nexus.Server.Hosting;

/// <summary>
/// Work a component must finish before Nexus serves requests, such as creating keys on first start. Steps
/// run in registration order right after the migrations, on the migration connection and under the same
/// cross-instance lock, so two instances starting together never both create "the first" key.
/// </summary>
internal interface IStartupStep
{
    Task RunAsync(DbConnection connection, CancellationToken ct);
}

/// <summary>Runs migrations and startup steps before the server (or a maintenance command) starts.</summary>
internal sealed class NexusBootstrapper(Migrator migrator, IEnumerable<IStartupStep> steps, NexusDatabase db, ILogger<NexusBootstrapper> logger)
    : IHostedLifecycleService
{
    public async Task InitializeAsync(CancellationToken ct)
    {
        logger.LogInformation("Nexus is using {Database}", db.Description);
        await migrator.MigrateAsync(async connection =>
        {
            foreach (var step in steps)
            {
                await step.RunAsync(connection, ct);
            }
        }, ct);
    }

    // StartingAsync runs before any hosted service's StartAsync, including the web server's.
    public Task StartingAsync(CancellationToken cancellationToken) => InitializeAsync(cancellationToken);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
