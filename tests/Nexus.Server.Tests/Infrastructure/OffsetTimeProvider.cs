namespace Nexus.Server.Tests.Infrastructure;

/// <summary>Real time plus an offset a test can move forward, so expiry can be tested without waiting.</summary>
public sealed class OffsetTimeProvider : TimeProvider
{
    private long offsetTicks;

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref offsetTicks));

    public void Advance(TimeSpan by) => Interlocked.Add(ref offsetTicks, by.Ticks);
}
