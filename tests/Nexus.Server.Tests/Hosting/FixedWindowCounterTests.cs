using System.Net;
using Nexus.Server.Hosting;

namespace Nexus.Server.Tests.Hosting;

/// <summary>The counter behind the failed-authentication, sign-in and registration limits.</summary>
public sealed class FixedWindowCounterTests
{
    private sealed class ManualClock : TimeProvider
    {
        private long ticks = new DateTimeOffset(2026, 12, 4, 0, 0, 0, TimeSpan.Zero).UtcTicks;

        public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref ticks), TimeSpan.Zero);

        public void Advance(TimeSpan by) => Interlocked.Add(ref ticks, by.Ticks);
    }

    [Fact]
    public void AKeyAtItsLimitWaitsForTheRestOfItsWindowAndThenStartsAgain()
    {
        var clock = new ManualClock();
        var counter = new FixedWindowCounter(clock, () => TimeSpan.FromMinutes(1));
        Assert.Equal(1, counter.Increment("a"));
        Assert.Equal(2, counter.Increment("a"));
        Assert.Null(counter.RetryAfter("a", 3));
        Assert.Equal(3, counter.Increment("a"));
        clock.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(TimeSpan.FromSeconds(40), counter.RetryAfter("a", 3));
        Assert.Null(counter.RetryAfter("b", 3)); // keys are counted apart

        clock.Advance(TimeSpan.FromSeconds(40));
        Assert.Null(counter.RetryAfter("a", 3));
        Assert.Equal(1, counter.Increment("a"));
    }

    [Fact]
    public void EventsTakenBackInAnyOrderLeaveNothingCountedAndNoneFromAnEarlierWindow()
    {
        var clock = new ManualClock();
        var counter = new FixedWindowCounter(clock, () => TimeSpan.FromMinutes(1));
        var (_, first) = counter.Count("a");
        var (_, second) = counter.Count("a");

        // Given back in the order counted (a check of the count against the position kept the second one).
        counter.Decrement("a", first);
        counter.Decrement("a", second);
        Assert.Equal(1, counter.Increment("a"));

        // A reservation of a window that has passed takes nothing from the new one.
        var (_, old) = counter.Count("a");
        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(1, counter.Increment("a"));
        counter.Decrement("a", old);
        Assert.Equal(2, counter.Increment("a"));
    }

    [Fact]
    public void PassedWindowsAreDroppedWhenTheKeyBoundIsReached()
    {
        var clock = new ManualClock();
        var counter = new FixedWindowCounter(clock, () => TimeSpan.FromMinutes(1), maxKeys: 10);
        for (var i = 0; i < 20; i++)
        {
            counter.Increment("old-" + i);
        }

        clock.Advance(TimeSpan.FromMinutes(2));
        counter.Increment("new");
        Assert.Equal(1, counter.Increment("old-0")); // its passed window was dropped, not carried on
    }

    [Fact]
    public void ManyKeysWithinOneWindowAreWalkedNowAndThenNotOnEveryEvent()
    {
        // A flood from 1,000 addresses within one window: the keys are walked when they pass the bound and again each
        // time they have doubled (10, 20, 40, … 640: seven walks), not on each of the 990 events past the bound.
        var clock = new ManualClock();
        var counter = new FixedWindowCounter(clock, () => TimeSpan.FromMinutes(1), maxKeys: 10);
        for (var i = 0; i < 1_000; i++)
        {
            counter.Increment("flood-" + i);
        }

        Assert.InRange(counter.Sweeps, 1, 8);
        Assert.Equal(1_000, counter.Keys); // every window still counts

        // Once they have passed, the next walk (when the keys have doubled again, past 1,280) drops them all.
        clock.Advance(TimeSpan.FromMinutes(2));
        for (var i = 0; i < 600; i++)
        {
            counter.Increment("later-" + i);
        }

        Assert.Equal(600, counter.Keys);
    }

    [Theory]
    [InlineData("203.0.113.7", "203.0.113.7")]
    [InlineData("::ffff:203.0.113.7", "203.0.113.7")]
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2::/64")]
    public void AnAddressIsCountedByItselfOrByItsIpv6Slash64(string address, string key) =>
        Assert.Equal(key, FixedWindowCounter.AddressKey(IPAddress.Parse(address)));

    [Fact]
    public void TwoAddressesOfOneIpv6HostShareACount() =>
        Assert.Equal(FixedWindowCounter.AddressKey(IPAddress.Parse("2001:db8::1")), FixedWindowCounter.AddressKey(IPAddress.Parse("2001:db8::ffff:1")));
}
