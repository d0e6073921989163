using Nexus.Server.Hosting;

namespace Nexus.Server.Accounts;

/// <summary>
/// Failed sign-ins (and setup-token guesses) per source address, across all accounts: one address cannot guess
/// passwords for many accounts, nor lock them all out one after the other (each account locks itself after
/// Identity's MaxFailedAccessAttempts, the per-account limit). Successes are never counted.
/// </summary>
internal sealed class SignInLimiter(NexusOptions options, TimeProvider time)
{
    private readonly FixedWindowCounter failures = new(time, () => TimeSpan.FromSeconds(options.FailedSignInWindowSeconds));

    public static string AddressOf(HttpContext context) => FixedWindowCounter.AddressKey(context);

    /// <summary>
    /// Counts an attempt as a failure before it is checked, so that attempts made at once cannot all pass the limit
    /// that a count after the check would let them through (each reads the count before any has failed). Returns how
    /// long the address must wait (nothing counted then), or null and a reservation that <see cref="Release"/> gives
    /// back when the attempt succeeds.
    /// </summary>
    private (TimeSpan? RetryAfter, long Reservation) Reserve(string address)
    {
        var limit = options.FailedSignInLimit;
        if (failures.RetryAfter(address, limit) is { } wait)
        {
            return (wait, 0);
        }

        var (counted, window) = failures.Count(address);
        if (counted > limit)
        {
            failures.Decrement(address, window);
            return (failures.RetryAfter(address, limit) ?? TimeSpan.FromSeconds(1), 0);
        }

        return (null, window);
    }

    /// <summary>Gives back a <see cref="Reserve"/>d attempt that succeeded: successes are never counted.</summary>
    private void Release(string address, long reservation) => failures.Decrement(address, reservation);

    /// <summary>
    /// One attempt from <paramref name="address"/> (a password, a setup token, an address at sign-up), counted before it
    /// is checked (<see cref="Reserve"/>) and given back unless <paramref name="counts"/> says its outcome is a failure;
    /// an attempt that throws (the database failed: no answer about it) is given back too. Null and how long to wait
    /// when the address is throttled, without running the attempt.
    /// </summary>
    public async Task<(T? Outcome, TimeSpan? RetryAfter)> AttemptAsync<T>(string address, Func<Task<T>> attempt, Func<T, bool> counts)
    {
        var (wait, reservation) = Reserve(address);
        if (wait is not null)
        {
            return (default, wait);
        }

        T outcome;
        try
        {
            outcome = await attempt();
        }
        catch
        {
            Release(address, reservation);
            throw;
        }

        if (!counts(outcome))
        {
            Release(address, reservation);
        }

        return (outcome, null);
    }
}
