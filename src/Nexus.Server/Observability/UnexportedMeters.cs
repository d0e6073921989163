using System.Diagnostics.Metrics;

namespace Nexus.Server.Observability;

/// <summary>
/// A meter factory for instruments nobody should pay for: every meter it hands out is one meter named
/// <see cref="Name"/>, which no exporter subscribes to, so its instruments stay disabled and recording into them costs
/// a flag check. The Bridge gives it to its HttpClient handler: its own <c>nexus.bridge.*</c> instruments describe each
/// call once (requests, Nexus's overhead, the provider's time), and HttpClient's per-request ones
/// (<c>http.client.request.duration</c>, the active request and open connection counts) recorded on top of them cost
/// the Bridge several percent of its throughput (bench/bridge.sh). Every other outgoing call keeps HttpClient's
/// instruments. One meter for the process: instruments of the same name are shared, and nothing is left behind when
/// a handler goes.
/// </summary>
internal sealed class UnexportedMeters : IMeterFactory
{
    public const string Name = "Nexus.Unexported";

    public static readonly UnexportedMeters Instance = new();

    private readonly Meter meter = new(Name);

    private UnexportedMeters()
    {
    }

    public Meter Create(MeterOptions options) => meter;

    /// <summary>The process's one meter outlives any caller.</summary>
    public void Dispose()
    {
    }
}
