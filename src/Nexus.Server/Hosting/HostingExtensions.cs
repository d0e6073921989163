using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Extensions.Options;

namespace Nexus.Server.Hosting;

internal static class HostingExtensions
{
    public const string DefaultUrl = "http://localhost:8090";

    /// <summary>The log levels Nexus runs with unless Logging:LogLevel:* says otherwise.</summary>
    internal static readonly KeyValuePair<string, string?>[] DefaultLogLevels =
    [
        new("Logging:LogLevel:Default", "Information"),
        new("Logging:LogLevel:Microsoft.AspNetCore", "Warning"),
        new("Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics", "None"),
        new("Logging:LogLevel:System.Net.Http.HttpClient", "Warning"),
    ];

    public static WebApplicationBuilder AddHosting(this WebApplicationBuilder builder)
    {
        var timeline = new StartupTimeline();
        timeline.Mark("configuration read");
        builder.Services.AddSingleton(timeline);
        // --urls and ASPNETCORE_URLS win; with neither, Nexus listens where the README says it does.
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["http_ports"]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        // The log levels live here, not in appsettings.json, which is only read when the content root (the working
        // directory of `dotnet Nexus.Server.dll`) holds it; without them everything logged at Information, including
        // the URLs ASP.NET Core redirects to (an OAuth client's ?code=…&state=…). This is the lowest-priority
        // source, so Logging:LogLevel:* in appsettings or the environment still wins.
        // ASP.NET Core's hosting layer starts an Activity and a logging scope for every request as soon as its
        // category logs at all, and only its "Request starting/finished" lines (Information, off in production)
        // use them. Off by default, so no request pays for them. HttpClientFactory logs every provider call at
        // Information; only its warnings are wanted.
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource
        {
            InitialData = DefaultLogLevels,
        });
        builder.Services.AddLogRedaction();
        // A failed start (busy port, unreachable database) is explained in one line by NexusCommandLine; the generic
        // host's own account of it ("Hosting failed to start", then "BackgroundService failed" for every background
        // service disposed before it ran) is a stack trace that buries that line. Until the host has started, its
        // errors are left to NexusCommandLine (which lets anything it does not recognise end the process with its
        // stack trace); afterwards they are logged as usual.
        builder.Logging.AddFilter(StartupLogGate.HostCategory, level => level >= LogLevel.Warning && (level < LogLevel.Error || StartupLogGate.Started));

        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            // Nothing Nexus accepts is large; the Bridge raises this per request where it streams.
            k.Limits.MaxRequestBodySize = 1024 * 1024;
        });

        builder.Services.AddSingleton<IConfigureOptions<NexusOptions>, NexusOptionsSetup>();
        builder.Services.AddSingleton<IValidateOptions<NexusOptions>, NexusOptionsValidator>();
        builder.Services.AddOptions<NexusOptions>().ValidateOnStart();
        builder.Services.AddSingleton(sp => sp.GetRequiredService<IOptions<NexusOptions>>().Value);
        builder.Services.AddSingleton(TimeProvider.System);

        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            o.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
            o.SerializerOptions.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
            // One time format across the API: Unix seconds (see UnixSecondsJsonConverter).
            o.SerializerOptions.Converters.Add(new UnixSecondsJsonConverter());
        });
        builder.Services.AddTransportSecurity();
        builder.Services.AddSingleton<OutboundNetworkGuard>();
        builder.Services.AddProblemDetails();
        builder.Services.AddExceptionHandler<ProblemExceptionHandler>();
        builder.Services.AddSingleton<AdminApiKey>();
        builder.Services.AddSingleton<PageNavigation>();
        builder.Services.AddSingleton<NexusBootstrapper>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<NexusBootstrapper>());
        builder.Services.AddSingleton<EndpointsBuiltOnce>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<EndpointsBuiltOnce>());
        return builder;
    }

    private static string ReadAsset(string name)
    {
        using var stream = typeof(HostingExtensions).Assembly.GetManifestResourceStream("assets/" + name)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>An embedded asset (read once at startup), served with a cache lifetime of an hour.</summary>
    private static Microsoft.AspNetCore.Http.HttpResults.ContentHttpResult Asset(HttpResponse response, string content, string contentType)
    {
        response.Headers.CacheControl = "public, max-age=3600";
        response.Headers.XContentTypeOptions = "nosniff";
        return TypedResults.Text(content, contentType);
    }

    public static WebApplication MapHosting(this WebApplication app)
    {
        var timeline = app.Services.GetRequiredService<StartupTimeline>();
        timeline.Mark("host built");
        app.Services.GetRequiredService<EndpointsBuiltOnce>().Attach(app);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            StartupLogGate.Started = true;
            timeline.Mark("listening");
            app.Services.GetRequiredService<ILogger<StartupTimeline>>().LogDebug("Startup timeline (ms since the process started, CPU ms in brackets): {Timeline}", timeline);
        });
        app.UseTransportSecurity();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseInputGuard();
        // Lambdas, so the Request Delegate Generator compiles these endpoints too (a delegate-typed value is RDG002).
        var css = ReadAsset("nexus.css");
        var js = ReadAsset("nexus.js");
        app.MapGet("/assets/nexus.css", (HttpResponse response) => Asset(response, css, "text/css; charset=utf-8")).ExcludeFromDescription().WithoutSession();
        app.MapGet("/assets/nexus.js", (HttpResponse response) => Asset(response, js, "text/javascript; charset=utf-8")).ExcludeFromDescription().WithoutSession();

        // Liveness: a constant answer, written from bytes prepared once.
        var healthy = new PrecomputedJson("{\"status\":\"ok\"}");
        app.MapGet("/healthz", (HttpContext context) => healthy.WriteAsync(context, "no-store")).ExcludeFromDescription().WithoutSession();
        // Ready means every registered readiness check passes (Data: the database answers within 2 s); otherwise 503,
        // so a load balancer stops sending traffic.
        app.MapGet("/readyz", async (IEnumerable<IReadinessCheck> checks, HttpResponse response, CancellationToken ct) =>
        {
            var body = new Dictionary<string, object?>(StringComparer.Ordinal) { ["status"] = "ok" };
            var retryAfter = 0;
            foreach (var check in checks)
            {
                var readiness = await check.CheckAsync(ct);
                foreach (var (name, value) in readiness.Details)
                {
                    body[name] = value;
                }

                if (!readiness.Ready)
                {
                    body["status"] = "unavailable";
                    retryAfter = Math.Max(retryAfter, readiness.RetryAfterSeconds);
                }
            }

            if (body["status"] is "ok")
            {
                return Results.Ok(body);
            }

            response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Results.Json(body, statusCode: StatusCodes.Status503ServiceUnavailable);
        }).ExcludeFromDescription().WithoutSession();
        return app;
    }
}

