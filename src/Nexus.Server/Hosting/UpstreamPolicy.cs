using System.Net;

namespace Nexus.Server.Hosting;

/// <summary>
/// Which outbound URLs Nexus will call or send a browser to: providers' endpoints (Providers, Connections), client
/// metadata documents (AuthorizationServer), webhooks (Notifications), MCP servers (RemoteMcp), STS (Credentials).
/// These carry client secrets, codes and tokens, so they must be https; plain http is accepted only for loopback
/// hosts, and only where <see cref="NexusOptions.AllowInsecureUpstreams"/> allows it (by default in Development and
/// Test, for local fakes). It lives in Hosting, next to <see cref="OutboundNetworkGuard"/> (which checks the same
/// calls again after DNS resolution), so that no component depends on Providers for it.
/// </summary>
internal sealed class UpstreamPolicy(NexusOptions options, IHostEnvironment environment)
{
    /// <summary>The named HttpClient for every call to a provider.</summary>
    public const string HttpClientName = "nexus-upstream";

    public bool AllowInsecure { get; } = options.AllowInsecureUpstreams ?? (environment.IsDevelopment() || environment.IsEnvironment("Test"));

    /// <summary>Null when Nexus may use the URL; otherwise what is wrong with it.</summary>
    public string? Check(string? url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            return "must be an absolute URL.";
        }

        if (!string.IsNullOrEmpty(uri.UserInfo) || !string.IsNullOrEmpty(uri.Fragment))
        {
            return "may not contain user info or a fragment.";
        }

        if (uri.Scheme == Uri.UriSchemeHttps)
        {
            return null;
        }

        if (uri.Scheme != Uri.UriSchemeHttp)
        {
            return "must use https.";
        }

        if (!IsLoopback(uri))
        {
            return "must use https (plain http is accepted only for loopback test fakes).";
        }

        return AllowInsecure ? null : "must use https; plain http to loopback needs Nexus__AllowInsecureUpstreams=true.";
    }

    private static bool IsLoopback(Uri uri) =>
        uri.IsLoopback || OutboundNetworkGuard.IsLocalhostName(uri.IdnHost) || (IPAddress.TryParse(uri.DnsSafeHost, out var address) && IPAddress.IsLoopback(address));
}

internal static class UpstreamExtensions
{
    /// <summary>Provider calls never follow redirects: a redirect could carry a secret to a host nobody registered.</summary>
    public static IServiceCollection AddUpstreamHttpClient(this IServiceCollection services)
    {
        services.AddHttpClient(UpstreamPolicy.HttpClientName, (sp, client) =>
            {
                client.Timeout = TimeSpan.FromSeconds(sp.GetRequiredService<NexusOptions>().UpstreamTimeoutSeconds);
                client.DefaultRequestHeaders.UserAgent.ParseAdd("Nexus/1.0 (connection broker)");
            })
            .ConfigurePrimaryHttpMessageHandler(sp => sp.GetRequiredService<OutboundNetworkGuard>().Guard(new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                AutomaticDecompression = DecompressionMethods.All,
            }));
        return services;
    }

    /// <summary>
    /// Reads at most <paramref name="limit"/> bytes of a response body as UTF-8; null when it is larger. A body that
    /// breaks off before its length (HttpIOException) or does not decode as its Content-Encoding says
    /// (InvalidDataException) is an <see cref="HttpRequestException"/>, as a refused connection is: every caller already
    /// answers that as "no usable answer", where either would otherwise have escaped as a 500.
    /// </summary>
    public static async Task<string?> ReadLimitedAsync(this HttpContent content, int limit, CancellationToken ct)
    {
        try
        {
            await using var stream = await content.ReadAsStreamAsync(ct);
            var buffer = new byte[limit + 1];
            var total = 0;
            int read;
            while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), ct)) > 0)
            {
                total += read;
            }

            return total > limit ? null : System.Text.Encoding.UTF8.GetString(buffer, 0, total);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            throw new HttpRequestException(e is HttpIOException io ? io.HttpRequestError : HttpRequestError.InvalidResponse,
                "The answer's body broke off or could not be decoded.", e);
        }
    }
}
