using System.Text.Json;

namespace Nexus.Server.Hosting;

/// <summary>
/// <c>Nexus.Server healthcheck [URL]</c>: asks a running Nexus for <c>/healthz</c> and exits 0 when it answers
/// <c>{"status":"ok"}</c>, 1 otherwise. It is the container's HEALTHCHECK (the runtime image has no curl or wget),
/// so it builds no host, reads no configuration file and never touches the database: it only looks at where this
/// process's environment says Nexus listens (ASPNETCORE_URLS, ASPNETCORE_HTTP_PORTS) and makes one loopback request.
/// </summary>
internal static class HealthCheckCommand
{
    public const string Name = "healthcheck";

    private const string Usage = """
        Usage: Nexus.Server healthcheck [URL]
          Asks the Nexus listening on this machine for /healthz and exits 0 when it answers {"status":"ok"},
          1 otherwise (within 5 s). Without URL: the first address of ASPNETCORE_URLS, else the first port of
          ASPNETCORE_HTTP_PORTS, else http://127.0.0.1:8090 (a wildcard host means 127.0.0.1). Meant for a
          container's HEALTHCHECK; it reads no configuration and does not touch the database.
        """;

    /// <summary>Null unless the first argument is <c>healthcheck</c>; then the exit code.</summary>
    public static async Task<int?> TryRunAsync(string[] args)
    {
        if (args is not [Name, .. var rest])
        {
            return null;
        }

        if (rest.Any(a => a is "--help" or "-h" or "-?" or "/?"))
        {
            Console.WriteLine(Usage);
            return 0;
        }

        if (rest.Length > 1 || (rest is [var given] && !Uri.TryCreate(given, UriKind.Absolute, out _)))
        {
            await Console.Error.WriteLineAsync($"healthcheck takes at most one argument, an absolute URL.\n{Usage}");
            return 2;
        }

        var target = new Uri(new Uri(rest is [var url] ? url : DefaultBase(Environment.GetEnvironmentVariable)), "/healthz");
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            using var response = await http.GetAsync(target);
            var body = await response.Content.ReadAsStringAsync();
            if (response.IsSuccessStatusCode && JsonDocument.Parse(body).RootElement.GetProperty("status").GetString() == "ok")
            {
                Console.WriteLine($"healthy: {target}");
                return 0;
            }

            await Console.Error.WriteLineAsync($"unhealthy: {target} answered {(int)response.StatusCode}");
            return 1;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            await Console.Error.WriteLineAsync($"unhealthy: {target}: {e.Message}");
            return 1;
        }
    }

    /// <summary>Where the server in this environment listens, as a URL a local client can reach.</summary>
    internal static string DefaultBase(Func<string, string?> environment)
    {
        var urls = environment("ASPNETCORE_URLS");
        if (!string.IsNullOrWhiteSpace(urls))
        {
            var first = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0];
            // Kestrel's wildcards (http://+:8080, http://*:8080, http://0.0.0.0:8080, http://[::]:8080) are not addresses to call.
            return System.Text.RegularExpressions.Regex.Replace(first, @"^(https?://)(\+|\*|0\.0\.0\.0|\[::\])(?=[:/]|$)", "${1}127.0.0.1");
        }

        var ports = environment("ASPNETCORE_HTTP_PORTS");
        if (!string.IsNullOrWhiteSpace(ports))
        {
            return $"http://127.0.0.1:{ports.Split([';', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0]}";
        }

        return "http://127.0.0.1:8090";
    }
}
