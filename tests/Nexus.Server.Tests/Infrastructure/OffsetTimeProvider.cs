namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// Real time plus an offset a test can move forward, so expiry can be tested without waiting. Both clocks move: the
/// wall clock (<see cref="GetUtcNow"/>) and the monotonic one (<see cref="GetTimestamp"/>) that Nexus's caches and
/// throttles measure ages with, so a cache entry is as old after <see cref="Advance"/> as a token is. Timers still run
/// in real time.
/// </summary>
public sealed class OffsetTimeProvider : TimeProvider
{
    private long offsetTicks;

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref offsetTicks));

    public override long GetTimestamp() =>
        base.GetTimestamp() + (long)(Interlocked.Read(ref offsetTicks) * ((double)TimestampFrequency / TimeSpan.TicksPerSecond));

    public void Advance(TimeSpan by) => Interlocked.Add(ref offsetTicks, by.Ticks);
}
