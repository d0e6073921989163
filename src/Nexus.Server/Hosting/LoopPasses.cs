namespace Nexus.Server.Hosting;

/// <summary>
/// Counts the completed passes of a background loop (the refresher, the webhook dispatcher), so that whoever needs to
/// know that the loop has looked at the current state (a test asserting that nothing happened) can wait for that
/// event instead of sleeping: a pass that started before a change may miss it, the next one cannot.
/// </summary>
public sealed class LoopPasses
{
    private long completed;
    private TaskCompletionSource next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public long Completed => Interlocked.Read(ref completed);

    /// <summary>Called by the loop at the end of each pass.</summary>
    public void PassCompleted()
    {
        Interlocked.Increment(ref completed);
        Interlocked.Exchange(ref next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>Completes once <paramref name="passes"/> more passes have ended after the call.</summary>
    public async Task WaitAsync(int passes, CancellationToken cancellationToken = default)
    {
        var target = Completed + passes;
        while (Completed < target)
        {
            await Volatile.Read(ref next).Task.WaitAsync(cancellationToken);
        }
    }
}
