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
internal sealed class NexusBootstrapper(Migrator migrator, IEnumerable<IStartupStep> steps, NexusDatabase db, IHostEnvironment environment,
    IServiceProvider services, NexusOptions options, ILogger<NexusBootstrapper> logger)
    : IHostedLifecycleService
{
    private bool initialized;

    public async Task InitializeAsync(CancellationToken ct)
    {
        if (initialized)
        {
            // NexusCommandLine runs it before starting the host, so that a database problem ends startup before any
            // background service or the web server starts; the host's StartingAsync then has nothing left to do.
            return;
        }

        // The banner: which environment, which encryption key and which database, so nobody runs Production on the
        // development key by accident (or Development when they meant Production).
        var keys = services.GetRequiredService<Vault.KeyRing>();
        logger.LogInformation("Nexus is starting in {Environment}; encryption key: {KeySource}; database: {Database}",
            environment.EnvironmentName, keys.Source, db.Description);
        await CheckDatabaseAsync(ct);
        await migrator.MigrateAsync(async connection =>
        {
            foreach (var step in steps)
            {
                await step.RunAsync(connection, ct);
            }
        }, ct);
        initialized = true;
    }

    /// <summary>
    /// The first contact with the database, bounded by Nexus:StartupDatabaseTimeoutSeconds: an unreachable
    /// database or one that never answers ends startup with a <see cref="StartupException"/> that names it.
    /// </summary>
    private async Task CheckDatabaseAsync(CancellationToken ct)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var timeout = TimeSpan.FromSeconds(options.StartupDatabaseTimeoutSeconds);
        bounded.CancelAfter(timeout);
        try
        {
            // WaitAsync as well as the token: Npgsql does not always notice cancellation while a server that
            // accepted the connection withholds its handshake, and would wait out its own 15 s connect timeout.
            await db.PingAsync(bounded.Token).WaitAsync(timeout, ct);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && (e is OperationCanceledException || e.InnerException is OperationCanceledException or TimeoutException || e is TimeoutException))
        {
            throw new StartupException(
                $"the database ({db.Description}) accepted no query within {options.StartupDatabaseTimeoutSeconds} s. Check DATABASE_URL points at PostgreSQL and that the server is healthy (Nexus:StartupDatabaseTimeoutSeconds sets the wait).");
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is DbException or System.Net.Sockets.SocketException or IOException)
        {
            var reason = (e.InnerException as System.Net.Sockets.SocketException)?.Message ?? e.Message;
            throw new StartupException($"cannot reach the database ({db.Description}): {reason.TrimEnd('.')}. Check DATABASE_URL and that the database server is running.");
        }
    }

    // StartingAsync runs before any hosted service's StartAsync, including the web server's.
    public Task StartingAsync(CancellationToken cancellationToken) => InitializeAsync(cancellationToken);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Startup cannot go on for a reason the operator can fix; the message says what (one line, no stack trace).</summary>
internal sealed class StartupException(string message) : Exception(message);
