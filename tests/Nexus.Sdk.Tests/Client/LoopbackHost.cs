using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Nexus.Sdk.Tests.Client;

/// <summary>
/// A real HTTP server on a loopback port (a stand-in Nexus Bridge or provider) for the redirect tests: every request
/// is recorded with its headers, then answered by <see cref="Respond"/>. Two of them are two different hosts as far as
/// a client is concerned (same address, different port: another origin).
/// </summary>
internal sealed class LoopbackHost : IDisposable
{
    private readonly HttpListener listener;
    private readonly Task loop;

    public LoopbackHost(Action<HttpListenerRequest, HttpListenerResponse> respond)
    {
        Respond = respond;
        for (var attempt = 0; ; attempt++)
        {
            var port = FreePort();
            listener = new HttpListener();
            listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                listener.Start();
                Url = new Uri($"http://127.0.0.1:{port}/");
                break;
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                listener.Close(); // the port was taken meanwhile: another one
            }
        }

        loop = ServeAsync();
    }

    /// <summary>The base URL, with a trailing slash.</summary>
    public Uri Url { get; } = null!;

    public Action<HttpListenerRequest, HttpListenerResponse> Respond { get; set; }

    /// <summary>Every request received: its method, path and query, headers (names in lower case) and body (UTF-8).</summary>
    public ConcurrentQueue<(string Method, string PathAndQuery, IReadOnlyDictionary<string, string> Headers, string Body)> Requests { get; } = new();

    public static void Redirect(HttpListenerResponse response, string location, HttpStatusCode status = HttpStatusCode.Found)
    {
        response.StatusCode = (int)status;
        response.Headers["Location"] = location;
    }

    private async Task ServeAsync()
    {
        while (true)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // stopped
            }

            var request = context.Request;
            var headers = request.Headers.AllKeys.Where(k => k is not null)
                .ToDictionary(k => k!.ToLowerInvariant(), k => request.Headers[k]!, StringComparer.Ordinal);
            string body;
            using (var reader = new StreamReader(request.InputStream, System.Text.Encoding.UTF8))
            {
                body = await reader.ReadToEndAsync().ConfigureAwait(false);
            }

            Requests.Enqueue((request.HttpMethod, request.Url!.PathAndQuery, headers, body));
            try
            {
                Respond(request, context.Response);
            }
            catch (Exception)
            {
                context.Response.StatusCode = 500;
            }

            context.Response.Close();
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        listener.Close();
        loop.Wait(TimeSpan.FromSeconds(5));
    }
}
