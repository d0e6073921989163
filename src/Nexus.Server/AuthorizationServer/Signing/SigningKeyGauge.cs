using System.Diagnostics.Metrics;
using Nexus.Server.Observability;

namespace Nexus.Server.AuthorizationServer.Signing;

/// <summary><c>nexus.signing_key.age</c>: the age of each active token signing key, by algorithm and key id.</summary>
internal sealed class SigningKeyGauge(IServiceProvider services) : IGaugeSource
{
    public void Register(Meter meter) =>
        meter.CreateObservableGauge("nexus.signing_key.age", Ages, "s", "Age of each active token signing key, by algorithm.");

    private IEnumerable<Measurement<double>> Ages()
    {
        var now = services.GetRequiredService<TimeProvider>().GetUtcNow();
        return services.GetRequiredService<SigningKeys>().Published
            .Where(k => k.RetiredAt is null)
            .Select(k => new Measurement<double>((now - k.CreatedAt).TotalSeconds, new KeyValuePair<string, object?>("alg", k.Alg), new KeyValuePair<string, object?>("kid", k.Kid)));
    }
}
