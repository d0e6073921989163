using System.Diagnostics;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A PostgreSQL cluster of a test's own (like scripts/lib/pg.sh starts for the suite), which the test may stop and
/// start again on the same port: for database outages. Needs the binaries in /usr/lib/postgresql/*/bin.
/// </summary>
public sealed class PostgresCluster : IAsyncDisposable
{
    private readonly string bin;
    private readonly string directory;

    private PostgresCluster(string bin, string directory, int port)
    {
        this.bin = bin;
        this.directory = directory;
        Port = port;
    }

    public int Port { get; }

    /// <summary>An admin connection string (trust authentication on loopback).</summary>
    public string AdminConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Timeout=5";

    public static string? FindBinaries() =>
        Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "postgres")))
                .OrderBy(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0).LastOrDefault()
            : null;

    public static async Task<PostgresCluster> StartAsync()
    {
        var bin = FindBinaries() ?? throw new InvalidOperationException("PostgreSQL binaries not found under /usr/lib/postgresql.");
        var directory = Directory.CreateTempSubdirectory("nexus-pg-outage-").FullName;
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(directory, (UnixFileMode)0b111_101_101);
        }
        if (Environment.IsPrivilegedProcess)
        {
            await RunAsync("chown", "postgres", directory);
        }

        var cluster = new PostgresCluster(bin, directory, LoopbackHost.FreePort());
        await cluster.PgAsync("initdb", "-D", Path.Combine(directory, "data"), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8");
        await cluster.StartAgainAsync();
        return cluster;
    }

    /// <summary>Starts the (stopped) cluster on its port and returns once it accepts connections.</summary>
    public Task StartAgainAsync() => PgAsync("pg_ctl", "-D", Path.Combine(directory, "data"), "-l", Path.Combine(directory, "server.log"), "-w", "-t", "60",
        "-o", $"-p {Port} -k {directory} -c listen_addresses=127.0.0.1", "start");

    /// <summary>Stops the cluster the way an operator's restart does: sessions end (57P01), new connections are refused.</summary>
    public Task StopAsync() => PgAsync("pg_ctl", "-D", Path.Combine(directory, "data"), "-m", "fast", "-w", "stop");

    public async ValueTask DisposeAsync()
    {
        try
        {
            await PgAsync("pg_ctl", "-D", Path.Combine(directory, "data"), "-m", "immediate", "-w", "stop");
        }
        catch (InvalidOperationException)
        {
            // Already stopped.
        }

        Directory.Delete(directory, recursive: true);
    }

    private Task PgAsync(string tool, params string[] args) =>
        Environment.IsPrivilegedProcess
            ? RunAsync("runuser", ["-u", "postgres", "--", Path.Combine(bin, tool), .. args])
            : RunAsync(Path.Combine(bin, tool), args);

    private static async Task RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited with {process.ExitCode}: {await output}{await error}");
        }
    }
}
