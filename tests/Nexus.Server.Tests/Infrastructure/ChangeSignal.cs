namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// What a fake server pulses whenever something a test may wait for changes (a request arrived, a counter moved):
/// <see cref="WaitUntilAsync"/> looks at its condition again on each pulse, not on a timer, and fails the test at
/// the deadline.
/// </summary>
public sealed class ChangeSignal
{
    // Completed (and replaced) on every pulse.
    private TaskCompletionSource changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Pulse() => Interlocked.Exchange(ref changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Returns once <paramref name="condition"/> holds; throws, naming <paramref name="what"/>, if it does not within the timeout (20 s).</summary>
    public async Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null, Func<string>? state = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            // Taken before looking, so that a change made in between completes it.
            var next = Volatile.Read(ref changed).Task;
            if (condition())
            {
                return;
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || await Task.WhenAny(next, Task.Delay(left)) != next)
            {
                throw new Xunit.Sdk.XunitException($"Timed out waiting: {what}{(state is null ? "" : "; " + state())}");
            }
        }
    }
}
