using Nexus.Server.Audit;
using Nexus.Server.Vault;

namespace Nexus.Server.Tests.Audit;

/// <summary>Audit events list newest first by time, then id; their ids must sort in the order they were made.</summary>
public sealed class MonotonicUlidTests
{
    private static readonly DateTimeOffset Instant = DateTimeOffset.FromUnixTimeMilliseconds(1_767_225_600_123);

    [Fact]
    public void IdsMadeInTheSameMillisecondSortInTheOrderTheyWereMade()
    {
        var ulids = new MonotonicUlid();
        var ids = Enumerable.Range(0, 1000).Select(_ => ulids.Next("evt_", Instant)).ToList();
        for (var i = 1; i < ids.Count; i++)
        {
            Assert.True(string.CompareOrdinal(ids[i - 1], ids[i]) < 0, $"{ids[i - 1]} !< {ids[i]}");
        }

        Assert.All(ids, id => Assert.Equal(4 + 26, id.Length));
        Assert.All(ids, id => Assert.Equal(ids[0][..14], id[..14])); // one millisecond, one time part
    }

    [Fact]
    public void AClockThatStepsBackStillGivesIdsThatSortAfterTheLastOne()
    {
        var ulids = new MonotonicUlid();
        var later = ulids.Next("evt_", Instant.AddSeconds(5));
        var earlier = ulids.Next("evt_", Instant);
        Assert.True(string.CompareOrdinal(later, earlier) < 0);
        Assert.True(string.CompareOrdinal(earlier, ulids.Next("evt_", Instant.AddSeconds(6))) < 0);
    }

    [Fact]
    public void UlidTextSortsAsItsTimeAndRandomPartsDo()
    {
        Assert.Equal("x_" + new string('0', 26), SecretGenerator.Ulid("x_", 0, UInt128.Zero));
        Assert.Equal("x_" + new string('0', 25) + "1", SecretGenerator.Ulid("x_", 0, UInt128.One));
        Assert.Equal("x_000000000" + "1" + new string('Z', 16), SecretGenerator.Ulid("x_", 1, SecretGenerator.UlidRandomMask));
        var random = SecretGenerator.Ulid("x_", Instant);
        Assert.Equal(SecretGenerator.Ulid("x_", Instant.ToUnixTimeMilliseconds(), UInt128.Zero)[..12], random[..12]);
    }
}