/// <summary>Turns request-shaped exceptions into 4xx problems and everything else into a 500 that leaks nothing.</summary>
internal sealed class ProblemExceptionHandler(IEnumerable<IExceptionAnswer> answers, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        // The components' own answers first (Data: a database outage is a 503).
        foreach (var answer in answers)
        {
            if (await answer.TryAnswerAsync(context, exception))
            {
                return true;
            }
        }

        IResult result;
        if (exception is InvalidInputException invalid)
        {
            // A form field the InputGuard refused while the handler read the form: a 400 in the endpoint's format.
            await InputGuard.RejectAsync(context, invalid.Message);
            return true;
        }

        if (exception is BadHttpRequestException bad)
        {
            result = Problems.Create(ProblemCatalog.BadRequest, bad.Message, status: bad.StatusCode);
        }
        else
        {
            logger.LogError(exception, "Unhandled error on {Method} {Path}", context.Request.Method, context.Request.Path);
            result = Problems.Create(ProblemCatalog.InternalError,
                "The error was logged with the request's trace id.", new Dictionary<string, object?> { ["trace_id"] = context.TraceIdentifier });
        }

        await result.ExecuteAsync(context);
        return true;
    }
}

/// <summary>Whether the generic host has started (see AddHosting: its errors before that are NexusCommandLine's to explain).</summary>
internal static class StartupLogGate
{
    public const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";

    public static volatile bool Started;
}
