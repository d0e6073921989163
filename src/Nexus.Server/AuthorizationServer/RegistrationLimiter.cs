using System.Collections.Concurrent;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// Bounds what one address can make Nexus do without signing in: client registrations (RFC 7591 §5 and RFC 9700
/// suggest rate limits on open registration) and client ID metadata document fetches, together, per hour.
/// </summary>
internal sealed class RegistrationLimiter(NexusOptions options, TimeProvider time)
{
    private const int MaxTrackedAddresses = 100_000;
    private static readonly TimeSpan Window = TimeSpan.FromHours(1);
    private readonly ConcurrentDictionary<string, (DateTimeOffset Start, int Count)> windows = new(StringComparer.Ordinal);

    /// <summary>Counts one attempt; returns how long the address must wait when it is over the limit, or null.</summary>
    public TimeSpan? TryAcquire(HttpContext context) => TryAcquire(context.Connection.RemoteIpAddress?.ToString() ?? "unknown");

    /// <summary>Counts one attempt by <paramref name="address"/>; returns how long it must wait when it is over the limit, or null.</summary>
    public TimeSpan? TryAcquire(string address)
    {
        var now = time.GetUtcNow();
        if (windows.Count > MaxTrackedAddresses)
        {
            foreach (var (key, value) in windows)
            {
                if (now - value.Start >= Window)
                {
                    windows.TryRemove(key, out _);
                }
            }
        }

        var updated = windows.AddOrUpdate(address, _ => (now, 1), (_, w) => now - w.Start >= Window ? (now, 1) : (w.Start, w.Count + 1));
        return updated.Count > options.Registration.LimitPerHour ? updated.Start + Window - now : null;
    }
}
