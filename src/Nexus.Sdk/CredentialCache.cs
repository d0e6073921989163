using System.Collections.Concurrent;

namespace Nexus.Sdk;

/// <summary>
/// Credentials per connection, kept until <see cref="NexusClientOptions.CredentialExpiryMargin"/> (at most half the
/// time they had left when fetched) before their <c>expires_at</c> (or for <see cref="NexusClientOptions.CredentialMaxAge"/> when they have none). A missing or
/// stale entry is fetched once however many callers want it at the same moment: they all await the one fetch in
/// flight. The fetch runs to its end even when the caller that started it gives up (its result serves the others);
/// each caller's own cancellation only stops its own wait.
/// </summary>
internal sealed class CredentialCache(Func<string, CancellationToken, Task<NexusCredential>> fetch, TimeProvider time, TimeSpan margin, TimeSpan maxAge)
{
    private readonly ConcurrentDictionary<string, Entry> entries = new(StringComparer.Ordinal);

    private sealed record Fresh(NexusCredential Credential, long FreshUntilMs);

    private sealed class Entry
    {
        public readonly Lock Gate = new();
        public Fresh? Current;
        public Task<NexusCredential>? Flight;
        public long Generation;
    }

    /// <summary>The cached credential while it is fresh; otherwise the fetch in flight, or a new one.</summary>
    public ValueTask<NexusCredential> GetAsync(string connectionId, CancellationToken cancellationToken)
    {
        var entry = entries.GetOrAdd(connectionId, static _ => new Entry());
        var current = Volatile.Read(ref entry.Current);
        if (current is not null && time.GetUtcNow().ToUnixTimeMilliseconds() < current.FreshUntilMs)
        {
            return new ValueTask<NexusCredential>(current.Credential);
        }

        return new ValueTask<NexusCredential>(JoinOrStartAsync(connectionId, entry, cancellationToken));
    }

    /// <summary>Forgets the connection's credential: the next <see cref="GetAsync"/> asks Nexus. A fetch in flight still answers its callers but is not kept.</summary>
    public void Invalidate(string connectionId)
    {
        if (entries.TryGetValue(connectionId, out var entry))
        {
            lock (entry.Gate)
            {
                Volatile.Write(ref entry.Current, null);
                entry.Generation++;
                entry.Flight = null;
            }
        }
    }

    private Task<NexusCredential> JoinOrStartAsync(string connectionId, Entry entry, CancellationToken cancellationToken)
    {
        Task<NexusCredential> flight;
        lock (entry.Gate)
        {
            if (entry.Current is { } current && time.GetUtcNow().ToUnixTimeMilliseconds() < current.FreshUntilMs)
            {
                return Task.FromResult(current.Credential);
            }

            flight = entry.Flight ??= FetchAsync(connectionId, entry, entry.Generation);
        }

        return cancellationToken.CanBeCanceled ? flight.WaitAsync(cancellationToken) : flight;
    }

    private TimeSpan EffectiveMargin(TimeSpan left) => left <= TimeSpan.Zero ? TimeSpan.Zero : left / 2 < margin ? left / 2 : margin;

    private async Task<NexusCredential> FetchAsync(string connectionId, Entry entry, long generation)
    {
        // Off the caller's stack and lock: the first caller's synchronous continuation must not run under the gate.
        await Task.Yield();
        try
        {
            var credential = await fetch(connectionId, CancellationToken.None).ConfigureAwait(false);
            var now = time.GetUtcNow();
            // The margin is at most half the time left, as in the server (RefreshSchedule.EffectiveMarginMs) and the
            // other SDKs: a token that lives less than twice the margin (a 60 s token, a margin of 60 s) is still
            // cached for a while, instead of being fetched again on every call.
            var freshUntil = credential.ExpiresAt is { } expires ? expires - EffectiveMargin(expires - now) : now + maxAge;
            lock (entry.Gate)
            {
                if (entry.Generation == generation)
                {
                    entry.Flight = null;
                    Volatile.Write(ref entry.Current, new Fresh(credential, freshUntil.ToUnixTimeMilliseconds()));
                }
            }

            return credential;
        }
        catch
        {
            lock (entry.Gate)
            {
                if (entry.Generation == generation)
                {
                    entry.Flight = null;
                }
            }

            throw;
        }
    }
}
