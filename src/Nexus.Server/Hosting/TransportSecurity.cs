using System.Net;
using Microsoft.AspNetCore.CookiePolicy;
using Microsoft.AspNetCore.HttpOverrides;
using IPNetwork = System.Net.IPNetwork;

namespace Nexus.Server.Hosting;

/// <summary>
/// Nexus behind a TLS-terminating proxy: Kestrel sees plain http, the browser sees https. Three things follow.
/// <list type="bullet">
/// <item>Forwarded headers (X-Forwarded-For, X-Forwarded-Proto) are believed only from the proxies
/// <see cref="NexusOptions.TrustedProxies"/> names; with none named (the default) they are ignored, since any
/// client could send them.</item>
/// <item>Whenever BASE_URL is https, every cookie Nexus sets (session, antiforgery, upstream sign-in) is Secure,
/// whatever scheme the request arrived with, so it never travels over plain http.</item>
/// <item>Whenever BASE_URL is https, responses carry Strict-Transport-Security (RFC 6797).</item>
/// </list>
/// The Bridge's short-circuited routes run before this middleware: they set no cookies, are called by agents
/// rather than browsers, and do not read the caller's address or scheme, so they skip its cost.
/// </summary>
internal static class TransportSecurity
{
    public static IReadOnlyList<IPNetwork> ParseNetworks(string? value, out string? invalid)
    {
        invalid = null;
        var networks = new List<IPNetwork>();
        foreach (var entry in (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (IPNetwork.TryParse(entry, out var network))
            {
                networks.Add(network);
            }
            else if (IPAddress.TryParse(entry, out var address))
            {
                networks.Add(new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128));
            }
            else
            {
                invalid = entry;
                return [];
            }
        }

        return networks;
    }

    public static bool IsHttpsDeployment(NexusOptions options) =>
        Uri.TryCreate(options.BaseUrl, UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttps;

    public static IServiceCollection AddTransportSecurity(this IServiceCollection services)
    {
        services.AddOptions<ForwardedHeadersOptions>().Configure<NexusOptions>((o, nexus) =>
        {
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            // ASP.NET Core trusts loopback by default; Nexus trusts exactly what the operator named.
            o.KnownIPNetworks.Clear();
            o.KnownProxies.Clear();
            foreach (var network in ParseNetworks(nexus.TrustedProxies, out _))
            {
                o.KnownIPNetworks.Add(network);
            }

            // A chain of trusted proxies is walked from the nearest one until the first address that is not trusted.
            o.ForwardLimit = null;
        });
        services.AddOptions<CookiePolicyOptions>().Configure<NexusOptions>((o, nexus) =>
        {
            o.Secure = IsHttpsDeployment(nexus) ? CookieSecurePolicy.Always : CookieSecurePolicy.None;
            o.HttpOnly = HttpOnlyPolicy.None;
            o.MinimumSameSitePolicy = SameSiteMode.Unspecified;
        });
        return services;
    }

    public static WebApplication UseTransportSecurity(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<NexusOptions>();
        if (ParseNetworks(options.TrustedProxies, out _).Count > 0)
        {
            app.UseForwardedHeaders();
        }

        if (IsHttpsDeployment(options))
        {
            app.UseCookiePolicy();
            if (options.HstsMaxAgeSeconds > 0)
            {
                // RFC 6797 §6.1. No includeSubDomains: other hosts under the operator's domain are not Nexus's to decide.
                var value = $"max-age={options.HstsMaxAgeSeconds}";
                app.Use((context, next) =>
                {
                    context.Response.Headers.StrictTransportSecurity = value;
                    return next(context);
                });
            }
        }

        return app;
    }
}
