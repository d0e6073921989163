using System.Diagnostics;
using Nexus.Server.Hosting;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Nexus.Server.Observability;

/// <summary>OpenTelemetry metrics and traces, and the Prometheus scrape endpoint (docs/observability.md).</summary>
internal sealed class TelemetryOptions
{
    public const string Section = "Nexus:Telemetry";

    /// <summary>Metrics and traces at all. Off: no instrumentation is registered, nothing is measured.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Traces. Default: on when OTEL_EXPORTER_OTLP_ENDPOINT is set (someone receives them), else off.</summary>
    public bool? Traces { get; set; }

    /// <summary>The Prometheus scrape endpoint at /metrics (admin API key required).</summary>
    public bool Prometheus { get; set; } = true;
}

/// <summary>
/// OpenTelemetry: traces of incoming requests (ASP.NET Core), outgoing calls (HttpClient: providers, webhooks, the
/// Bridge), database work (Npgsql's own spans; one span per SQLite connection lease) and webhook deliveries, and
/// the metrics of <see cref="NexusMetrics"/> plus ASP.NET Core's, HttpClient's and the runtime's. Exported over OTLP
/// when the standard OTEL_EXPORTER_OTLP_* variables name an endpoint, and scraped by Prometheus at /metrics with
/// the admin API key. No attribute carries a secret: query strings are redacted by the instrumentations and every
/// string attribute goes through <see cref="LogRedaction"/> as well.
/// </summary>
internal static class ObservabilityExtensions
{
    public const string MetricsPath = "/metrics";

    /// <summary>
    /// ASP.NET Core instruments that every request updates, several times, and that say nothing an exported one does not:
    /// the router's match attempts (every request matches or gets a 404, which http.server.request.duration counts by
    /// route and status) and the memory pool's rented and pooled bytes (two or three updates per block a request rents;
    /// the pool's growth and shrinking, aspnetcore.memory_pool.allocated and .evicted, are still collected). Each
    /// measurement is a tag-set lookup in OpenTelemetry's aggregator on the request's path (docs/observability.md).
    /// </summary>
    public static readonly string[] PerRequestInstrumentsNotCollected =
        ["aspnetcore.routing.match_attempts", "aspnetcore.memory_pool.rented", "aspnetcore.memory_pool.pooled"];

