using System.Diagnostics;

namespace Nexus.Server.Hosting;

/// <summary>The names Nexus's own telemetry is published under (Observability exports them; any component may start spans).</summary>
internal static class NexusTelemetry
{
    public const string Name = "Nexus";

    /// <summary>Spans Nexus starts itself: SQLite connection leases, webhook deliveries.</summary>
    public static readonly ActivitySource Source = new(Name);

    /// <summary>
    /// Set on an outgoing request that must carry no trace context (the Bridge's calls to providers): the HttpClient
    /// instrumentation leaves such requests alone, so it neither traces them nor adds traceparent or baggage headers.
    /// </summary>
    public static readonly HttpRequestOptionsKey<bool> NoTraceContext = new("nexus.no-trace-context");
}
