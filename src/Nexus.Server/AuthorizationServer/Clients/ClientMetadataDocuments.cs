using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Clients;

/// <summary>
/// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, used by MCP clients): a client whose
/// client_id is an https URL with a path is described by the JSON document at that URL. Nexus fetches it with no
/// redirects, within a size and a time limit, never from a private or loopback address (loopback http only where
/// Nexus:AllowInsecureUpstreams allows it, for tests), checks that its client_id is its URL, and stores what it says
/// as a public, self-registered application until its HTTP caching headers (bounded) say to fetch it again.
/// </summary>
internal sealed class ClientMetadataDocuments(
    ClientRegistry registry, IHttpClientFactory http, NexusOptions options, UpstreamPolicy upstream, RegistrationLimiter limiter, TimeProvider time,
    ILogger<ClientMetadataDocuments> logger, Hosting.OutboundNetworkGuard guard)
{
    public const string HttpClientName = "client-metadata-documents";

    /// <summary>Used when the document says nothing about caching.</summary>
    private static readonly TimeSpan DefaultLifetime = TimeSpan.FromMinutes(5);

    /// <summary>Whether a client_id is meant as a metadata document URL (and so is not looked up as a registered id only).</summary>
    public bool IsCandidate(string clientId) =>
        options.Registration.MetadataDocuments && (clientId.StartsWith("https://", StringComparison.Ordinal) || clientId.StartsWith("http://", StringComparison.Ordinal));

    /// <summary>Whether a stored metadata-document client must be fetched again before it is used for a new authorization.</summary>
    public bool IsStale(OAuthClient client) =>
        client.Registration == ClientRegistrations.MetadataDocument && !client.IsRevoked && (client.MetadataExpiresAt is null || client.MetadataExpiresAt <= time.GetUtcNow());

    /// <summary>The client the document at <paramref name="clientId"/> describes, fetched and stored; or why it cannot be used.</summary>
    public async Task<(OAuthClient? Client, string? Error)> ResolveAsync(string clientId, string address, CancellationToken ct)
    {
        if (UrlProblem(clientId) is { } problem)
        {
            return (null, problem);
        }

        if (limiter.TryAcquire(address) is not null)
        {
            return (null, "too many metadata documents were fetched for this address; try again later.");
        }

        var (document, fetchError, expiresAt) = await FetchAsync(clientId, ct);
        if (document is null)
        {
            return (null, fetchError);
        }

        using (document)
        {
            var root = document.RootElement;
            // Draft §4.1: the document's client_id MUST equal the URL it was fetched from (simple string comparison).
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("client_id", out var id) || id.ValueKind != JsonValueKind.String
                || !string.Equals(id.GetString(), clientId, StringComparison.Ordinal))
            {
                return (null, "its client_id does not equal the URL it was fetched from.");
            }

            var (metadata, _, description) = ClientMetadata.Parse(root, document: true);
            if (metadata is null)
            {
                return (null, description);
            }

            var now = time.GetUtcNow();
            await registry.SaveMetadataDocumentClientAsync(new OAuthClient(
                clientId, ClientKinds.Application, metadata.Name, null, metadata.Scopes, metadata.GrantTypes, Math.Min(3600, options.MaxAccessTokenLifetimeSeconds),
                now, now, now, null, ClientTypes.Public, metadata.RedirectUris, [], null, metadata.ClientUri, null, ClientRegistrations.MetadataDocument, expiresAt), ct);
            return (await registry.FindAsync(clientId, ct), null);
        }
    }

    /// <summary>Draft §3: https, a path, no fragment, no user information, no dot segments. Null when the URL may be fetched.</summary>
    private string? UrlProblem(string clientId)
    {
        if (clientId.Length > 2000 || !Uri.TryCreate(clientId, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            return "the client_id is not an absolute URL.";
        }

        if (uri.Scheme != Uri.UriSchemeHttps && !(uri.Scheme == Uri.UriSchemeHttp && upstream.AllowInsecure && IsLoopbackHost(uri)))
        {
            return "a client ID metadata document must be served over https.";
        }

        var afterAuthority = clientId[(clientId.IndexOf("//", StringComparison.Ordinal) + 2)..];
        var slash = afterAuthority.IndexOf('/', StringComparison.Ordinal);
        var path = slash < 0 ? "" : afterAuthority[slash..].Split('?')[0];
        if (path.Length <= 1)
        {
            return "a client ID metadata document URL must have a path.";
        }

        if (path.Split('/').Any(segment => segment is "." or ".."))
        {
            return "a client ID metadata document URL may not contain . or .. segments.";
        }

        if (clientId.Contains('#', StringComparison.Ordinal) || !string.IsNullOrEmpty(uri.UserInfo))
        {
            return "a client ID metadata document URL may not contain a fragment or user information.";
        }

        if (IPAddress.TryParse(uri.DnsSafeHost, out var literal) && !guard.IsAllowed(literal))
        {
            return "Nexus does not fetch metadata documents from private or loopback addresses.";
        }

        return null;
    }

    private static bool IsLoopbackHost(Uri uri) =>
        uri.IsLoopback || (IPAddress.TryParse(uri.DnsSafeHost, out var address) && IPAddress.IsLoopback(address));

    private async Task<(JsonDocument? Document, string? Error, DateTimeOffset ExpiresAt)> FetchAsync(string url, CancellationToken ct)
    {
        var registration = options.Registration;
        using var timeout = new Deadline(TimeSpan.FromSeconds(registration.MetadataDocumentTimeoutSeconds), time, ct);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            using var response = await http.CreateClient(HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if ((int)response.StatusCode is >= 300 and < 400)
            {
                return (null, "its URL answered with a redirect, and Nexus does not follow redirects for metadata documents.", default);
            }

            if (response.StatusCode != HttpStatusCode.OK)
            {
                return (null, $"its URL answered {(int)response.StatusCode} instead of the document.", default);
            }

            if (response.Content.Headers.ContentType?.MediaType is not { } mediaType
                || !(mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase)))
            {
                return (null, "the document is not served as application/json.", default);
            }

            var limit = registration.MaxMetadataDocumentBytes;
            var body = response.Content.Headers.ContentLength > limit ? null : await response.Content.ReadLimitedAsync(limit, timeout.Token);
            if (body is null)
            {
                return (null, $"the document is larger than {limit} bytes.", default);
            }

            if (Hosting.JsonBody.Check(System.Text.Encoding.UTF8.GetBytes(body)) is not null)
            {
                return (null, "the document is not valid JSON.", default);
            }

            return (JsonDocument.Parse(body), null, time.GetUtcNow() + Lifetime(response));
        }
        catch (JsonException)
        {
            return (null, "the document is not valid JSON.", default);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            logger.LogInformation("Client metadata document {Url} could not be fetched: timeout", url);
            return (null, NotFetched, default);
        }
        catch (HttpRequestException e)
        {
            // One answer for a refused address, a closed port, an unreachable host and a timeout: the caller is
            // anonymous, and telling these apart would let anyone probe which hosts and ports answer (issue 12 item 11).
            logger.LogInformation("Client metadata document {Url} could not be fetched: {Error}", url, e.HttpRequestError);
            return (null, NotFetched, default);
        }
    }

    private const string NotFetched = "its URL could not be fetched (Nexus fetches metadata documents only from public addresses, over https).";

    /// <summary>How long the document may be used: its Cache-Control (no-store and no-cache mean not at all) or Expires, bounded.</summary>
    private TimeSpan Lifetime(HttpResponseMessage response)
    {
        var max = TimeSpan.FromSeconds(options.Registration.MaxMetadataDocumentCacheSeconds);
        var cache = response.Headers.CacheControl;
        TimeSpan lifetime;
        if (cache is { NoStore: true } or { NoCache: true })
        {
            lifetime = TimeSpan.Zero;
        }
        else if (cache?.MaxAge is { } maxAge)
        {
            lifetime = maxAge;
        }
        else if (response.Content.Headers.Expires is { } expires)
        {
            lifetime = expires - (response.Headers.Date ?? time.GetUtcNow());
        }
        else
        {
            lifetime = DefaultLifetime;
        }

        return lifetime < TimeSpan.Zero ? TimeSpan.Zero : lifetime > max ? max : lifetime;
    }

    /// <summary>The HttpClient for documents: no redirects, no proxy, no decompression, and a connect-time address check.</summary>
    public static void AddHttpClient(IServiceCollection services) =>
        services.AddHttpClient(HttpClientName, c => c.DefaultRequestHeaders.UserAgent.ParseAdd("Nexus/1.0 (client metadata)"))
            // The same connect-time address check as every other outbound call to a URL someone else chose
            // (Hosting/OutboundNetworkGuard: after DNS resolution, every address, IPv4-mapped/NAT64/6to4 forms).
            .ConfigurePrimaryHttpMessageHandler(sp => sp.GetRequiredService<Hosting.OutboundNetworkGuard>().Guard(new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                UseProxy = false,
                AutomaticDecompression = DecompressionMethods.None,
                PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            }));
}
