using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Nexus.Server.Tests.Connections.Refresh;
using Nexus.Server.Tests.Infrastructure;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Nexus.Server.Tests.Deployment;

/// <summary>
/// Issue 18 item 5. No image registry is reachable here, so Docker cannot run; what can be run is what the containers
/// would run: the binary <c>dotnet publish</c> makes (the Dockerfile's ENTRYPOINT), with the environment of the
/// Dockerfile's runtime stage plus each Nexus service's <c>environment</c> in deploy/compose.yaml, with the service's
/// <c>command</c>, against a throwaway PostgreSQL. Only what exists inside a container alone is translated: the
/// compose network's host name of the database, the listening port (every container has its own 8080), the data
/// volume's path, HOME and TMPDIR (so the test can see that nothing is written there: the root filesystem is read-only).
/// </summary>
[Collection(RefreshClusterGroup.Name)]
public sealed partial class ComposeEnvironmentTests
{
    /// <summary>What an operator puts in deploy/.env: the variables compose.yaml requires.</summary>
    private static Dictionary<string, string> OperatorValues() => new(StringComparer.Ordinal)
    {
        ["POSTGRES_PASSWORD"] = "compose-" + Guid.NewGuid().ToString("N"),
        ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey(),
        ["API_KEY"] = "compose-admin-" + Guid.NewGuid().ToString("N"),
        ["SETUP_TOKEN"] = "compose-setup-" + Guid.NewGuid().ToString("N"),
    };

