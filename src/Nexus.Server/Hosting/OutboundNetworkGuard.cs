using System.Net;
using System.Net.Sockets;
using IPNetwork = System.Net.IPNetwork;

namespace Nexus.Server.Hosting;

/// <summary>
/// Server-side request forgery defence for every outbound call to a URL an administrator set (provider endpoints,
/// OIDC discovery, STS, the Bridge's api_base_url, webhooks). Such a URL may name, or a DNS name may resolve to,
/// an address inside the deployment's network: loopback, link-local (169.254.0.0/16 with the cloud metadata
/// service, fe80::/10), private (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10) or unspecified
/// (0.0.0.0, ::) addresses, also in IPv4-mapped or NAT64/6to4 form. The check runs in the handler's
/// ConnectCallback: on the addresses the socket is about to connect to, after DNS resolution, so a name that
/// resolves differently the second time (DNS rebinding) cannot slip through. It runs once per new connection,
/// never per request, so pooled connections (the Bridge's) pay nothing.
/// <para>
/// Refused unless <see cref="NexusOptions.AllowedUpstreamNetworks"/> names them; loopback is also allowed
/// where <see cref="NexusOptions.AllowInsecureUpstreams"/> is (Development and Test by default, for local fakes).
/// Every failure to connect reads the same ("could not be reached"), so an error never tells whether an
/// internal port answered.
/// </para>
/// </summary>
internal sealed class OutboundNetworkGuard
{
    /// <summary>The one message for every address Nexus may not, or could not, connect to.</summary>
    public const string Unreachable = "The upstream could not be reached.";

    private static readonly IPNetwork[] Forbidden =
    [
        // IPv4 (RFC 6890 special-purpose registry: everything that is not a public unicast address).
        IPNetwork.Parse("0.0.0.0/8"),
        IPNetwork.Parse("10.0.0.0/8"),
        IPNetwork.Parse("100.64.0.0/10"),
        IPNetwork.Parse("127.0.0.0/8"),
        IPNetwork.Parse("169.254.0.0/16"),
        IPNetwork.Parse("172.16.0.0/12"),
        IPNetwork.Parse("192.0.0.0/24"),
        IPNetwork.Parse("192.0.2.0/24"),
        IPNetwork.Parse("192.168.0.0/16"),
        IPNetwork.Parse("198.18.0.0/15"),
        IPNetwork.Parse("198.51.100.0/24"),
        IPNetwork.Parse("203.0.113.0/24"),
        IPNetwork.Parse("224.0.0.0/4"),
        IPNetwork.Parse("240.0.0.0/4"),

        // IPv6.
        IPNetwork.Parse("::/96"), // unspecified, loopback and the deprecated IPv4-compatible form (::10.0.0.1)
        IPNetwork.Parse("64:ff9b:1::/48"), // local-use NAT64
        IPNetwork.Parse("100::/64"), // discard
        IPNetwork.Parse("2001::/32"), // Teredo (an IPv4 address hides inside)
        IPNetwork.Parse("2001:db8::/32"),
        IPNetwork.Parse("fc00::/7"), // unique local
        IPNetwork.Parse("fe80::/10"), // link-local
        IPNetwork.Parse("fec0::/10"), // site-local (deprecated)
        IPNetwork.Parse("ff00::/8"), // multicast
    ];

    private static readonly IPNetwork Nat64 = IPNetwork.Parse("64:ff9b::/96");
    private static readonly IPNetwork SixToFour = IPNetwork.Parse("2002::/16");

    private readonly IReadOnlyList<IPNetwork> allowed;
    private readonly bool allowLoopback;
    private readonly ILogger<OutboundNetworkGuard> logger;

    public OutboundNetworkGuard(NexusOptions options, IHostEnvironment environment, ILogger<OutboundNetworkGuard> logger)
    {
        allowed = TransportSecurity.ParseNetworks(options.AllowedUpstreamNetworks, out _);
        allowLoopback = options.AllowInsecureUpstreams ?? (environment.IsDevelopment() || environment.IsEnvironment("Test"));
        this.logger = logger;
    }

