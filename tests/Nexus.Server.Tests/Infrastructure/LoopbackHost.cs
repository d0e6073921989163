using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// Where the stand-ins for other services (providers, webhook receivers, sample apps) listen: a slim ASP.NET Core
/// host on a loopback port, logging warnings only.
/// </summary>
public static class LoopbackHost
{
    // Below Linux's ephemeral range (32768-60999 by default). A port the operating system picks for a listener comes
    // from that range, where every outgoing connection of the suite also takes its local port: between FreePort's
    // answer and the server's bind, a test's HTTP client could take the port first. Ports below the range are handed
    // out one after another, from a random start so that two runs on one machine rarely meet.
    private const int FirstPort = 20_000;
    private const int PortCount = 12_000;
    private static int next = Random.Shared.Next(PortCount);

    /// <summary>
    /// A loopback port nothing listens on right now, below the ephemeral range (no outgoing connection takes it), and
    /// never the same twice in a row within this process.
    /// </summary>
    public static int FreePort()
    {
        for (var attempt = 0; attempt < PortCount; attempt++)
        {
            var port = FirstPort + (int)((uint)Interlocked.Increment(ref next) % PortCount);
            if (IsFree(port))
            {
                return port;
            }
        }

        throw new InvalidOperationException($"No free loopback port from {FirstPort} to {FirstPort + PortCount - 1}.");
    }

    /// <summary>Whether nothing holds <paramref name="port"/> on loopback right now.</summary>
    public static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>A slim builder that listens on http://127.0.0.1:{port} (a free port unless given), and that URL.</summary>
    public static (WebApplicationBuilder Builder, string BaseUrl) CreateBuilder(int? port = null)
    {
        var baseUrl = $"http://127.0.0.1:{port ?? FreePort()}";
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(baseUrl);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        return (builder, baseUrl);
    }
}
