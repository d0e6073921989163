using System.Diagnostics.Metrics;

namespace Nexus.Server.Observability;

/// <summary>
/// A component's gauges on the Nexus meter, read when an exporter collects (the signing keys' and the encryption key's
/// age). The component that owns the state registers them, so Observability depends on no component built on it.
/// </summary>
internal interface IGaugeSource
{
    void Register(Meter meter);
}