    /// <summary>Whether Nexus may open a connection to <paramref name="address"/>.</summary>
    public bool IsAllowed(IPAddress address)
    {
        address = Canonical(address);
        foreach (var network in allowed)
        {
            if (network.Contains(address) || (address.AddressFamily == AddressFamily.InterNetwork && network.Contains(address.MapToIPv6())))
            {
                return true;
            }
        }

        if (IPAddress.IsLoopback(address))
        {
            return allowLoopback;
        }

        foreach (var network in Forbidden)
        {
            if (network.Contains(address))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The IPv4 address inside an IPv4-mapped, NAT64 or 6to4 address; otherwise the address itself.</summary>
    private static IPAddress Canonical(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4();
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            Span<byte> bytes = stackalloc byte[16];
            address.TryWriteBytes(bytes, out _);
            if (Nat64.Contains(address))
            {
                return new IPAddress(bytes[12..]);
            }

            if (SixToFour.Contains(address))
            {
                return new IPAddress(bytes[2..6]);
            }

            if (address.ScopeId != 0)
            {
                return new IPAddress(bytes);
            }
        }

        return address;
    }

    /// <summary>Installs the check on a handler; every outbound handler for admin-set URLs goes through here.</summary>
    public SocketsHttpHandler Guard(SocketsHttpHandler handler)
    {
        handler.ConnectCallback = ConnectAsync;
        return handler;
    }

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var endpoint = context.DnsEndPoint;
        var addresses = await ResolveAsync(endpoint.Host, ct);

        // Through an egress proxy the socket goes to the proxy; the host the request names must pass as well. For https
        // the connection is a tunnel: the message is the client's CONNECT to the proxy's own URI, and the host it asks
        // the proxy for is in its Host header (RFC 9110 §9.3.6: CONNECT's target is the authority "host:port").
        var message = context.InitialRequestMessage;
        var requested = message.Method == HttpMethod.Connect ? AuthorityHost(message.Headers.Host) : message.RequestUri?.IdnHost;
        if (message.Method == HttpMethod.Connect && requested is null)
        {
            throw new HttpRequestException(HttpRequestError.ConnectionError, Unreachable);
        }

        if (requested is not null && !string.Equals(requested, endpoint.Host, StringComparison.OrdinalIgnoreCase))
        {
            await ResolveAsync(requested, ct);
        }

        SocketException? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, endpoint.Port), ct);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                last = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        logger.LogDebug("Connecting to {Host}:{Port} failed: {Error}", endpoint.Host, endpoint.Port, last?.SocketErrorCode);
        throw new HttpRequestException(HttpRequestError.ConnectionError, Unreachable);
    }

    /// <summary>The host of a CONNECT request's "host:port" ("[v6]:port" for an IPv6 literal), or null if it has none.</summary>
    private static string? AuthorityHost(string? authority) =>
        string.IsNullOrEmpty(authority) ? null
        : authority.StartsWith('[') ? (authority.IndexOf(']', StringComparison.Ordinal) is var close and > 0 ? authority[..(close + 1)] : null)
        : authority.LastIndexOf(':') is var colon and > 0 ? authority[..colon]
        : authority;

    /// <summary>Every address the name resolves to; all of them must be allowed, or none is used.</summary>
    private async ValueTask<IPAddress[]> ResolveAsync(string host, CancellationToken ct)
    {
        IPAddress[] addresses;
        if (IPAddress.TryParse(host.Trim('[', ']'), out var literal))
        {
            addresses = [literal];
        }
        else if (IsLocalhostName(host))
        {
            // RFC 6761 §6.3: localhost names resolve to loopback without asking DNS (which may not know
            // tenant.localhost); loopback is then allowed or refused like any other loopback address.
            addresses = [IPAddress.Loopback];
        }
        else
        {
            try
            {
                addresses = await Dns.GetHostAddressesAsync(host, ct);
            }
            catch (SocketException e)
            {
                logger.LogDebug("Resolving {Host} failed: {Error}", host, e.SocketErrorCode);
                throw new HttpRequestException(HttpRequestError.ConnectionError, Unreachable);
            }
        }

        if (addresses.Length == 0 || !Array.TrueForAll(addresses, IsAllowed))
        {
            // Logged for the operator (who may add the range to Nexus__AllowedUpstreamNetworks); the caller only
            // learns that the upstream could not be reached.
            logger.LogWarning("Refused to connect to {Host}: it resolves to a private, loopback or link-local address (allow it with Nexus__AllowedUpstreamNetworks).", host);
            throw new HttpRequestException(HttpRequestError.ConnectionError, Unreachable);
        }

        return addresses;
    }

    /// <summary>RFC 6761 §6.3: "localhost" and every name under it are loopback, whatever DNS would say.</summary>
    public static bool IsLocalhostName(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase);
}
