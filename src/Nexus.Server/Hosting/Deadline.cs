namespace Nexus.Server.Hosting;

/// <summary>
/// A token cancelled when a delay has passed on the injected clock, or when the caller's token is
/// cancelled, whichever comes first. It replaces <c>CreateLinkedTokenSource(ct)</c> + <c>CancelAfter(delay)</c>, whose
/// timer always runs on the system clock: with this one a test can move time instead of waiting for it, and every
/// network deadline in Nexus follows the same <see cref="TimeProvider"/> as the rest of its time.
/// </summary>
internal sealed class Deadline : IDisposable
{
    private readonly CancellationTokenSource source;
    private readonly CancellationTokenRegistration callerGone;
    private readonly CancellationToken caller;

    public Deadline(TimeSpan delay, TimeProvider time, CancellationToken ct)
    {
        source = new CancellationTokenSource(delay, time);
        caller = ct;
        // Registered after the timer: a caller already gone cancels at once, as a linked source would.
        callerGone = ct.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), source);
    }

    public CancellationToken Token => source.Token;

    /// <summary>The delay ran out (and the caller had not given up first).</summary>
    public bool Expired => source.IsCancellationRequested && !caller.IsCancellationRequested;

    public void Dispose()
    {
        // The registration first: it waits for a cancellation in progress, which then finds the source not yet disposed.
        callerGone.Dispose();
        source.Dispose();
    }
}
