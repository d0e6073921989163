using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A real Nexus server on Kestrel, listening on a loopback port, over a <see cref="TestDatabase"/>. Tests talk to
/// it with a plain HttpClient, exactly as any client would.
/// </summary>
public sealed class NexusTestServer : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> settings;

    private readonly string environment;

    private readonly Action<IServiceCollection>? services;

    private NexusTestServer(TestDatabase database, Dictionary<string, string?> settings, OffsetTimeProvider time, int port, string environment, Action<IServiceCollection>? services)
    {
        this.environment = environment;
        this.services = services;
        Database = database;
        this.settings = settings;
        Time = time;
        BaseUrl = $"http://127.0.0.1:{port}";
        // Not UseKestrel(port): that overload rewrites the server's addresses after the host is built, while a minimal
        // app is already starting Kestrel on its own thread, and fails now and then with "IServerAddressesFeature.Addresses
        // cannot be modified after the server has started" (dotnet/aspnetcore#67714). The URL goes in as the host's
        // "urls" setting instead (ConfigureWebHost), which Kestrel reads when it binds.
        UseKestrel();
    }

    public TestDatabase Database { get; }

    public OffsetTimeProvider Time { get; }

    public string BaseUrl { get; }

    /// <summary>BASE_URL: the token issuer. Usually <see cref="BaseUrl"/>, unless a test set it.</summary>
    public string Issuer => settings["BASE_URL"]!;

    public string ApiKey => settings["API_KEY"]!;

    public string EncryptionKey => settings["ENCRYPTION_KEY"]!;

    /// <summary>The one-time token /setup accepts while no administrator exists (SETUP_TOKEN), or null if a test removed it.</summary>
    public string? SetupToken => settings.GetValueOrDefault("SETUP_TOKEN");

    public HttpClient Http { get; private set; } = null!;

    public static string NewEncryptionKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>Starts a server. <paramref name="configure"/> may change any setting (plain names or Nexus:*); <paramref name="services"/> may add test services (a log capture).</summary>
    public static async Task<NexusTestServer> StartAsync(TestDatabase database, Action<Dictionary<string, string?>>? configure = null, OffsetTimeProvider? time = null, string environment = "Test",
        Action<IServiceCollection>? services = null)
    {
        // The port is free when picked (below the ephemeral range, LoopbackHost.FreePort), but another process can still
        // take it before Kestrel binds: then, and only then, start again on another port.
        for (var attempt = 1; ; attempt++)
        {
            var port = LoopbackHost.FreePort();
            var settings = new Dictionary<string, string?>
            {
                ["BASE_URL"] = $"http://127.0.0.1:{port}",
                ["API_KEY"] = "test-admin-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16)),
                ["ENCRYPTION_KEY"] = NewEncryptionKey(),
                // Given, so Nexus does not print a generated one at every start; tests become administrators with
                // MakeAdminAsync (API_KEY) or by entering SetupToken at /setup. A test may remove it to see the printed one.
                ["SETUP_TOKEN"] = "test-setup-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16)),
                ["DATABASE_URL"] = database.DatabaseUrl,
                ["Nexus:DataDirectory"] = database.DataDirectory,
                ["Logging:LogLevel:Default"] = "Warning",
                // Timers run in real time while tests move the clock by days: a retention pass a minute after start would
                // remove what a test is counting. Data/RetentionTests runs the passes itself.
                ["Nexus:Retention:IntervalMinutes"] = "0",
            };
            configure?.Invoke(settings);
            var server = new NexusTestServer(database, settings, time ?? new OffsetTimeProvider(), port, environment, services);
            try
            {
                server.StartServer();
            }
            catch (Exception) when (attempt < 3 && !LoopbackHost.IsFree(port))
            {
                try
                {
                    server.Dispose();
                }
                catch (ObjectDisposedException)
                {
                }

                continue;
            }

            server.Http = new HttpClient { BaseAddress = new Uri(server.BaseUrl) };
            await server.EnsureListeningAsync();
            return server;
        }
    }

    /// <summary>
    /// A server that refused to start (its settings, its database) is said so here, with the address, rather than as
    /// a connection refused in whatever the test does first.
    /// </summary>
    private async Task EnsureListeningAsync()
    {
        try
        {
            using var answer = await Http.GetAsync("/healthz");
        }
        catch (HttpRequestException e)
        {
            throw new InvalidOperationException($"Nexus did not start listening at {BaseUrl}; its log above says why (a setting or the database it refused).", e);
        }
    }

    /// <summary>
    /// Settings Nexus reads while its host is being built (what telemetry registers), which app configuration given in
    /// <see cref="ConfigureWebHost"/> reaches only afterwards, go in as host configuration (dotnet/aspnetcore#37680).
    /// </summary>
    protected override IHost CreateHost(IHostBuilder builder)
    {
        var early = settings.Where(s => s.Key.StartsWith("Nexus:Telemetry:", StringComparison.OrdinalIgnoreCase) || s.Key.StartsWith("OTEL_", StringComparison.Ordinal)).ToDictionary();
        if (early.Count > 0)
        {
            builder.ConfigureHostConfiguration(c => c.AddInMemoryCollection(early));
        }

        return base.CreateHost(builder);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment(environment);
        builder.UseUrls(BaseUrl);
        builder.ConfigureAppConfiguration(c => c.AddInMemoryCollection(settings));
        builder.ConfigureTestServices(s =>
        {
            s.AddSingleton<TimeProvider>(Time);
            services?.Invoke(s);
        });
    }

    public HttpRequestMessage Admin(HttpMethod method, string path, object? json = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-API-Key", ApiKey);
        if (json is not null)
        {
            request.Content = JsonContent.Create(json);
        }

        return request;
    }

    public async Task<JsonElement> AdminJsonAsync(HttpMethod method, string path, object? json = null, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await Http.SendAsync(Admin(method, path, json));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"Expected {expected} from {method} {path}, got {(int)response.StatusCode}: {body}");
        return body.Length == 0 ? default : JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>The id of the account with <paramref name="email"/>, from the admin API.</summary>
    public async Task<string> UserIdAsync(string email)
    {
        var users = await AdminJsonAsync(HttpMethod.Get, "/v1/admin/users");
        return users.GetProperty("users").EnumerateArray()
            .Single(u => string.Equals(u.GetProperty("email").GetString(), email, StringComparison.OrdinalIgnoreCase)).GetProperty("id").GetString()!;
    }

    /// <summary>
    /// Makes the existing account <paramref name="email"/> a system administrator the way an operator does, with the
    /// bootstrap API_KEY (POST /v1/admin/users/{id}/admin). Open sessions of the account see the role at once.
    /// </summary>
    public async Task MakeAdminAsync(string email)
    {
        var user = await AdminJsonAsync(HttpMethod.Post, $"/v1/admin/users/{await UserIdAsync(email)}/admin");
        Assert.True(user.GetProperty("is_system_admin").GetBoolean());
    }

    /// <summary>Creates an App Client through the admin API and returns (client_id, client_secret).</summary>
    public async Task<(string Id, string Secret)> CreateAppClientAsync(string[]? scopes = null, int? lifetime = null, string name = "test client")
    {
        var created = await AdminJsonAsync(HttpMethod.Post, "/v1/admin/clients",
            new { name, scopes = scopes ?? ["read", "write"], access_token_lifetime_seconds = lifetime }, HttpStatusCode.Created);
        return (created.GetProperty("client_id").GetString()!, created.GetProperty("client_secret").GetString()!);
    }

    /// <summary>POSTs a form to the token endpoint with HTTP Basic credentials.</summary>
    public Task<HttpResponseMessage> RequestTokenAsync(string clientId, string secret, string? scope = null, string path = "/oauth2/token")
    {
        var form = new List<KeyValuePair<string, string>> { new("grant_type", "client_credentials") };
        if (scope is not null)
        {
            form.Add(new("scope", scope));
        }

        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new FormUrlEncodedContent(form) };
        request.Headers.Authorization = Basic(clientId, secret);
        return Http.SendAsync(request);
    }

    public async Task<string> IssueTokenAsync(string clientId, string secret, string? scope = null)
    {
        using var response = await RequestTokenAsync(clientId, secret, scope);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }

    public static AuthenticationHeaderValue Basic(string id, string secret) =>
        new("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{Uri.EscapeDataString(id)}:{Uri.EscapeDataString(secret)}")));

    public override async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        await base.DisposeAsync();
    }
}

/// <summary>One database and one server shared by the tests of a class.</summary>
public class ServerFixture : IAsyncLifetime
{
    public NexusTestServer Server { get; private set; } = null!;

    public TestDatabase Database { get; private set; } = null!;

    protected virtual void Configure(Dictionary<string, string?> settings)
    {
    }

    public async ValueTask InitializeAsync()
    {
        Database = await TestDatabase.CreateAsync();
        Server = await NexusTestServer.StartAsync(Database, Configure);
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await Database.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}
