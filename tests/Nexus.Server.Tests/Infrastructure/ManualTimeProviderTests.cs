namespace Nexus.Server.Tests.Infrastructure;

/// <summary>The manual clock the Bridge's timeout tests stand on: its timers fire when time is moved past them, and only then.</summary>
public sealed class ManualTimeProviderTests
{
    [Fact]
    public void ACancellationSourceOnTheClockIsCancelledWhenTheClockReachesItsDelayAndNotBefore()
    {
        var clock = new ManualTimeProvider();
        using var source = new CancellationTokenSource(Timeout.InfiniteTimeSpan, clock);
        source.CancelAfter(TimeSpan.FromSeconds(2));
        clock.Advance(TimeSpan.FromSeconds(2) - TimeSpan.FromTicks(1));
        Assert.False(source.IsCancellationRequested);
        clock.Advance(TimeSpan.FromTicks(1));
        Assert.True(source.IsCancellationRequested);
    }

    [Fact]
    public void ADisarmedTimerDoesNotFireAndRearmingCountsAsAnArm()
    {
        var clock = new ManualTimeProvider();
        using var source = new CancellationTokenSource(Timeout.InfiniteTimeSpan, clock);
        source.CancelAfter(TimeSpan.FromSeconds(1));
        source.CancelAfter(Timeout.InfiniteTimeSpan);
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.False(source.IsCancellationRequested);
        Assert.Equal(1, clock.Arms);

        source.CancelAfter(TimeSpan.FromSeconds(1));
        Assert.Equal(2, clock.Arms);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(source.IsCancellationRequested);
    }

    [Fact]
    public void TimersFireInDueOrderWithTheClockAtEachOnesDueTimeAndAPeriodicOneAgainEachPeriod()
    {
        var clock = new ManualTimeProvider();
        var start = clock.GetUtcNow();
        var fired = new List<(string Name, TimeSpan At)>();
        using var late = clock.CreateTimer(_ => fired.Add(("late", clock.GetUtcNow() - start)), null, TimeSpan.FromSeconds(3), Timeout.InfiniteTimeSpan);
        using var every = clock.CreateTimer(_ => fired.Add(("every", clock.GetUtcNow() - start)), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));
        clock.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(
            [("every", TimeSpan.FromSeconds(1)), ("late", TimeSpan.FromSeconds(3)), ("every", TimeSpan.FromSeconds(3)), ("every", TimeSpan.FromSeconds(5))],
            fired);
        Assert.Equal(TimeSpan.FromSeconds(6), clock.GetUtcNow() - start);
        Assert.Equal(TimeSpan.FromSeconds(6).Ticks, clock.GetTimestamp());
    }

    [Fact]
    public void ADisposedTimerNeitherFiresNorArmsAgain()
    {
        var clock = new ManualTimeProvider();
        var fired = 0;
        var timer = clock.CreateTimer(_ => fired++, null, TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);
        timer.Dispose();
        Assert.False(timer.Change(TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan));
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(0, fired);
        Assert.Equal(1, clock.Arms);
    }

    [Fact]
    public void ACallbackThatThrowsStopsNeitherTheOtherTimersNorTheClockAndItsExceptionComesBack()
    {
        var clock = new ManualTimeProvider();
        var start = clock.GetUtcNow();
        var fired = false;
        using var failing = clock.CreateTimer(_ => throw new InvalidOperationException("boom"), null, TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);
        using var other = clock.CreateTimer(_ => fired = true, null, TimeSpan.FromSeconds(2), Timeout.InfiniteTimeSpan);
        var thrown = Assert.Throws<AggregateException>(() => clock.Advance(TimeSpan.FromSeconds(3)));
        Assert.IsType<InvalidOperationException>(Assert.Single(thrown.InnerExceptions));
        Assert.True(fired);
        Assert.Equal(TimeSpan.FromSeconds(3), clock.GetUtcNow() - start);
    }

    [Fact]
    public async Task WaitingForAnArmCompletesWhenCodeArmsATimerAndWaitingForAnArmedTimerAtOnceIfOneIs()
    {
        var clock = new ManualTimeProvider();
        var armed = clock.ArmedAfterAsync(0, TestContext.Current.CancellationToken);
        var anyArmed = clock.WhenArmedAsync(TestContext.Current.CancellationToken);
        Assert.False(armed.IsCompleted);
        Assert.False(anyArmed.IsCompleted);

        using var timer = clock.CreateTimer(_ => { }, null, TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);
        await armed;
        await anyArmed;
        Assert.True(clock.WhenArmedAsync(TestContext.Current.CancellationToken).IsCompleted);

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.False(clock.WhenArmedAsync(TestContext.Current.CancellationToken).IsCompleted);
    }
}
