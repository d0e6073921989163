using System.Diagnostics;
using System.Globalization;

namespace Nexus.Server.Hosting;

/// <summary>
/// Where the time to "listening" goes (issue #20, footprint): the startup phases as milliseconds since the process
/// started, logged once at Debug when the server listens (<c>Logging__LogLevel__Nexus.Server.Hosting.StartupTimeline=Debug</c>):
/// <c>Startup timeline (ms since the process started, CPU ms of all threads in brackets): configuration read 180 [150],
/// host built 420 [390], …, listening 760 [900]</c>. On a machine shared with other work the CPU figures move less than
/// the wall-clock ones.
/// One instance per host (the tests run many hosts in one process). bench/footprint.sh measures the time to the first
/// 200 from /readyz from the outside; this says which phase to look at.
/// </summary>
internal sealed class StartupTimeline
{
    private readonly DateTime processStarted = ProcessStart();
    private readonly List<(string Phase, double Milliseconds, double CpuMilliseconds)> marks = [];

    public void Mark(string phase)
    {
        var elapsed = (DateTime.UtcNow - processStarted).TotalMilliseconds;
        lock (marks)
        {
            marks.Add((phase, elapsed, Environment.CpuUsage.TotalTime.TotalMilliseconds));
        }
    }

    public override string ToString()
    {
        lock (marks)
        {
            return string.Join(", ", marks.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Phase} {m.Milliseconds:0} [{m.CpuMilliseconds:0}]")));
        }
    }

    private static DateTime ProcessStart()
    {
        try
        {
            using var process = Process.GetCurrentProcess();
            return process.StartTime.ToUniversalTime();
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or System.ComponentModel.Win32Exception)
        {
            // Unknown on this platform: the phases are then relative to the first mark's moment.
            return DateTime.UtcNow;
        }
    }
}