    [Fact]
    public void TheComposeFileRunsOneMigratorFirstAndTwoInstancesWithOneEnvironmentBehindTheLoadBalancer()
    {
        var compose = ComposeFile.Load(OperatorValues());
        var nexus = compose.NexusServices();
        var migrator = Assert.Single(nexus, s => s.Command is ["migrate"]);
        var instances = nexus.Where(s => s.Command.Count == 0).ToList();
        Assert.True(instances.Count >= 2, "compose.yaml should run at least two Nexus instances");
        foreach (var instance in instances)
        {
            Assert.Equal(migrator.Environment, instance.Environment);
            Assert.Equal("service_completed_successfully", compose.DependsOn(instance.Name)[migrator.Name]);
            Assert.Equal("true", compose.Service(instance.Name)["read_only"]);
        }

        // The migrator waits for PostgreSQL; DATABASE_URL names the database compose creates, with its credentials.
        Assert.Equal("service_healthy", compose.DependsOn(migrator.Name)["postgres"]);
        var postgres = compose.Environment("postgres");
        var database = new Uri(migrator.Environment["DATABASE_URL"]);
        Assert.Equal(("postgres", 5432), (database.Host, database.Port));
        Assert.Equal($"{postgres["POSTGRES_USER"]}:{postgres["POSTGRES_PASSWORD"]}", Uri.UnescapeDataString(database.UserInfo));
        Assert.Equal("/" + postgres["POSTGRES_DB"], database.AbsolutePath);

        // The load balancer waits for healthy instances, and it is the proxy the instances trust.
        var proxy = compose.Service("proxy");
        Assert.All(instances, i => Assert.Equal("service_healthy", compose.DependsOn("proxy")[i.Name]));
        var proxyAddress = ((Dictionary<object, object>)((Dictionary<object, object>)proxy["networks"])["nexus"])["ipv4_address"];
        Assert.Equal(proxyAddress, migrator.Environment["Nexus__TrustedProxies"]);
        var caddyfile = File.ReadAllText(Repository.PathOf("deploy", "Caddyfile"));
        Assert.All(instances, i => Assert.Contains($"{i.Name}:{Dockerfile.Load().Environment["ASPNETCORE_HTTP_PORTS"]}", caddyfile, StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheComposeFilesNexusServicesRunThePublishedBinaryOnPostgresAsOneDeployment()
    {
        Assert.SkipUnless(TestDatabase.UsePostgres, "The compose file runs Nexus on PostgreSQL; this test needs the throwaway cluster.");
        var values = OperatorValues();
        var compose = ComposeFile.Load(values);
        var image = Dockerfile.Load();
        var published = await PublishAsync();
        await using var db = await TestDatabase.CreateAsync();
        var scratch = Directory.CreateTempSubdirectory("nexus-compose-").FullName;
        var processes = new List<(Process Process, StringBuilder Output)>();
        try
        {
            var before = Listing(published);
            var services = compose.NexusServices();
            var nexus = new List<(ComposeService Service, Dictionary<string, string> Environment)>();
            foreach (var service in services)
            {
                nexus.Add((service, ContainerEnvironment(image, service, db, Path.Combine(scratch, service.Name))));
            }

            // The migrator first, to completion (depends_on: service_completed_successfully).
            foreach (var (service, environment) in nexus.Where(n => n.Service.Command.Count > 0))
            {
                var (exitCode, output) = await RunToEndAsync(published, image.Entrypoint, service.Command, environment);
                Assert.True(exitCode == 0, $"{service.Name} ({string.Join(' ', service.Command)}) exited {exitCode}:\n{output}");
            }

            // Then the instances, each healthy by the image's own HEALTHCHECK command.
            var instances = nexus.Where(n => n.Service.Command.Count == 0).ToList();
            foreach (var (service, environment) in instances)
            {
                processes.Add(Start(published, image.Entrypoint, service.Command, environment));
            }

            for (var i = 0; i < instances.Count; i++)
            {
                await WaitHealthyAsync(published, image, instances[i].Environment, processes[i]);
            }

            // One deployment: an App Client created on the first instance gets tokens from the second, and a token the
            // second signed is accepted by the first (shared database, ENCRYPTION_KEY, signing keys).
            using var first = Client(instances[0].Environment, values["API_KEY"]);
            using var second = Client(instances[1].Environment, values["API_KEY"]);
            using var created = await first.PostAsJsonAsync("/v1/admin/clients", new
            {
                name = "compose-check",
                scopes = new[] { "invoices:read" },
                grant_types = new[] { "client_credentials" },
            });
            var client = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement;
            Assert.True(created.IsSuccessStatusCode, client.ToString());
            var id = client.GetProperty("client_id").GetString()!;
            var secret = client.GetProperty("client_secret").GetString()!;

            using var tokenRequest = new HttpRequestMessage(HttpMethod.Post, "/oauth2/token")
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["scope"] = "invoices:read" }),
            };
            tokenRequest.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{id}:{secret}")));
            using var token = await second.SendAsync(tokenRequest);
            var tokenBody = JsonDocument.Parse(await token.Content.ReadAsStringAsync()).RootElement;
            Assert.True(token.IsSuccessStatusCode, tokenBody.ToString());

            using var me = new HttpRequestMessage(HttpMethod.Get, "/api/v1/me");
            me.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tokenBody.GetProperty("access_token").GetString());
            using var meResponse = await first.SendAsync(me);
            var meBody = await meResponse.Content.ReadAsStringAsync();
            Assert.True(meResponse.IsSuccessStatusCode, meBody);
            Assert.Equal(id, JsonDocument.Parse(meBody).RootElement.GetProperty("client_id").GetString());
            // The issuer is BASE_URL from the compose file (the load balancer's address), whichever instance signed.
            var issuer = JsonDocument.Parse(await first.GetStringAsync("/.well-known/oauth-authorization-server")).RootElement.GetProperty("issuer").GetString();
            Assert.Equal(instances[0].Environment["BASE_URL"].TrimEnd('/'), issuer);

            // Read-only root filesystem: nothing was written into the application folder (WORKDIR), HOME or TMPDIR;
            // on PostgreSQL not even into the data volume.
            Assert.Equal(before, Listing(published));
            foreach (var (service, environment) in nexus)
            {
                Assert.True(Listing(environment["Nexus__DataDirectory"]).Count == 0, $"{service.Name} wrote into the data volume: {string.Join(", ", Listing(environment["Nexus__DataDirectory"]))}");
                Assert.True(Listing(environment["HOME"]).Count == 0, $"{service.Name} wrote into HOME: {string.Join(", ", Listing(environment["HOME"]))}");
                Assert.True(Listing(environment["TMPDIR"]).Count == 0, $"{service.Name} wrote into TMPDIR: {string.Join(", ", Listing(environment["TMPDIR"]))}");
            }
        }
        finally
        {
            foreach (var (process, _) in processes)
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync();
                }

