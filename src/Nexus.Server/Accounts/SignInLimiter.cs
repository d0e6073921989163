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

    /// <summary>How long the address must wait, or null when it may try.</summary>
    public TimeSpan? RetryAfter(string address) => failures.RetryAfter(address, options.FailedSignInLimit);

    public void RecordFailure(string address) => failures.Increment(address);
}
