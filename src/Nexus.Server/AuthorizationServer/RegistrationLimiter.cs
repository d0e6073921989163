using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// Bounds what one address can make Nexus do without signing in: client registrations (RFC 7591 §5 and RFC 9700
/// suggest rate limits on open registration) and client ID metadata document fetches, together, per hour.
/// </summary>
internal sealed class RegistrationLimiter(NexusOptions options, TimeProvider time)
{
    private readonly FixedWindowCounter attempts = new(time, () => TimeSpan.FromHours(1));

    /// <summary>Counts one attempt; returns how long the address must wait when it is over the limit, or null.</summary>
    public TimeSpan? TryAcquire(HttpContext context) => TryAcquire(FixedWindowCounter.AddressKey(context));

    /// <summary>Counts one attempt by <paramref name="address"/>; returns how long it must wait when it is over the limit, or null.</summary>
    public TimeSpan? TryAcquire(string address) =>
        attempts.Increment(address) > options.Registration.LimitPerHour ? attempts.RetryAfter(address, options.Registration.LimitPerHour + 1) : null;
}
