using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// Slows down secret guessing at the token endpoint: after too many failed client authentications from one
/// address (for one client id, or in total) the address is refused for the rest of the window. Successful
/// requests are never counted, so a busy legitimate client is never throttled by this.
/// </summary>
internal sealed class FailedAuthenticationLimiter(NexusOptions options, TimeProvider time)
{
    private readonly FixedWindowCounter failures = new(time, () => TimeSpan.FromSeconds(options.FailedClientAuthenticationWindowSeconds));

    /// <summary>Returns how long the caller must wait, or null when it may try.</summary>
    public TimeSpan? RetryAfter(string address, string clientId) =>
        failures.RetryAfter(PerClient(address, clientId), options.FailedClientAuthenticationLimit)
        ?? failures.RetryAfter(address, options.FailedClientAuthenticationLimit * 10);

    public void RecordFailure(string address, string clientId)
    {
        failures.Increment(PerClient(address, clientId));
        failures.Increment(address);
    }

    /// <summary>
    /// An attempt with input no client sends (a NUL character in its credentials or parameters): it names no client
    /// that could be looked up, so it counts against the address only.
    /// </summary>
    public void RecordMalformed(string address) => failures.Increment(address);

    private static string PerClient(string address, string clientId) => address + "|" + clientId;
}
