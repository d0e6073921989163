using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections.Refresh;

/// <summary>
/// When a connection's token is due for a refresh: pure arithmetic on Unix milliseconds, shared by the read path,
/// the background refresher and the re-check made under the row lock, so that all three always agree on whether a
/// token still needs refreshing (which is what makes a refresh done elsewhere be reused, not repeated).
/// </summary>
internal static class RefreshSchedule
{
    /// <summary>The margin of <paramref name="provider"/> (its override, else the deployment's), in milliseconds.</summary>
    public static long MarginMs(RefreshOptions options, Provider? provider) =>
        (provider?.Config.RefreshMarginSeconds ?? options.MarginSeconds) * 1000L;

    /// <summary>Whether Nexus can refresh at all: it holds a refresh token and the provider supports the grant.</summary>
    public static bool CanRefresh(bool hasRefreshToken, Provider? provider) =>
        // A machine-to-machine MCP server (client_credentials) has no refresh token: a new token is simply asked for.
        (hasRefreshToken || provider?.Config.Mcp?.IsClientCredentials == true) && provider is not null && provider.Config.RefreshSupported;

    /// <summary>
    /// The margin actually applied: never more than half of the token's lifetime (issued → expiry), so that a
    /// provider whose tokens live 60 s with a 300 s margin is refreshed every 30 s, not on every read.
    /// </summary>
    public static long EffectiveMarginMs(long marginMs, long issuedAtMs, long expiresAtMs) =>
        Math.Max(0, Math.Min(marginMs, (expiresAtMs - issuedAtMs) / 2));

    /// <summary>
    /// When a read must refresh before answering: at expiry minus the effective margin. Without a refresh token,
    /// at expiry (then the connection needs the user again). Null: never (the token does not expire).
    /// </summary>
    public static long? ReadDueAt(bool canRefresh, long issuedAtMs, long? expiresAtMs, long marginMs) =>
        expiresAtMs is not { } expires ? null
        : canRefresh ? expires - EffectiveMarginMs(marginMs, issuedAtMs, expires)
        : expires;

    /// <summary>
    /// When the background refresher should act: a little before reads would (by up to one polling interval, but
    /// at most half the effective margin, so that it can never refresh a token it has just obtained), or when the
    /// keep-alive interval since the last refresh has passed, whichever comes first. Null: never.
    /// </summary>
    public static long? BackgroundDueAt(bool canRefresh, long issuedAtMs, long? expiresAtMs, long marginMs, long intervalMs, long keepAliveMs)
    {
        if (!canRefresh)
        {
            return expiresAtMs;
        }

        long? due = null;
        if (expiresAtMs is { } expires)
        {
            var margin = EffectiveMarginMs(marginMs, issuedAtMs, expires);
            due = expires - margin - Math.Min(intervalMs, margin / 2);
        }

        if (keepAliveMs > 0 && (due is null || issuedAtMs + keepAliveMs < due))
        {
            due = issuedAtMs + keepAliveMs;
        }

        return due;
    }

    /// <summary>
    /// <see cref="BackgroundDueAt(bool, long, long, long, long, long)"/> with the deployment's settings and
    /// <paramref name="provider"/>'s margin, for a connection that holds a refresh token or not.
    /// </summary>
    public static long? BackgroundDueAt(RefreshOptions options, Provider provider, bool hasRefreshToken, long issuedAtMs, long? expiresAtMs) =>
        BackgroundDueAt(CanRefresh(hasRefreshToken, provider), issuedAtMs, expiresAtMs, MarginMs(options, provider),
            options.IntervalSeconds * 1000L, options.KeepAliveSeconds * 1000L);

    /// <summary>
    /// Delay before retry number <paramref name="failures"/> + 1: the base doubled per failure up to the cap, with
    /// "equal jitter" (half fixed, half random) so that connections that failed together do not retry together, and
    /// never sooner than a Retry-After the provider sent (RFC 9110 §10.2.3), which is honoured up to one day.
    /// </summary>
    public static TimeSpan RetryDelay(RefreshOptions options, int failures, TimeSpan? retryAfter, double random)
    {
        var exponent = Math.Min(Math.Max(failures - 1, 0), 30);
        var ceiling = Math.Min(options.MaxRetryDelaySeconds, options.RetryDelaySeconds * Math.Pow(2, exponent));
        var delay = TimeSpan.FromSeconds(ceiling / 2 + (random * ceiling / 2));
        if (retryAfter is { } asked && asked > delay)
        {
            delay = asked > TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : asked;
        }

        return delay;
    }
}
