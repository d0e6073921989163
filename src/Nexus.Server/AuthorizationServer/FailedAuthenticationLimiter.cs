using System.Collections.Concurrent;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// Slows down secret guessing at the token endpoint: after too many failed client authentications from one
/// address (for one client id, or in total) the address is refused for the rest of the window. Successful
/// requests are never counted, so a busy legitimate client is never throttled by this.
/// </summary>
internal sealed class FailedAuthenticationLimiter(NexusOptions options, TimeProvider time)
{
    private const int MaxTrackedKeys = 100_000;
    private readonly ConcurrentDictionary<string, Window> windows = new(StringComparer.Ordinal);

    private sealed class Window(long start)
    {
        public long Start = start;
        public int Count;
    }

    private TimeSpan Length => TimeSpan.FromSeconds(options.FailedClientAuthenticationWindowSeconds);

    /// <summary>Returns how long the caller must wait, or null when it may try.</summary>
    public TimeSpan? RetryAfter(string address, string clientId)
    {
        var now = time.GetTimestamp();
        return Check(PerClient(address, clientId), options.FailedClientAuthenticationLimit, now)
            ?? Check(address, options.FailedClientAuthenticationLimit * 10, now);
    }

    public void RecordFailure(string address, string clientId)
    {
        var now = time.GetTimestamp();
        if (windows.Count > MaxTrackedKeys)
        {
            Prune(now);
        }

        Increment(PerClient(address, clientId), now);
        Increment(address, now);
    }

    /// <summary>
    /// An attempt with input no client sends (a NUL character in its credentials or parameters): it names no client
    /// that could be looked up, so it counts against the address only.
    /// </summary>
    public void RecordMalformed(string address)
    {
        var now = time.GetTimestamp();
        if (windows.Count > MaxTrackedKeys)
        {
            Prune(now);
        }

        Increment(address, now);
    }

    private static string PerClient(string address, string clientId) => address + "|" + clientId;

    private TimeSpan? Check(string key, int limit, long now)
    {
        if (!windows.TryGetValue(key, out var window))
        {
            return null;
        }

        var elapsed = time.GetElapsedTime(Volatile.Read(ref window.Start), now);
        if (elapsed >= Length || Volatile.Read(ref window.Count) < limit)
        {
            return null;
        }

        return Length - elapsed;
    }

    private void Increment(string key, long now)
    {
        var window = windows.GetOrAdd(key, _ => new Window(now));
        lock (window)
        {
            if (time.GetElapsedTime(window.Start, now) >= Length)
            {
                window.Start = now;
                window.Count = 0;
            }

            window.Count++;
        }
    }

    private void Prune(long now)
    {
        foreach (var (key, window) in windows)
        {
            if (time.GetElapsedTime(Volatile.Read(ref window.Start), now) >= Length)
            {
                windows.TryRemove(key, out _);
            }
        }
    }
}
