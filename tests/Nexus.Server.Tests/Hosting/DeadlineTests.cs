using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>The network deadlines' token: on Nexus's clock, and cancelled with the caller's token as a linked source would be.</summary>
public sealed class DeadlineTests
{
    [Fact]
    public void ItIsCancelledWhenTheInjectedClockReachesTheDelayAndNotBefore()
    {
        var clock = new ManualTimeProvider();
        using var caller = new CancellationTokenSource();
        using var deadline = new Deadline(TimeSpan.FromSeconds(3), clock, caller.Token);

        clock.Advance(TimeSpan.FromSeconds(3) - TimeSpan.FromTicks(1));
        Assert.False(deadline.Token.IsCancellationRequested);
        clock.Advance(TimeSpan.FromTicks(1));
        Assert.True(deadline.Token.IsCancellationRequested);
        Assert.True(deadline.Expired);
        Assert.False(caller.IsCancellationRequested);
    }

    [Fact]
    public void ItIsCancelledAtOnceWhenTheCallerGivesUpAndThatIsNotAnExpiry()
    {
        var clock = new ManualTimeProvider();
        using var caller = new CancellationTokenSource();
        using var deadline = new Deadline(TimeSpan.FromSeconds(3), clock, caller.Token);

        caller.Cancel();
        Assert.True(deadline.Token.IsCancellationRequested);
        Assert.False(deadline.Expired);
    }

    [Fact]
    public void ACallerAlreadyGoneGivesATokenAlreadyCancelled()
    {
        using var deadline = new Deadline(TimeSpan.FromSeconds(3), new ManualTimeProvider(), new CancellationToken(canceled: true));
        Assert.True(deadline.Token.IsCancellationRequested);
    }

    [Fact]
    public void AfterDisposalItsTimerIsGoneAndTheCallersTokenNoLongerReachesIt()
    {
        var clock = new ManualTimeProvider();
        using var caller = new CancellationTokenSource();
        var deadline = new Deadline(TimeSpan.FromSeconds(3), clock, caller.Token);
        Assert.Equal(1, clock.Armed);

        deadline.Dispose();

        Assert.Equal(0, clock.Armed);
        caller.Cancel(); // would throw ObjectDisposedException from the callback if it were still registered
    }
}
