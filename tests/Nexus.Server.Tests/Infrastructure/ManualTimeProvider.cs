namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A clock that moves only when a test moves it, timers included: a timer is due when <see cref="Advance"/> takes the
/// clock past its due time, and its callback then runs on the advancing thread. It also tells the test when code under
/// test arms a timer (<see cref="ArmedAfterAsync"/>), so "the Bridge is now waiting on the provider" is an event to
/// await, and a timeout is reached by moving time past it, not by waiting that long.
/// </summary>
public sealed class ManualTimeProvider : TimeProvider
{
    private readonly Lock gate = new();
    // One Advance at a time, whole (a callback may advance again: the lock is reentrant); gate guards the state.
    private readonly Lock advancing = new();
    private readonly List<ManualTimer> timers = [];
    private readonly DateTimeOffset start = DateTimeOffset.UtcNow;
    private TimeSpan elapsed;
    private int arms;
    private TaskCompletionSource armed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>How many times a timer was set to a finite due time, since the start.</summary>
    public int Arms
    {
        get
        {
            lock (gate)
            {
                return arms;
            }
        }
    }

    /// <summary>How many timers are armed now (set to a due time, neither fired nor disposed since).</summary>
    public int Armed
    {
        get
        {
            lock (gate)
            {
                return timers.Count;
            }
        }
    }

    public override DateTimeOffset GetUtcNow()
    {
        lock (gate)
        {
            return start + elapsed;
        }
    }

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp()
    {
        lock (gate)
        {
            return elapsed.Ticks;
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Completes once a timer has been armed more than <paramref name="seen"/> times in all.</summary>
    public async Task ArmedAfterAsync(int seen, CancellationToken ct)
    {
        while (true)
        {
            Task next;
            lock (gate)
            {
                if (arms > seen)
                {
                    return;
                }

                next = armed.Task;
            }

            await next.WaitAsync(ct);
        }
    }

    /// <summary>Completes when a timer is armed, at once if one is.</summary>
    public async Task WhenArmedAsync(CancellationToken ct)
    {
        while (true)
        {
            Task next;
            lock (gate)
            {
                if (timers.Count > 0)
                {
                    return;
                }

                next = armed.Task;
            }

            await next.WaitAsync(ct);
        }
    }

    /// <summary>
    /// Moves the clock forward and runs, in due order, every timer that falls due on the way (on this thread, outside
    /// the provider's state lock, so a callback may arm timers or advance again). A callback that throws does not stop
    /// the others or the clock: its exception is rethrown when the clock has arrived.
    /// </summary>
    public void Advance(TimeSpan by)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(by, TimeSpan.Zero);
        List<Exception>? failures = null;
        lock (advancing)
        {
            TimeSpan target;
            lock (gate)
            {
                target = elapsed + by;
            }

            while (true)
            {
                ManualTimer? due = null;
                lock (gate)
                {
                    foreach (var timer in timers)
                    {
                        if (timer.DueAt <= target && (due is null || timer.DueAt < due.DueAt))
                        {
                            due = timer;
                        }
                    }

                    if (due is null)
                    {
                        elapsed = target > elapsed ? target : elapsed;
                        break;
                    }

                    elapsed = due.DueAt > elapsed ? due.DueAt : elapsed;
                    if (due.Period is { } period)
                    {
                        due.DueAt = elapsed + period;
                    }
                    else
                    {
                        timers.Remove(due);
                    }
                }

                try
                {
                    due.Fire();
                }
                catch (Exception e)
                {
                    (failures ??= []).Add(e);
                }
            }
        }

        if (failures is not null)
        {
            throw new AggregateException("A timer's callback failed.", failures);
        }
    }

    private void Schedule(ManualTimer timer, TimeSpan dueTime, TimeSpan period)
    {
        TaskCompletionSource? wake = null;
        lock (gate)
        {
            timers.Remove(timer);
            if (dueTime == Timeout.InfiniteTimeSpan || timer.Disposed)
            {
                return;
            }

            if (dueTime == TimeSpan.Zero && period == Timeout.InfiniteTimeSpan)
            {
                // Due at once, as a real timer would be: on the thread pool, not on the caller's thread.
                ThreadPool.QueueUserWorkItem(static t => t.Fire(), timer, preferLocal: false);
                return;
            }

            timer.DueAt = elapsed + dueTime;
            timer.Period = period == Timeout.InfiniteTimeSpan || period == TimeSpan.Zero ? null : period;
            timers.Add(timer);
            arms++;
            wake = armed;
            armed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        wake.TrySetResult();
    }

    private void Cancel(ManualTimer timer)
    {
        lock (gate)
        {
            timer.Disposed = true;
            timers.Remove(timer);
        }
    }

    private sealed class ManualTimer(ManualTimeProvider clock, TimerCallback callback, object? state) : ITimer
    {
        public TimeSpan DueAt { get; set; }

        public TimeSpan? Period { get; set; }

        public bool Disposed { get; set; }

        /// <summary>As a real timer's: false, and nothing armed, once disposed.</summary>
        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            clock.Schedule(this, dueTime, period);
            return !Disposed;
        }

        public void Fire() => callback(state);

        public void Dispose() => clock.Cancel(this);

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