    public static WebApplicationBuilder AddObservability(this WebApplicationBuilder builder)
    {
        // Read again from the final configuration when the host starts; "Enabled", "Traces" and the OTLP endpoint
        // decide here, from the configuration the host is built with, what gets registered at all (a test host gives
        // them as host configuration: NexusTestServer).
        var options = Read(builder.Configuration);
        builder.Services.AddSingleton(sp => Read(sp.GetRequiredService<IConfiguration>()));
        builder.Services.AddSingleton<NexusMetrics>();
        if (!options.Enabled)
        {
            return builder;
        }

        var otlp = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        var traces = options.Traces ?? otlp;
        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName: "nexus", serviceVersion: typeof(ObservabilityExtensions).Assembly.GetName().Version?.ToString()))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(NexusTelemetry.Name)
                    .AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation();
                foreach (var instrument in PerRequestInstrumentsNotCollected)
                {
                    // Dropped by every view, an instrument has no listener, so ASP.NET Core skips the measurement.
                    metrics.AddView(instrument, MetricStreamConfiguration.Drop);
                }
                if (options.Prometheus)
                {
                    metrics.AddPrometheusExporter();
                }
            });
        // Traces are registered only when they are on. Registered but sampled out, the ASP.NET Core instrumentation
        // still had the hosting layer create, start and stop an Activity for every request (about 2% of Nexus's CPU
        // under the Bridge's load), so whether to trace is read once, from the configuration the host is built with.
        if (traces)
        {
            otel.WithTracing(tracing => tracing
                .SetSampler(ChooseSampler(builder.Configuration).Sampler)
                .AddSource(NexusTelemetry.Name)
                .AddAspNetCoreInstrumentation(o => o.Filter = context => !IsQuiet(context.Request.Path))
                // A filtered request is neither traced nor given trace headers (the Bridge's, NexusTelemetry.NoTraceContext).
                .AddHttpClientInstrumentation(o => o.FilterHttpRequestMessage = request => !request.Options.TryGetValue(NexusTelemetry.NoTraceContext, out var none) || !none)
                .AddNpgsql()
                .AddProcessor(new RedactingSpanProcessor()));
        }

        if (otlp)
        {
            // The standard variables (OTEL_EXPORTER_OTLP_ENDPOINT, _PROTOCOL, _HEADERS, OTEL_SERVICE_NAME, ...).
            otel.UseOtlpExporter();
        }

        return builder;
    }

    /// <summary>
    /// The sampler the standard OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name (OpenTelemetry's SDK environment
    /// variables), read from Nexus's configuration like every other setting. By default parentbased_always_on: every
    /// request that starts a trace is recorded, and one that arrives with a caller's trace context follows the caller's
    /// decision. parentbased_traceidratio with 0.1 records one request in ten (what that costs: bench/telemetry.sh).
    /// As the specification asks, an unknown name or a ratio outside 0..1 falls back to the default (name) or to 1.0
    /// (ratio), and <see cref="MapObservability"/> logs a warning.
    /// </summary>
    internal static (Sampler Sampler, string? Problem) ChooseSampler(IConfiguration configuration)
    {
        var name = configuration["OTEL_TRACES_SAMPLER"]?.Trim();
        var arg = configuration["OTEL_TRACES_SAMPLER_ARG"]?.Trim();
        string? problem = null;
        double Ratio()
        {
            if (string.IsNullOrEmpty(arg))
            {
                return 1.0;
            }

            if (double.TryParse(arg, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var ratio) && ratio is >= 0 and <= 1)
            {
                return ratio;
            }

            problem = $"OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1 (got '{arg}'); using 1.0.";
            return 1.0;
        }

        Sampler? sampler = name?.ToLowerInvariant() switch
        {
            null or "" or "parentbased_always_on" => new ParentBasedSampler(new AlwaysOnSampler()),
            "always_on" => new AlwaysOnSampler(),
            "always_off" => new AlwaysOffSampler(),
            "traceidratio" => new TraceIdRatioBasedSampler(Ratio()),
            "parentbased_always_off" => new ParentBasedSampler(new AlwaysOffSampler()),
            "parentbased_traceidratio" => new ParentBasedSampler(new TraceIdRatioBasedSampler(Ratio())),
            _ => null,
        };
        if (sampler is null)
        {
            problem = $"OTEL_TRACES_SAMPLER '{name}' is not one of always_on, always_off, traceidratio, parentbased_always_on, " +
                "parentbased_always_off, parentbased_traceidratio; using parentbased_always_on.";
            sampler = new ParentBasedSampler(new AlwaysOnSampler());
        }

        return (sampler, problem);
    }

    public static WebApplication MapObservability(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<TelemetryOptions>();
        if (app.Services.GetService<TracerProvider>() is not null && ChooseSampler(app.Configuration).Problem is { } samplerProblem)
        {
            app.Logger.LogWarning("{Problem}", samplerProblem);
        }

        if (options is { Enabled: true, Prometheus: true })
        {
            // The scrape shows traffic and key ages: only the operator's admin API key reads it.
            // StartsWithSegments: the route also answers /metrics/ (found by HostileInputTests), and so does the gate.
            app.UseWhen(context => context.Request.Path.StartsWithSegments(MetricsPath, StringComparison.OrdinalIgnoreCase), branch => branch.Use(async (context, next) =>
            {
                if (context.RequestServices.GetRequiredService<AdminApiKey>().Refuse(context) is { } refusal)
                {
                    await refusal.ExecuteAsync(context);
                    return;
                }

                await next(context);
            }));
            // An operations endpoint in Prometheus's text format, documented in docs/observability.md rather than the API reference.
            app.MapPrometheusScrapingEndpoint("/metrics").ExcludeFromDescription();
        }

        return app;
    }

    private static TelemetryOptions Read(IConfiguration configuration) =>
        configuration.GetSection(TelemetryOptions.Section).Get<TelemetryOptions>() ?? new TelemetryOptions();

    private static bool IsQuiet(PathString path) =>
        path.StartsWithSegments(MetricsPath) || path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz");
}

/// <summary>Every string attribute of every span through <see cref="LogRedaction"/> (a URL's code, state, tokens, keys).</summary>
internal sealed class RedactingSpanProcessor : BaseProcessor<Activity>
{
    public override void OnEnd(Activity data)
    {
        List<KeyValuePair<string, string>>? changed = null;
        // EnumerateTagObjects: a struct enumerator over the span's tags (TagObjects allocates one per span).
        foreach (ref readonly var tag in data.EnumerateTagObjects())
        {
            if (tag.Value is string text && LogRedaction.Redact(text) is var redacted && !ReferenceEquals(redacted, text))
            {
                (changed ??= []).Add(new(tag.Key, redacted));
            }
        }

        if (changed is not null)
        {
            foreach (var (key, value) in changed)
            {
                data.SetTag(key, value);
            }
        }

        if (LogRedaction.Redact(data.DisplayName) is var name && !ReferenceEquals(name, data.DisplayName))
        {
            data.DisplayName = name;
        }
    }
}
