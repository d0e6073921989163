using System.Diagnostics.Metrics;
using Nexus.Server.Observability;

namespace Nexus.Server.Vault;

/// <summary><c>nexus.encryption_key.age</c>: the age of the active encryption key, when its creation time is known.</summary>
internal sealed class EncryptionKeyGauge(IServiceProvider services) : IGaugeSource
{
    public void Register(Meter meter) =>
        meter.CreateObservableGauge("nexus.encryption_key.age", Age, "s", "Age of the active encryption key (when its creation time is known).");

    private IEnumerable<Measurement<double>> Age()
    {
        var ring = services.GetRequiredService<KeyRing>();
        return ring.ActiveKeyCreatedAt is { } created
            ? [new Measurement<double>((services.GetRequiredService<TimeProvider>().GetUtcNow() - created).TotalSeconds)]
            : [];
    }
}
