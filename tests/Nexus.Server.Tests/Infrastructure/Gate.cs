namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// Holds requests at a fake provider until the test lets them go, and tells the test when the first one got there:
/// a race staged by events (this request is now at the provider; now it may answer), never by sleeping. Once
/// released, it holds nothing more.
/// </summary>
public sealed class Gate
{
    private readonly TaskCompletionSource arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when a request reached the gate.</summary>
    public Task Arrived => arrived.Task;

    /// <summary>Lets every held request go on, and every later one through.</summary>
    public void Release() => released.TrySetResult();

    /// <summary>Where the fake provider waits; a request whose client goes away stops waiting.</summary>
    public async Task PassAsync(CancellationToken ct)
    {
        arrived.TrySetResult();
        await released.Task.WaitAsync(ct);
    }
}
