using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Nexus.Server.Hosting;

namespace Nexus.Server.RemoteMcp;

/// <summary>
/// Why connecting an MCP server stopped; the message is safe to show the administrator, and an assistant
/// (add_mcp_server's answer). Many name what the server's documents said (its resource, issuer, URLs), so the message
/// is one line of at most <see cref="MaxLength"/> characters: a hostile server's metadata cannot write paragraphs of
/// instructions, or 256 KiB of them, into the answer.
/// </summary>
internal sealed class McpDiscoveryException(string message) : Exception(QuotedText.OneLine(message, MaxLength))
{
    public const int MaxLength = 600;
}

/// <summary>One answer of an MCP server or its metadata: status, WWW-Authenticate fields and (for 200) the JSON body.</summary>
internal sealed record McpFetched(int Status, IReadOnlyList<string> Challenges, JsonElement? Json);

/// <summary>
/// Every outbound request of discovery and registration (issue 15 item 8, SSRF): https only (plain http to loopback
/// only where Nexus:AllowInsecureUpstreams allows it), addresses checked after DNS by <see cref="OutboundNetworkGuard"/>
/// (no private, link-local or loopback addresses), redirects followed only within the origin of the URL asked for,
/// at most <see cref="MaxRedirects"/> of them, and a size and time limit on every answer.
/// </summary>
internal sealed class McpMetadataFetcher(IHttpClientFactory httpFactory, UpstreamPolicy policy, NexusOptions options, TimeProvider time, ILogger<McpMetadataFetcher> logger)
{
    public const string HttpClientName = "nexus-mcp-metadata";
    private const int MaxRedirects = 3;

    public static void AddHttpClient(IServiceCollection services) =>
        services.AddHttpClient(HttpClientName, (sp, client) =>
            {
                client.Timeout = Timeout.InfiniteTimeSpan; // each fetch has its own limit (Nexus:Mcp:MetadataTimeoutSeconds)
                client.DefaultRequestHeaders.UserAgent.ParseAdd("Nexus/1.0 (MCP client)");
            })
            .ConfigurePrimaryHttpMessageHandler(sp => sp.GetRequiredService<OutboundNetworkGuard>().Guard(new SocketsHttpHandler
            {
                // Redirects are followed by hand, only within the origin (below).
                AllowAutoRedirect = false,
                UseCookies = false,
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                AutomaticDecompression = DecompressionMethods.All,
            }));

    /// <summary>Null when Nexus may fetch the URL; otherwise why not.</summary>
    public string? UrlProblem(string url) => policy.Check(url);

    /// <summary>GET a JSON metadata document. A 200 without a JSON object is an error; other statuses come back for the caller to judge.</summary>
    public Task<McpFetched> GetJsonAsync(string url, CancellationToken ct) => SendAsync(HttpMethod.Get, url, null, null, ct);

    /// <summary>Sends a request (a probe or a registration) and reads the answer within the limits.</summary>
    public async Task<McpFetched> SendAsync(HttpMethod method, string url, HttpContent? content, Action<HttpRequestMessage>? prepare, CancellationToken ct)
    {
        if (UrlProblem(url) is { } problem)
        {
            throw new McpDiscoveryException($"{url} {problem}");
        }

        var origin = new Uri(url);
        var target = origin;
        using var timeout = new Deadline(TimeSpan.FromSeconds(options.Mcp.MetadataTimeoutSeconds), time, ct);
        try
        {
            for (var hop = 0; ; hop++)
            {
                using var request = new HttpRequestMessage(method, target) { Content = content };
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
                prepare?.Invoke(request);
                using var response = await httpFactory.CreateClient(HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                var status = (int)response.StatusCode;
                if (status is >= 300 and < 400 && response.Headers.Location is { } location)
                {
                    var next = location.IsAbsoluteUri ? location : new Uri(target, location);
                    // Issue 15 item 8: a redirect may not carry Nexus to another origin (scheme, host and port,
                    // RFC 6454 §4), where the metadata of a server it was not asked to trust would come from.
                    if (!SameOrigin(origin, next))
                    {
                        throw new McpDiscoveryException($"{url} redirected to another origin ({next.GetLeftPart(UriPartial.Authority)}); Nexus follows redirects only within the same origin.");
                    }

                    if (hop >= MaxRedirects || method != HttpMethod.Get)
                    {
                        throw new McpDiscoveryException($"{url} redirected too often (or redirected a {method} request).");
                    }

                    target = next;
                    continue;
                }

                var challenges = response.Headers.WwwAuthenticate.Select(h => h.ToString()).ToList();
                if (response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var raw))
                {
                    challenges = raw.ToList();
                }

                if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.Created))
                {
                    return new McpFetched(status, challenges, null);
                }

                var limit = options.Mcp.MaxMetadataBytes;
                var body = response.Content.Headers.ContentLength > limit ? null : await response.Content.ReadLimitedAsync(limit, timeout.Token);
                if (body is null)
                {
                    throw new McpDiscoveryException($"{target} answered more than {limit} bytes (Nexus:Mcp:MaxMetadataBytes).");
                }

                JsonElement? json = null;
                try
                {
                    using var document = JsonDocument.Parse(body);
                    if (document.RootElement.ValueKind == JsonValueKind.Object)
                    {
                        json = document.RootElement.Clone();
                    }
                }
                catch (JsonException)
                {
                    // not JSON: the caller decides whether it needed JSON (an MCP probe may answer an SSE stream)
                }

                return new McpFetched(status, challenges, json);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new McpDiscoveryException($"{url} did not answer within {options.Mcp.MetadataTimeoutSeconds} s (Nexus:Mcp:MetadataTimeoutSeconds).");
        }
        catch (HttpRequestException e)
        {
            // One message for refused, unreachable, private and timed out (OutboundNetworkGuard): which one it was would
            // tell whether an internal port answered. The operator's log has the reason.
            logger.LogInformation("MCP metadata fetch of {Url} failed: {Error}", url, e.HttpRequestError);
            throw new McpDiscoveryException($"{url} could not be reached (Nexus connects only to public addresses, over https).");
        }
    }

    public static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase) && string.Equals(a.IdnHost, b.IdnHost, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;
}
