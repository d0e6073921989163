using System.Diagnostics;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>Runs Nexus.Server as a separate process, in Production, the way an operator would.</summary>
public static class NexusProcess
{
    public static async Task<(int ExitCode, string Output)> RunAsync(TestDatabase db, IDictionary<string, string?> env, params string[] args)
    {
        var (exitCode, stdout, stderr) = await RunSeparatelyAsync(db, env, args);
        return (exitCode, stdout + stderr);
    }

    /// <summary>Like <see cref="RunAsync"/>, with standard output and standard error apart.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunSeparatelyAsync(TestDatabase db, IDictionary<string, string?> env, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Nexus.Server.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["Nexus__DataDirectory"] = db.DataDirectory;
        start.Environment["DATABASE_URL"] = db.DatabaseUrl ?? "";
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (key, value) in env)
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
