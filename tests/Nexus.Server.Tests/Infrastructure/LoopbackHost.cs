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
    /// <summary>A port nothing listens on right now; the operating system picks it.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
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
