using Microsoft.Data.Sqlite;
using Nexus.Server.Hosting;
using Npgsql;

namespace Nexus.Server.Data;

/// <summary>
/// Whether the database answers. A request that fails because it does not is answered 503 with Retry-After (see
/// DatabaseOutageAnswer), not 500; the outage is logged once when it starts and once when it ends, whatever the
/// number of requests in between; /readyz reports not-ready meanwhile. A probe pings the database every second
/// during an outage, so recovery needs no restart and no request.
/// </summary>
internal sealed class DatabaseHealth(NexusDatabase db, TimeProvider time, IHostApplicationLifetime lifetime, ILogger<DatabaseHealth> logger)
{
    /// <summary>What Retry-After says during an outage: the probe's pace and then some.</summary>
    public const int RetryAfterSeconds = 5;

    private int down;
    private int confirming;
    private long downSince;

    public bool IsDown => Volatile.Read(ref down) == 1;

    /// <summary>
    /// True for an exception that says the database cannot be reached or is going away (a refused or broken
    /// connection, a timeout, PostgreSQL classes 08 connection exception, 53 insufficient resources and 57P01-57P03
    /// shutdown / cannot connect now, SQLite unable to open or I/O errors), as opposed to a query's own failure.
    /// </summary>
    public static bool IsOutage(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case PostgresException pg:
                    return pg.SqlState.StartsWith("08", StringComparison.Ordinal) || pg.SqlState.StartsWith("53", StringComparison.Ordinal)
                        || pg.SqlState is "57P01" or "57P02" or "57P03";
                case NpgsqlException { IsTransient: true }:
                case System.Net.Sockets.SocketException:
                case TimeoutException:
                    return true;
                case SqliteException sqlite:
                    // SQLITE_IOERR (10), SQLITE_CANTOPEN (14), SQLITE_FULL (13).
                    return sqlite.SqliteErrorCode is 10 or 13 or 14;
            }
        }

        return false;
    }

    public void ReportOutage(Exception exception)
    {
        if (db.Engine == DatabaseEngine.Postgres)
        {
            // One confirmation at a time, none while an outage is on: the outage is logged once.
            if (!IsDown && Interlocked.CompareExchange(ref confirming, 1, 0) == 0)
            {
                _ = ConfirmOutageAsync(exception, time.GetTimestamp());
            }

            return;
        }

        if (Interlocked.CompareExchange(ref down, 1, 0) == 0)
        {
            Declare(exception, time.GetTimestamp());
        }
    }

    /// <summary>
    /// PostgreSQL: a failed operation starts an outage only if a new connection fails too. The pool's connections
    /// are dropped first: after a server restart every connection opened before it is dead, and one of them failing
    /// says nothing about the server now. So an operation that ran on such a connection, or one that reports its
    /// failure late, after the probe saw the server answer again, does not start (and log) a second outage.
    /// </summary>
    private async Task ConfirmOutageAsync(Exception exception, long failedAt)
    {
        var stopping = lifetime.ApplicationStopping;
        try
        {
            db.ClearPool();
            try
            {
                await PingAsync(stopping);
                logger.LogInformation("A database operation failed ({Reason}) but the database ({Database}) answers on a new connection: not an outage.",
                    Reason(exception), db.Description);
                return;
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception)
            {
                // A new connection fails too: the outage is real.
            }

            Volatile.Write(ref down, 1);
        }
        finally
        {
            Volatile.Write(ref confirming, 0);
        }

        Declare(exception, failedAt);
    }

    private void Declare(Exception exception, long since)
    {
        downSince = since;
        // Once per outage: the message (never a connection string) says what failed.
        logger.LogError("The database ({Database}) is unavailable: {Reason}. Requests that need it are answered 503 with Retry-After until it is back.",
            db.Description, Reason(exception));
        _ = ProbeUntilBackAsync();
    }

    /// <summary>For /readyz: false during an outage; otherwise a bounded ping.</summary>
    public async Task<bool> IsReadyAsync(CancellationToken ct)
    {
        if (IsDown)
        {
            return false;
        }

        try
        {
            await PingAsync(ct);
            return true;
        }
        catch (Exception e) when (!ct.IsCancellationRequested && IsOutage(e))
        {
            ReportOutage(e);
            return false;
        }
    }

    private async Task PingAsync(CancellationToken ct)
    {
        using var bounded = new Deadline(TimeSpan.FromSeconds(2), time, ct);
        try
        {
            await db.PingAsync(bounded.Token).WaitAsync(TimeSpan.FromSeconds(2), time, ct);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException("The database did not answer within 2 s.", e);
        }
    }

    private async Task ProbeUntilBackAsync()
    {
        var stopping = lifetime.ApplicationStopping;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), time, stopping);
                await PingAsync(stopping);
                Volatile.Write(ref down, 0);
                logger.LogWarning("The database ({Database}) is reachable again after {Seconds:0.#} s.", db.Description, time.GetElapsedTime(downSince).TotalSeconds);
                return;
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception)
            {
                // Still down (or shutting down); the next second tries again.
            }
        }
    }

    private static string Reason(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is PostgresException pg)
            {
                return $"{pg.SqlState} {pg.MessageText}";
            }

            if (e is System.Net.Sockets.SocketException socket)
            {
                return socket.Message;
            }
        }

        return exception.Message;
    }
}
