using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A Nexus server running as its own process (Production, like an operator runs it), for what an in-process test
/// server cannot show: several instances on one database, and an instance that is killed with SIGKILL, its
/// database sessions and sockets dropped by the kernel, without a chance to clean up.
/// </summary>
public sealed class NexusServerProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly StringBuilder output = new();

    private NexusServerProcess(Process process, string baseUrl)
    {
        this.process = process;
        BaseUrl = baseUrl;
        Http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(60) };
    }

    public string BaseUrl { get; }

    public HttpClient Http { get; }

    /// <summary>What the process wrote so far (warnings and errors only), for assertion messages.</summary>
    public string Output
    {
        get
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    /// <summary>
    /// Starts an instance on <paramref name="db"/> and waits until it answers /healthz. Instances given the same
    /// <paramref name="shared"/> settings (ENCRYPTION_KEY, API_KEY, …) behave as one deployment.
    /// </summary>
    public static async Task<NexusServerProcess> StartAsync(TestDatabase db, IDictionary<string, string?> shared, int? port = null, string? workingDirectory = null)
    {
        port ??= LoopbackHost.FreePort();
        var baseUrl = $"http://127.0.0.1:{port}";
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null)
        {
            start.WorkingDirectory = workingDirectory;
        }

        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Nexus.Server.dll"));
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add(baseUrl);
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["BASE_URL"] = baseUrl;
        start.Environment["Nexus__DataDirectory"] = db.DataDirectory;
        start.Environment["DATABASE_URL"] = db.DatabaseUrl ?? "";
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (key, value) in shared)
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start)!;
        var server = new NexusServerProcess(process, baseUrl);
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"Nexus exited with {process.ExitCode}:\n{server.Output}");
            }

            try
            {
                using var health = await server.Http.GetAsync("/healthz");
                if (health.IsSuccessStatusCode)
                {
                    return server;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(100);
        }

        await server.DisposeAsync();
        throw new TimeoutException($"Nexus did not start within 60 s:\n{server.Output}");
    }

    /// <summary>Settings that make separate processes one deployment: the same keys, loopback fakes allowed.</summary>
    public static Dictionary<string, string?> SharedSettings() => new()
    {
        ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey(),
        ["API_KEY"] = "test-admin-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16)),
        ["Nexus__AllowInsecureUpstreams"] = "true",
        ["ALLOWED_RETURN_URLS"] = BrokerFixture.ReturnUrl,
    };

    /// <summary>SIGKILL: the process ends at once; the kernel closes its sockets, PostgreSQL ends its sessions.</summary>
    public async Task KillAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: false);
            await process.WaitForExitAsync();
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            if (output.Length < 200_000)
            {
                output.AppendLine(line);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await KillAsync();
        process.Dispose();
    }
}
