using System.Data.Common;

namespace Nexus.Server.Hosting;

/// <summary>
/// Work a component must finish before Nexus serves requests, such as creating keys on first start. Steps
/// run in registration order right after the migrations, on the migration connection and under the same
/// cross-instance lock, so two instances starting together never both create "the first" key.
/// </summary>
internal interface IStartupStep
{
    Task RunAsync(DbConnection connection, StartupPurpose purpose, CancellationToken ct);
}

/// <summary>What Nexus is prepared for: serving requests, or one maintenance command of the command line.</summary>
internal enum StartupPurpose
{
    /// <summary>The server (no command, or <c>serve</c>).</summary>
    Server,

    /// <summary>
    /// A command (<c>migrate</c>, <c>users list</c>, …): the same migrations and keys as the server, but nothing that
    /// belongs to a serving instance, such as arming and printing the setup token (that would replace the token the
    /// running server printed).
    /// </summary>
    Command,
}

/// <summary>
/// Logs the startup banner and runs the components' <see cref="IStartupPreparation"/>s (Data: migrations and startup
/// steps) before the server (or a maintenance command) starts.
/// </summary>
internal sealed class NexusBootstrapper(IEnumerable<IStartupPreparation> preparations, IHostEnvironment environment, IServiceProvider services, StartupTimeline timeline, ILogger<NexusBootstrapper> logger)
    : IHostedLifecycleService
{
    private bool initialized;

    public async Task InitializeAsync(StartupPurpose purpose, CancellationToken ct)
    {
        if (initialized)
        {
            // NexusCommandLine runs it before starting the host, so that a database problem ends startup before any
            // background service or the web server starts; the host's StartingAsync then has nothing left to do.
            return;
        }

        timeline.Mark("endpoints mapped");
        // The banner: which environment, which encryption key and which database, so nobody runs Production on the
        // development key by accident (or Development when they meant Production). The components contribute the
        // parts after the environment (IStartupBannerItem), resolved only now.
        var parts = services.GetServices<IStartupBannerItem>().OrderBy(i => i.Order).Select(i => $"{i.Name}: {i.Value}");
        logger.LogInformation("Nexus is starting in {Environment}; {Banner}", environment.EnvironmentName, string.Join("; ", parts));
        foreach (var preparation in preparations)
        {
            await preparation.PrepareAsync(purpose, ct);
        }

        timeline.Mark("database prepared");

        initialized = true;
    }

    // StartingAsync runs before any hosted service's StartAsync, including the web server's.
    public Task StartingAsync(CancellationToken cancellationToken) => InitializeAsync(StartupPurpose.Server, cancellationToken);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Startup cannot go on for a reason the operator can fix; the message says what (one line, no stack trace).</summary>
internal sealed class StartupException(string message) : Exception(message);