                process.Dispose();
            }

            Directory.Delete(scratch, recursive: true);
            Directory.Delete(Path.GetDirectoryName(published)!, recursive: true);
        }
    }

    /// <summary>
    /// The environment of the service's container: the runtime stage's ENV, then the service's environment. Translated:
    /// the database's address (the compose network's "postgres"), the port, the data volume, HOME and TMPDIR.
    /// </summary>
    private static Dictionary<string, string> ContainerEnvironment(Dockerfile image, ComposeService service, TestDatabase db, string scratch)
    {
        var environment = new Dictionary<string, string>(image.Environment, StringComparer.Ordinal);
        foreach (var (key, value) in service.Environment)
        {
            environment[key] = value;
        }

        Assert.Equal("postgres", new Uri(environment["DATABASE_URL"]).Host);
        environment["DATABASE_URL"] = db.DatabaseUrl!;
        Assert.Equal("8080", environment["ASPNETCORE_HTTP_PORTS"]);
        environment["ASPNETCORE_HTTP_PORTS"] = LoopbackHost.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal("/data", environment["Nexus__DataDirectory"]);
        foreach (var folder in new[] { "data", "home", "tmp" })
        {
            Directory.CreateDirectory(Path.Combine(scratch, folder));
        }

        environment["Nexus__DataDirectory"] = Path.Combine(scratch, "data");
        environment["HOME"] = Path.Combine(scratch, "home");
        environment["TMPDIR"] = Path.Combine(scratch, "tmp");
        return environment;
    }

    private static HttpClient Client(Dictionary<string, string> environment, string apiKey)
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{environment["ASPNETCORE_HTTP_PORTS"]}"), Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Add("X-API-Key", apiKey);
        return http;
    }

    private static async Task WaitHealthyAsync(string published, Dockerfile image, Dictionary<string, string> environment, (Process Process, StringBuilder Output) instance)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            Assert.False(instance.Process.HasExited, $"Nexus exited with {(instance.Process.HasExited ? instance.Process.ExitCode : 0)}:\n{Text(instance.Output)}");
            var (exitCode, output) = await RunToEndAsync(published, [image.Healthcheck[0]], image.Healthcheck.Skip(1).ToList(), environment);
            if (exitCode == 0)
            {
                return;
            }

            last = output;
            await Task.Delay(200);
        }

        Assert.Fail($"The HEALTHCHECK command never succeeded: {last}\n{Text(instance.Output)}");
    }

    private static string Text(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private static ProcessStartInfo StartInfo(string published, IReadOnlyList<string> entrypoint, IReadOnlyList<string> command, Dictionary<string, string> environment)
    {
        // The image's /app is the publish folder; run its binary there, with nothing of this test run's environment.
        Assert.StartsWith("/app/", entrypoint[0], StringComparison.Ordinal);
        var start = new ProcessStartInfo(Path.Combine(published, entrypoint[0]["/app/".Length..]))
        {
            WorkingDirectory = published,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in entrypoint.Skip(1).Concat(command))
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Clear();
        start.Environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        start.Environment["DOTNET_ROOT"] = DotnetRoot();
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        return start;
    }

    private static (Process, StringBuilder) Start(string published, IReadOnlyList<string> entrypoint, IReadOnlyList<string> command, Dictionary<string, string> environment)
    {
        var output = new StringBuilder();
        var process = Process.Start(StartInfo(published, entrypoint, command, environment))!;
        void Append(string? line)
        {
            lock (output)
            {
                if (line is not null && output.Length < 100_000)
                {
                    output.AppendLine(line);
                }
            }
        }

        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, output);
    }

    private static async Task<(int ExitCode, string Output)> RunToEndAsync(string published, IReadOnlyList<string> entrypoint, IReadOnlyList<string> command, Dictionary<string, string> environment)
    {
        using var process = Process.Start(StartInfo(published, entrypoint, command, environment))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(2)).Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>The .NET installation running this test (the apphost of a framework-dependent publish needs it).</summary>
    private static string DotnetRoot() =>
        Path.GetFullPath(Path.Combine(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));

    /// <summary><c>dotnet publish</c> of the server, from the build this test run uses (as the Dockerfile's build stage does).</summary>
    private static async Task<string> PublishAsync()
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var output = Path.Combine(Directory.CreateTempSubdirectory("nexus-publish-").FullName, "app");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Repository.Root };
        foreach (var argument in new[] { "publish", "src/Nexus.Server/Nexus.Server.csproj", "-c", configuration, "--no-build", "-o", output, "-nologo", "-v", "quiet" })
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(5)).Token);
        Assert.True(process.ExitCode == 0, $"dotnet publish failed:\n{await stdout}{await stderr}");
        return output;
    }

    private static List<string> Listing(string folder) =>
        [.. Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)];

    /// <summary>A service of compose.yaml whose container runs the Nexus image (it is built from the Dockerfile).</summary>
    private sealed record ComposeService(string Name, IReadOnlyList<string> Command, Dictionary<string, string> Environment);

    private sealed partial class ComposeFile(Dictionary<object, object> root)
    {
        public static ComposeFile Load(IReadOnlyDictionary<string, string> dotEnv)
        {
            var text = File.ReadAllText(Repository.PathOf("deploy", "compose.yaml"));
            using var reader = new StringReader(text);
            var root = (Dictionary<object, object>)new DeserializerBuilder().Build().Deserialize(new MergingParser(new Parser(reader)))!;
            return new ComposeFile((Dictionary<object, object>)Interpolate(root, dotEnv));
        }

        public Dictionary<object, object> Service(string name) => (Dictionary<object, object>)((Dictionary<object, object>)root["services"])[name];

        public List<ComposeService> NexusServices() =>
        [
            .. ((Dictionary<object, object>)root["services"])
                .Where(s => ((Dictionary<object, object>)s.Value).ContainsKey("build"))
                .Select(s => new ComposeService((string)s.Key, Command((Dictionary<object, object>)s.Value), Environment((string)s.Key))),
        ];

        public Dictionary<string, string> Environment(string service) =>
            ((Dictionary<object, object>)Service(service)["environment"]).ToDictionary(e => (string)e.Key, e => (string)e.Value, StringComparer.Ordinal);

        public Dictionary<string, string> DependsOn(string service) =>
            ((Dictionary<object, object>)Service(service)["depends_on"]).ToDictionary(
                e => (string)e.Key, e => (string)((Dictionary<object, object>)e.Value)["condition"], StringComparer.Ordinal);

        private static List<string> Command(Dictionary<object, object> service) =>
            service.TryGetValue("command", out var command) ? [.. ((List<object>)command).Cast<string>()] : [];

        /// <summary>Compose's variable substitution: ${NAME}, ${NAME:-default}, ${NAME:?error}, $$.</summary>
        private static object Interpolate(object node, IReadOnlyDictionary<string, string> dotEnv) => node switch
        {
            string text => Variable().Replace(text, m =>
            {
                if (m.Value == "$$")
                {
                    return "$";
                }

                var value = dotEnv.GetValueOrDefault(m.Groups["name"].Value);
                return m.Groups["op"].Value switch
                {
                    ":-" => string.IsNullOrEmpty(value) ? m.Groups["arg"].Value : value,
                    ":?" => string.IsNullOrEmpty(value) ? throw new InvalidOperationException(m.Groups["arg"].Value) : value,
                    _ => value ?? "",
                };
            }),
            Dictionary<object, object> map => map.ToDictionary(e => e.Key, e => Interpolate(e.Value, dotEnv)),
            List<object> list => list.Select(e => Interpolate(e, dotEnv)).ToList(),
            _ => node,
        };

        [GeneratedRegex(@"\$\$|\$\{(?<name>\w+)(?:(?<op>:-|:\?)(?<arg>[^}]*))?\}")]
        private static partial Regex Variable();
    }

    /// <summary>The runtime stage of the Dockerfile: its ENV, ENTRYPOINT and HEALTHCHECK command.</summary>
    private sealed record Dockerfile(Dictionary<string, string> Environment, IReadOnlyList<string> Entrypoint, IReadOnlyList<string> Healthcheck)
    {
        public static Dockerfile Load()
        {
            var text = Regex.Replace(File.ReadAllText(Repository.PathOf("Dockerfile")), @"\\\r?\n", " ");
            var lines = text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
            var runtime = lines.Skip(lines.FindLastIndex(l => l.StartsWith("FROM ", StringComparison.Ordinal))).ToList();
            var environment = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var line in runtime.Where(l => l.StartsWith("ENV ", StringComparison.Ordinal)))
            {
                foreach (Match pair in Regex.Matches(line[4..], @"(\w+)=(\S*)"))
                {
                    environment[pair.Groups[1].Value] = pair.Groups[2].Value;
                }
            }

            var entrypoint = JsonSerializer.Deserialize<string[]>(runtime.Last(l => l.StartsWith("ENTRYPOINT ", StringComparison.Ordinal))["ENTRYPOINT ".Length..])!;
            var health = runtime.Last(l => l.StartsWith("HEALTHCHECK ", StringComparison.Ordinal));
            var healthcheck = JsonSerializer.Deserialize<string[]>(health[(health.IndexOf(" CMD ", StringComparison.Ordinal) + 5)..])!;
            return new Dockerfile(environment, entrypoint, healthcheck);
        }
    }
}
