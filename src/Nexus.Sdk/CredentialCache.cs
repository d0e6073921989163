using System.Collections.Concurrent;

namespace Nexus.Sdk;

/// <summary>
/// Credentials per connection, kept until <see cref="NexusClientOptions.CredentialExpiryMargin"/> (at most half the
/// time they had left when fetched) before their <c>expires_at</c> (or for <see cref="NexusClientOptions.CredentialMaxAge"/> when they have none). A missing or
/// stale entry is fetched once however many callers want it at the same moment: they all await the one fetch in
/// flight. The fetch runs to its end even when the caller that started it gives up (its result serves the others);
/// each caller's own cancellation only stops its own wait. When a fetch fails with an error that
/// <paramref name="transient"/> accepts (Nexus unreachable or busy) while the cached credential has not expired, that
/// credential is the fetch's answer, and it is used for <see cref="StaleRetry"/> before Nexus is asked again.
/// </summary>
internal sealed class CredentialCache(Func<string, CancellationToken, Task<NexusCredential>> fetch, TimeProvider time, TimeSpan margin, TimeSpan maxAge,
    Func<Exception, bool>? transient = null)
{
    /// <summary>How long a credential served over a transient failure is used before Nexus is asked again.</summary>
    internal static readonly TimeSpan StaleRetry = TimeSpan.FromSeconds(5);

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
        catch (Exception e)
        {
            lock (entry.Gate)
            {
                if (entry.Generation == generation)
                {
                    entry.Flight = null;
                    // Nexus unreachable or busy while the cached credential is due for a fetch but not expired: keep
                    // using it for a few seconds (as Nexus itself serves a valid token while the provider is down).
                    // Never over a 500, a 502/503/504 refusal (token_request_failed, …) or an answer about the
                    // connection (attention required, not found): transient says which.
                    var now = time.GetUtcNow();
                    if (transient?.Invoke(e) == true && entry.Current is { Credential: { ExpiresAt: { } expires } stale } && now < expires)
                    {
                        var until = now + StaleRetry < expires ? now + StaleRetry : expires;
                        Volatile.Write(ref entry.Current, new Fresh(stale, until.ToUnixTimeMilliseconds()));
                        return stale;
                    }
                }
            }

            throw;
        }
    }
}
