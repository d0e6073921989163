using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.Infrastructure;
using OpenTelemetry.Trace;

namespace Nexus.Server.Tests.Observability;

/// <summary>
/// Metrics scraped from /metrics after a scripted scenario carry the expected counts, and one token read that
/// refreshes is one trace: the incoming request, the provider call and the database work, with no secret in any span.
/// </summary>
[Collection(Name)]
public sealed partial class ObservabilityTests
{
    /// <summary>
    /// Alone: OpenTelemetry's meter listener hears every meter named "Nexus" in the process, so the counts of a
    /// server running in a parallel class would add to these (one server per process in production).
    /// </summary>
    public const string Name = "Observability (not in parallel)";

    [Fact]
    public async Task TheScrapeAfterAScriptedScenarioShowsEveryInstrumentWithItsCounts()
    {
        await using var scene = await RefreshScene.StartAsync(provider: new { refresh_margin_seconds = 60 });
        await using var echo = await EchoUpstream.StartAsync();
        var server = scene.Server;

        // Tokens: two issued by client credentials, one refused (invalid_client).
        var (clientId, secret) = await server.CreateAppClientAsync();
        await server.IssueTokenAsync(clientId, secret);
        await server.IssueTokenAsync(clientId, secret);
        using (var refused = await server.RequestTokenAsync(clientId, secret + "x"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        // A connection (its connection.active webhook is delivered), two reads, one of them refreshing, one unknown id.
        var connectionId = await scene.Kit.ConnectAsync(scene.Provider);
        await scene.Hooks.WaitForAsync(d => d.Type == "connection.active");
        await scene.Kit.TokenAsync(connectionId);
        server.Time.Advance(TimeSpan.FromSeconds(3600 - 30));
        await scene.Kit.TokenAsync(connectionId);
        var (missing, _, _) = await scene.Kit.ReadAsync("conn_doesnotexist");
        Assert.Equal(HttpStatusCode.NotFound, missing);

        // The Bridge with an API key credential, twice.
        var apiKey = (await scene.Kit.ExpectAsync(HttpMethod.Post, "/v1/admin/api-keys", new { name = "metrics", workspaces = new[] { "ws_metrics" } }, HttpStatusCode.Created))
            .GetProperty("api_key").GetString()!;
        await scene.Kit.ExpectAsync(HttpMethod.Post, "/v1/providers", new { name = "echo_metrics", auth_mode = "api_key", api_base_url = echo.BaseUrl, api_key = new { @in = "header", name = "X-Key" } },
            HttpStatusCode.Created);
        var credential = await scene.Kit.ExpectAsync(HttpMethod.Post, "/v1/request-connection",
            new { workspace_id = "ws_metrics", provider_name = "echo_metrics", return_url = BrokerFixture.ReturnUrl }, HttpStatusCode.Created);
        var credentialId = credential.GetProperty("connection_id").GetString()!;
        await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/connections/{credentialId}/credentials", new { api_key = "sk-metrics-1" }, HttpStatusCode.OK);
        for (var i = 0; i < 2; i++)
        {
            using var bridged = new HttpRequestMessage(HttpMethod.Get, $"/v1/bridge/{credentialId}/items");
            bridged.Headers.Add("X-API-Key", apiKey);
            using var response = await server.Http.SendAsync(bridged);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // The scrape needs the admin API key.
        using (var anonymous = await server.Http.GetAsync("/metrics"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            Assert.Equal("application/problem+json", anonymous.Content.Headers.ContentType?.MediaType);
        }

        // The route answers /metrics/ too; so does the gate (HostileInputTests found it open).
        using (var slash = await server.Http.GetAsync("/metrics/"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, slash.StatusCode);
        }

        using var scrape = await server.Http.SendAsync(server.Admin(HttpMethod.Get, "/metrics"));
        Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
        var text = await scrape.Content.ReadAsStringAsync();
        var samples = Parse(text);

        double Value(string name, params (string Label, string Value)[] labels) =>
            samples.Where(s => s.Name == name && labels.All(l => s.Labels.GetValueOrDefault(l.Label) == l.Value)).Sum(s => s.Value);

        Assert.Equal(2, Value("nexus_tokens_issued_total", ("grant_type", "client_credentials"), ("outcome", "issued")));
        Assert.Equal(1, Value("nexus_tokens_issued_total", ("grant_type", "client_credentials"), ("outcome", "invalid_client")));
        Assert.Equal(2, Value("nexus_credentials_reads_total", ("outcome", "ok")));
        Assert.Equal(1, Value("nexus_credentials_reads_total", ("outcome", "not_found")));
        Assert.Equal(1, Value("nexus_refreshes_total", ("provider", scene.Provider), ("outcome", "succeeded")));
        Assert.Equal(1, Value("nexus_refresh_duration_seconds_count", ("provider", scene.Provider), ("outcome", "succeeded")));
        Assert.Equal(2, Value("nexus_bridge_requests_total", ("strategy", "api_key"), ("upstream_status", "200")));
        Assert.Equal(2, Value("nexus_bridge_overhead_seconds_count", ("strategy", "api_key")));
        Assert.Equal(2, Value("nexus_bridge_upstream_duration_seconds_count", ("strategy", "api_key"), ("upstream_status", "200")));
        // HttpClient's own instruments describe Nexus's calls to providers (the refresh), but not the Bridge's, which
        // the nexus_bridge_* series above cover (UnexportedMeters).
        var providerPort = new Uri(scene.Upstream.BaseUrl).Port.ToString(CultureInfo.InvariantCulture);
        var echoPort = new Uri(echo.BaseUrl).Port.ToString(CultureInfo.InvariantCulture);
        Assert.True(Value("http_client_request_duration_seconds_count", ("server_port", providerPort)) >= 1, text);
        Assert.DoesNotContain(samples, s => s.Name.StartsWith("http_client_", StringComparison.Ordinal) && s.Labels.GetValueOrDefault("server_port") == echoPort);
        Assert.True(Value("nexus_webhook_deliveries_total", ("event", "connection.active"), ("outcome", "delivered")) >= 1, text);
        Assert.Equal(2, Value("nexus_connections", ("status", "active")));
        Assert.Contains(samples, s => s.Name == "nexus_signing_key_age_seconds" && s.Labels.GetValueOrDefault("alg") == "RS256" && s.Value >= 0);
        // The encryption key's age is known when its creation time is (a key file written by Nexus); a bare ENCRYPTION_KEY has none.
        var keyCreated = server.Services.GetRequiredService<Nexus.Server.Vault.KeyRing>().ActiveKeyCreatedAt;
        Assert.Equal(keyCreated is not null, samples.Any(s => s.Name == "nexus_encryption_key_age_seconds"));
        // ASP.NET Core's and the runtime's own instruments come along.
        Assert.Contains(samples, s => s.Name.StartsWith("http_server_request_duration_seconds", StringComparison.Ordinal));
        // ... except the router's per-request match counter, which is not collected (ObservabilityExtensions).
        Assert.DoesNotContain(samples, s => s.Name.StartsWith("aspnetcore_routing_match_attempts", StringComparison.Ordinal));
        Assert.DoesNotContain(server.ApiKey, text, StringComparison.Ordinal);
        Assert.DoesNotContain(apiKey, text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithTracesOffNoTracerIsRegisteredSoNoRequestPaysForSpans()
    {
        await using var off = await RefreshScene.StartAsync();
        Assert.Null(off.Server.Services.GetService<TracerProvider>());
        await using var on = await RefreshScene.StartAsync(configure: s => s["Nexus:Telemetry:Traces"] = "true");
        Assert.NotNull(on.Server.Services.GetService<TracerProvider>());
    }

    [Fact]
    public async Task ATokenReadThatRefreshesIsOneTraceFromTheRequestThroughTheProviderCallToTheDatabase()
    {
        var spans = new LockedList();
        await using var scene = await RefreshScene.StartAsync(provider: new { refresh_margin_seconds = 60 },
            configure: s => s["Nexus:Telemetry:Traces"] = "true",
            services: s => s.ConfigureOpenTelemetryTracerProvider(b => b.AddInMemoryExporter(spans)));
        var server = scene.Server;
        var connectionId = await scene.Kit.ConnectAsync(scene.Provider);
        var first = await scene.Kit.TokenAsync(connectionId);
        server.Time.Advance(TimeSpan.FromSeconds(3600 - 30));
        var second = await scene.Kit.TokenAsync(connectionId);
        Assert.NotEqual(first, second);

        // The read that refreshed: the /v1/token server span with the provider call under it (in a full run the test's
        // own HttpClient calls may share one trace, so the trace id alone does not single it out).
        Activity? read = null;
        await RefreshKit.EventuallyAsync(() =>
        {
            var all = spans.Snapshot();
            read = all.Where(a => a.Kind == ActivityKind.Server && Equals(a.GetTagItem("http.route"), "/v1/token/{connectionId}"))
                .LastOrDefault(r => all.Any(a => a.Kind == ActivityKind.Client && a.Source.Name == "System.Net.Http" && DescendsFrom(a, r, all))
                    && all.Any(a => IsDatabase(a) && DescendsFrom(a, r, all)));
            return Task.FromResult(read is not null);
        }, "the refreshing read's spans");

        var trace = spans.Snapshot().Where(a => a.TraceId == read!.TraceId).ToList();
        var underRead = trace.Where(a => DescendsFrom(a, read!, trace)).ToList();
        var provider = Assert.Single(underRead, a => a.Kind == ActivityKind.Client && a.Source.Name == "System.Net.Http");
        Assert.Equal("POST", provider.GetTagItem("http.request.method"));
        Assert.Equal(scene.Upstream.BaseUrl + "/token", provider.GetTagItem("url.full"));
        Assert.Contains(underRead, IsDatabase);
        // No span attribute holds a token or a secret.
        var secrets = new[] { first, second, server.ApiKey, scene.Upstream.ClientSecret }
            .Concat(scene.Upstream.Families.Values.SelectMany(f => f.Chain).SelectMany(t => new[] { t.AccessToken, t.RefreshToken }).OfType<string>())
            .ToList();
        var attributes = string.Join("\n", spans.Snapshot().SelectMany(a => a.TagObjects.Select(t => $"{a.DisplayName} {t.Key}={t.Value}").Append(a.DisplayName)));
        Assert.All(secrets, s => Assert.DoesNotContain(s, attributes, StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheStandardSamplerVariablesChooseWhichRequestsAreTraced()
    {
        // parentbased_always_off: a request that starts a trace is not recorded; one whose caller sampled it is.
        var spans = new LockedList();
        await using var scene = await RefreshScene.StartAsync(
            configure: s =>
            {
                s["Nexus:Telemetry:Traces"] = "true";
                s["OTEL_TRACES_SAMPLER"] = "parentbased_always_off";
            },
            services: s => s.ConfigureOpenTelemetryTracerProvider(b => b.AddInMemoryExporter(spans)));
        var unsampledTrace = ActivityTraceId.CreateRandom();
        var sampledTrace = ActivityTraceId.CreateRandom();
        await ConnectionsAsync(scene, null);
        await ConnectionsAsync(scene, $"00-{unsampledTrace}-{ActivitySpanId.CreateRandom()}-00");
        await ConnectionsAsync(scene, $"00-{sampledTrace}-{ActivitySpanId.CreateRandom()}-01");

        await RefreshKit.EventuallyAsync(() => Task.FromResult(spans.Snapshot().Any(a => a.Kind == ActivityKind.Server && a.TraceId == sampledTrace)),
            "the sampled request's server span");
        var served = spans.Snapshot().Where(a => a.Kind == ActivityKind.Server && Equals(a.GetTagItem("http.route"), "/v1/connections")).ToList();
        Assert.True(served.Count == 1 && served[0].TraceId == sampledTrace, $"sampled {sampledTrace}, unsampled {unsampledTrace}; recorded: {string.Join(", ", served.Select(a => $"{a.TraceId} parent {a.ParentSpanId} {a.ActivityTraceFlags}"))}");
    }

    [Theory]
    [InlineData(null, null, "ParentBased{AlwaysOnSampler}", false)]
    [InlineData("parentbased_traceidratio", "0.1", "ParentBased{TraceIdRatioBasedSampler{0.100000}}", false)]
    [InlineData("TraceIdRatio", "0.25", "TraceIdRatioBasedSampler{0.250000}", false)]
    [InlineData("always_off", null, "AlwaysOffSampler", false)]
    [InlineData("sometimes", null, "ParentBased{AlwaysOnSampler}", true)]
    [InlineData("traceidratio", "2", "TraceIdRatioBasedSampler{1.000000}", true)]
    [InlineData("traceidratio", "a tenth", "TraceIdRatioBasedSampler{1.000000}", true)]
    public void AnUnknownSamplerOrRatioFallsBackToTheSpecificationsDefaultAndSaysSo(string? name, string? arg, string expected, bool problem)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["OTEL_TRACES_SAMPLER"] = name, ["OTEL_TRACES_SAMPLER_ARG"] = arg })
            .Build();
        var chosen = Nexus.Server.Observability.ObservabilityExtensions.ChooseSampler(configuration);
        Assert.Equal(expected, chosen.Sampler.Description);
        Assert.Equal(problem, chosen.Problem is not null);
    }

    private static async Task ConnectionsAsync(RefreshScene scene, string? traceparent)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/connections");
        request.Headers.Add("X-API-Key", scene.Server.ApiKey);
        if (traceparent is not null)
        {
            request.Headers.Add("traceparent", traceparent);
        }

        // The test's own HttpClient would put its own (unsampled) trace context on the request.
        using var http = new HttpClient(new SocketsHttpHandler { ActivityHeadersPropagator = null }) { BaseAddress = new Uri(scene.Server.BaseUrl) };
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static bool IsDatabase(Activity a) => a.Source.Name == "Npgsql" || (a.Source.Name == "Nexus" && a.DisplayName == "sqlite");

    private static bool DescendsFrom(Activity span, Activity root, List<Activity> trace)
    {
        var byId = trace.ToDictionary(a => a.SpanId);
        for (var parent = span.ParentSpanId; parent != default; parent = byId.TryGetValue(parent, out var p) ? p.ParentSpanId : default)
        {
            if (parent == root.SpanId)
            {
                return true;
            }
        }

        return false;
    }

    private sealed record Sample(string Name, Dictionary<string, string> Labels, double Value);

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})?\s+(?<value>\S+)")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?<k>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<v>(?:[^""\\]|\\.)*)""")]
    private static partial Regex Label();

    private static List<Sample> Parse(string text) =>
    [
        .. text.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => SampleLine().Match(l)).Where(m => m.Success)
            .Select(m => new Sample(m.Groups["name"].Value,
                Label().Matches(m.Groups["labels"].Value).ToDictionary(l => l.Groups["k"].Value, l => l.Groups["v"].Value),
                double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture))),
    ];

    /// <summary>The in-memory exporter's list, safe to read while the server adds to it.</summary>
    private sealed class LockedList : ICollection<Activity>
    {
        private readonly List<Activity> items = [];

        public int Count
        {
            get
            {
                lock (items)
                {
                    return items.Count;
                }
            }
        }

        public bool IsReadOnly => false;

        public List<Activity> Snapshot()
        {
            lock (items)
            {
                return [.. items];
            }
        }

        public void Add(Activity item)
        {
            lock (items)
            {
                items.Add(item);
            }
        }

        public void Clear()
        {
            lock (items)
            {
                items.Clear();
            }
        }

        public bool Contains(Activity item) => Snapshot().Contains(item);

        public void CopyTo(Activity[] array, int arrayIndex) => Snapshot().CopyTo(array, arrayIndex);

        public bool Remove(Activity item)
        {
            lock (items)
            {
                return items.Remove(item);
            }
        }

        public IEnumerator<Activity> GetEnumerator() => Snapshot().GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}

[CollectionDefinition(ObservabilityTests.Name, DisableParallelization = true)]
public sealed class ObservabilityAlone;
