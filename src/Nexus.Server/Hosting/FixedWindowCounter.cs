using System.Net;

namespace Nexus.Server.Hosting;

/// <summary>
/// Counts events per key in fixed windows (the first event of a key starts its window; the count starts again once
/// the window has passed): the one implementation behind Nexus's limiters (failed client authentications, failed
/// sign-ins, client registrations). In memory, per instance; windows that have passed are dropped when
/// <paramref name="maxKeys"/> keys are held, and again each time what was left has doubled (so events from many
/// addresses within one window, as in a flood, walk the keys now and then instead of on every event).
/// </summary>
internal sealed class FixedWindowCounter(TimeProvider time, Func<TimeSpan> length, int maxKeys = 100_000)
{
    private readonly CountedDictionary<string, Window> windows = new(StringComparer.Ordinal);
    private readonly Lock sweeping = new();

    // The count of keys at which the passed windows are dropped next.
    private readonly int bound = maxKeys;
    private int sweepAt = maxKeys;
    private int sweeps;

    /// <summary>How many times the keys were walked to drop passed windows (for tests).</summary>
    internal int Sweeps => Volatile.Read(ref sweeps);

    /// <summary>The keys held (for tests).</summary>
    internal int Keys => windows.Count;

    private sealed class Window(long start)
    {
        public long Start = start;
        public int Count;
    }

    /// <summary>How long until the key's window ends when it has reached <paramref name="limit"/>; null when it is under it.</summary>
    public TimeSpan? RetryAfter(string key, int limit)
    {
        if (!windows.TryGetValue(key, out var window))
        {
            return null;
        }

        var elapsed = TimeSpan.FromTicks(time.GetUtcNow().UtcTicks - Volatile.Read(ref window.Start));
        var span = length();
        return elapsed >= span || Volatile.Read(ref window.Count) < limit ? null : span - elapsed;
    }

    /// <summary>Counts one event for the key; returns the count in its window, this one included.</summary>
    public int Increment(string key) => Count(key).Count;

    /// <summary>Counts one event for the key; returns the count in its window, this one included, and the window's start (for <see cref="Decrement"/>).</summary>
    public (int Count, long WindowStart) Count(string key)
    {
        // The wall clock (TimeProvider.GetUtcNow), so that the windows follow the server's clock in tests too.
        var now = time.GetUtcNow().UtcTicks;
        var span = length();
        if (windows.Count > Volatile.Read(ref sweepAt))
        {
            Sweep(now, span);
        }

        if (!windows.TryGetValue(key, out var window))
        {
            window = windows.GetOrAdd(key, new Window(now));
        }

        lock (window)
        {
            if (TimeSpan.FromTicks(now - window.Start) >= span)
            {
                window.Start = now;
                window.Count = 0;
            }

            return (++window.Count, window.Start);
        }
    }

    /// <summary>
    /// Takes back one event counted by <see cref="Count"/> (a reservation that turned out not to count), while the key's
    /// window is still the one it was counted in (<paramref name="windowStart"/>); in any order of the events counted.
    /// </summary>
    public void Decrement(string key, long windowStart)
    {
        if (windows.TryGetValue(key, out var window))
        {
            lock (window)
            {
                if (window.Start == windowStart && window.Count > 0)
                {
                    window.Count--;
                }
            }
        }
    }

    private void Sweep(long now, TimeSpan span)
    {
        lock (sweeping)
        {
            if (windows.Count <= sweepAt)
            {
                return; // another event swept meanwhile
            }

            Interlocked.Increment(ref sweeps);
            foreach (var (old, value) in windows)
            {
                if (TimeSpan.FromTicks(now - Volatile.Read(ref value.Start)) >= span)
                {
                    windows.TryRemove(old);
                }
            }

            var left = windows.Recount();
            Volatile.Write(ref sweepAt, Math.Max(bound, 2 * left));
        }
    }

    /// <summary>
    /// The key a limiter counts a caller's address under: the IPv4 address (also when written IPv4-mapped), or the
    /// /64 prefix of an IPv6 address, since one host is usually given a whole /64 and could otherwise step through it.
    /// </summary>
    public static string AddressKey(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes).ToString() + "/64";
    }

    public static string AddressKey(HttpContext context) => AddressKey(context.Connection.RemoteIpAddress);
}
