using System.Collections.Concurrent;
using Nexus.Server.Hosting;

namespace Nexus.Server.Accounts;

/// <summary>
/// Failed sign-ins (and setup-token guesses) per source address, across all accounts: one address cannot guess
/// passwords for many accounts, nor lock them all out one after the other (each account locks itself after
/// Identity's MaxFailedAccessAttempts, the per-account limit). Successes are never counted.
/// </summary>
internal sealed class SignInLimiter(NexusOptions options, TimeProvider time)
{
    private const int MaxTrackedAddresses = 100_000;
    private readonly ConcurrentDictionary<string, Window> windows = new(StringComparer.Ordinal);

    private sealed class Window(long start)
    {
        public long Start = start;
        public int Count;
    }

    private TimeSpan Length => TimeSpan.FromSeconds(options.FailedSignInWindowSeconds);

    public static string AddressOf(HttpContext context) => context.Connection.RemoteIpAddress?.ToString() ?? "unknown";

    /// <summary>How long the address must wait, or null when it may try.</summary>
    public TimeSpan? RetryAfter(string address)
    {
        if (!windows.TryGetValue(address, out var window))
        {
            return null;
        }

        var elapsed = time.GetElapsedTime(Volatile.Read(ref window.Start));
        return elapsed >= Length || Volatile.Read(ref window.Count) < options.FailedSignInLimit ? null : Length - elapsed;
    }

    public void RecordFailure(string address)
    {
        var now = time.GetTimestamp();
        if (windows.Count > MaxTrackedAddresses)
        {
            foreach (var (key, old) in windows)
            {
                if (time.GetElapsedTime(Volatile.Read(ref old.Start), now) >= Length)
                {
                    windows.TryRemove(key, out _);
                }
            }
        }

        var window = windows.GetOrAdd(address, _ => new Window(now));
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
}
