using Nexus.Server.Connections.Refresh;
using Nexus.Server.Hosting;

namespace Nexus.Server.Tests.Connections.Refresh;

/// <summary>The arithmetic every refresh decision rests on, and the classification of provider failures.</summary>
public sealed class RefreshScheduleTests
{
    private const long Hour = 3_600_000;

    [Fact]
    public void AReadRefreshesAtExpiryMinusTheMarginButNeverBeforeHalfTheLifetime()
    {
        Assert.Equal(Hour - 300_000, RefreshSchedule.ReadDueAt(true, 0, Hour, 300_000));
        // 60 s tokens with a 300 s margin: at 30 s, not at once (which would refresh on every read, forever).
        Assert.Equal(30_000, RefreshSchedule.ReadDueAt(true, 0, 60_000, 300_000));
        Assert.Equal(Hour, RefreshSchedule.ReadDueAt(true, 0, Hour, 0));
        // Without a refresh token the token is only "due" when it has expired; without expiry, never.
        Assert.Equal(Hour, RefreshSchedule.ReadDueAt(false, 0, Hour, 300_000));
        Assert.Null(RefreshSchedule.ReadDueAt(true, 0, null, 300_000));
    }

    [Fact]
    public void TheBackgroundLooksAheadByOneIntervalButNeverRefreshesATokenItJustGot()
    {
        Assert.Equal(Hour - 300_000 - 5_000, RefreshSchedule.BackgroundDueAt(true, 0, Hour, 300_000, 5_000, 0));
        // 8 s tokens, 5 s interval: margin 4 s, look-ahead at most half of it.
        Assert.Equal(8_000 - 4_000 - 2_000, RefreshSchedule.BackgroundDueAt(true, 0, 8_000, 300_000, 5_000, 0));
        // Keep-alive wins when it comes first; it is the only schedule of a token that does not expire.
        Assert.Equal(86_400_000, RefreshSchedule.BackgroundDueAt(true, 0, 30 * 86_400_000L, 300_000, 5_000, 86_400_000));
        Assert.Equal(86_400_000, RefreshSchedule.BackgroundDueAt(true, 0, null, 300_000, 5_000, 86_400_000));
        Assert.Null(RefreshSchedule.BackgroundDueAt(true, 0, null, 300_000, 5_000, 0));
        // Not refreshable: looked at when it expires (then it needs attention).
        Assert.Equal(Hour, RefreshSchedule.BackgroundDueAt(false, 0, Hour, 300_000, 5_000, 86_400_000));
    }

    [Fact]
    public void RetriesBackOffExponentiallyWithJitterUpToTheCapAndHonourRetryAfter()
    {
        var options = new RefreshOptions { RetryDelaySeconds = 2, MaxRetryDelaySeconds = 600 };
        Assert.Equal(TimeSpan.FromSeconds(1), RefreshSchedule.RetryDelay(options, 1, null, 0));
        Assert.Equal(TimeSpan.FromSeconds(2), RefreshSchedule.RetryDelay(options, 1, null, 1));
        Assert.Equal(TimeSpan.FromSeconds(8), RefreshSchedule.RetryDelay(options, 4, null, 0));
        Assert.Equal(TimeSpan.FromSeconds(16), RefreshSchedule.RetryDelay(options, 4, null, 1));
        Assert.Equal(TimeSpan.FromSeconds(600), RefreshSchedule.RetryDelay(options, 40, null, 1));
        Assert.Equal(TimeSpan.FromSeconds(300), RefreshSchedule.RetryDelay(options, 40, null, 0));
        Assert.Equal(TimeSpan.FromSeconds(120), RefreshSchedule.RetryDelay(options, 1, TimeSpan.FromSeconds(120), 0));
        Assert.Equal(TimeSpan.FromDays(1), RefreshSchedule.RetryDelay(options, 1, TimeSpan.FromDays(30), 0));
    }

    [Theory]
    [InlineData(400, "invalid_grant", "rejected")]
    [InlineData(400, "invalid_scope", "rejected")]
    [InlineData(400, "invalid_request", "rejected")]
    [InlineData(400, null, "rejected")]
    [InlineData(200, "invalid_refresh_token", "rejected")] // Slack, with HTTP 200
    [InlineData(200, "bad_refresh_token", "rejected")] // GitHub, with HTTP 200
    [InlineData(401, "invalid_client", "misconfigured")]
    [InlineData(401, null, "misconfigured")]
    [InlineData(400, "unauthorized_client", "misconfigured")]
    [InlineData(500, null, "transient")]
    [InlineData(503, "invalid_grant", "transient")]
    [InlineData(429, null, "transient")]
    [InlineData(408, null, "transient")]
    [InlineData(200, "ratelimited", "transient")]
    [InlineData(400, "temporarily_unavailable", "transient")]
    [InlineData(200, null, "transient")] // 200 without a token: a proxy page, not an answer
    [InlineData(null, null, "transient")] // no answer at all
    public void ProviderFailuresAreClassifiedByStatusAndErrorCode(int? status, string? error, string expected) =>
        Assert.Equal(expected, RefreshClient.Classify(status, error).ToString().ToLowerInvariant());
}
