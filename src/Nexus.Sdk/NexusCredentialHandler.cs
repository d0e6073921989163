using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Nexus.Sdk;

/// <summary>
/// A <see cref="DelegatingHandler"/> that puts a Nexus connection's credential on every request (see
/// <see cref="NexusCredential.ApplyAsync"/>). When the provider answers 401 and the request can be sent again (no
/// body, or a body that serializes again), it renews the credential once
/// (<see cref="NexusClient.RenewCredentialsAsync(string, NexusCredential, CancellationToken)"/>: a forced refresh for
/// OAuth 2.0, shared by every request of the connection refused the same credential at the same moment, so a burst of
/// 401s costs one <c>POST /v1/refresh</c>) and retries once; a renewal the provider rejects surfaces as
/// <see cref="NexusAttentionRequiredException"/>. A renewal that brings back the same values (an API key not captured
/// anew, an OAuth 2.0 connection without a refresh token) is not retried: the provider's 401 is returned.
/// </summary>
/// <remarks>
/// Redirects: the handler follows them itself, and only within the origin (scheme, host and port) of the request
/// it was given, applying the credential again on each hop (a SigV4 signature is made anew for the new path). A
/// redirect to another origin comes back to the caller as it is, as the Go SDK's <c>HTTPClient</c> does, so the
/// credential never reaches another host. For that it turns off <c>AllowAutoRedirect</c> on the
/// <see cref="SocketsHttpHandler"/> or <see cref="HttpClientHandler"/> under it before its first request (at the end
/// of any <see cref="DelegatingHandler"/> chain), and follows at most <see cref="MaxRedirects"/> redirects (fewer when
/// that handler's <c>MaxAutomaticRedirections</c> is lower, none when it had them off); one more is an
/// <see cref="HttpRequestException"/>, as fetch and the Go and TypeScript SDKs fail (Python's requests, httpx and
/// urllib fail too, after their own limits). Another kind of primary handler is left as it is and must not follow
/// redirects itself: an answer it got by following one to another origin (its
/// <see cref="HttpResponseMessage.RequestMessage"/> elsewhere) throws <see cref="InvalidOperationException"/>, since
/// the credential went there with it.
/// </remarks>
public sealed class NexusCredentialHandler : DelegatingHandler
{
    /// <summary>Set on a request (<c>request.Options.Set(NexusCredentialHandler.ConnectionIdOption, id)</c>) to choose its connection.</summary>
    public static readonly HttpRequestOptionsKey<string> ConnectionIdOption = new("Nexus.ConnectionId");

    private readonly NexusClient client;
    private readonly Func<HttpRequestMessage, string?>? connectionId;
    private readonly Lock gate = new();
    private int handlerRedirects = -1; // -1: the handler below has not been looked at yet

    /// <summary>As fetch and the Go and TypeScript SDKs: at most this many redirects are followed in one request; one more is an error.</summary>
    public const int MaxRedirects = 20;

    /// <summary>A handler for one connection (a request's <see cref="ConnectionIdOption"/> still overrides it).</summary>
    public NexusCredentialHandler(NexusClient client, string? connectionId = null)
        : this(client, connectionId is null ? null : _ => connectionId)
    {
    }

    /// <summary>A handler that picks each request's connection (a request's <see cref="ConnectionIdOption"/> still overrides it).</summary>
    public NexusCredentialHandler(NexusClient client, Func<HttpRequestMessage, string?>? connectionId)
    {
        ArgumentNullException.ThrowIfNull(client);
        this.client = client;
        this.connectionId = connectionId;
    }

    /// <inheritdoc/>
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var id = request.Options.TryGetValue(ConnectionIdOption, out var chosen) ? chosen : connectionId?.Invoke(request);
        if (string.IsNullOrEmpty(id))
        {
            throw new InvalidOperationException("No Nexus connection for this request: give the handler a connection id or set NexusCredentialHandler.ConnectionIdOption on the request.");
        }

        var follow = Math.Min(FollowLimit(), MaxRedirects);
        var origin = request.RequestUri;
        var response = await SendWithCredentialAsync(request, id, cancellationToken).ConfigureAwait(false);
        for (var hop = 0; follow > 0 && origin is not null && Target(request, response, origin) is { } target; hop++)
        {
            if (hop == follow)
            {
                var status = response.StatusCode;
                response.Dispose();
                throw new HttpRequestException(HttpRequestError.ConfigurationLimitExceeded, $"Too many redirects (more than {follow}).", null, status);
            }

            if (!NextHop(request, response, target))
            {
                break;
            }

            response.Dispose();
            response = await SendWithCredentialAsync(request, id, cancellationToken).ConfigureAwait(false);
        }

        return response;
    }

    /// <summary>
    /// How many redirects the primary handler would have followed, whose own following is turned off once, before the
    /// first request (see <see cref="Redirects.TurnOff"/>).
    /// </summary>
    private int FollowLimit()
    {
        if (Volatile.Read(ref handlerRedirects) is var known and >= 0)
        {
            return known;
        }

        lock (gate)
        {
            if (handlerRedirects < 0)
            {
                Volatile.Write(ref handlerRedirects, Redirects.TurnOff(InnerHandler));
            }

            return handlerRedirects;
        }
    }

    /// <summary>
    /// Where <paramref name="response"/> redirects <paramref name="request"/>, when it is a redirect to follow: one to
    /// another origin than <paramref name="origin"/> is not (null), since the credential applied on the next hop would
    /// go to that host (Go's HTTPClient stops there too, and hands the redirect back).
    /// </summary>
    private static Uri? Target(HttpRequestMessage request, HttpResponseMessage response, Uri origin)
    {
        var status = (int)response.StatusCode;
        if (status is not (301 or 302 or 303 or 307 or 308) || response.Headers.Location is not { } location || request.RequestUri is not { IsAbsoluteUri: true } current)
        {
            return null;
        }

        var target = location.IsAbsoluteUri ? location : new Uri(current, location);
        return Redirects.SameOrigin(target, origin) ? target : null;
    }

    /// <summary>
    /// Points <paramref name="request"/> at <paramref name="target"/>, where <paramref name="response"/> redirects it
    /// (as fetch and .NET's own redirect handling do: 301/302 after POST and 303 become a GET without body), and says
    /// whether it can go: a redirect that keeps a body which cannot be sent again is not followed.
    /// </summary>
    private static bool NextHop(HttpRequestMessage request, HttpResponseMessage response, Uri target)
    {
        var status = (int)response.StatusCode;
        var toGet = (status is 301 or 302 && request.Method == HttpMethod.Post) || (status == 303 && request.Method != HttpMethod.Head);
        if (!toGet && !Requests.CanReplay(request.Content))
        {
            return false; // 307/308 keep the body, and this one cannot be sent again
        }

        request.RequestUri = target;
        if (toGet)
        {
            request.Method = HttpMethod.Get;
            request.Content = null;
        }

        return true;
    }

    /// <summary>Applies the connection's credential and sends; after a provider 401, renews it once and sends again.</summary>
    private async Task<HttpResponseMessage> SendWithCredentialAsync(HttpRequestMessage request, string id, CancellationToken cancellationToken)
    {
        var credential = await client.GetCredentialsAsync(id, cancellationToken).ConfigureAwait(false);
        await credential.ApplyAsync(request, client.Time, cancellationToken).ConfigureAwait(false);
        var response = await SendOnOriginAsync(request, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Unauthorized || !Requests.CanReplay(request.Content))
        {
            return response;
        }

        // Single-flight: every request refused this credential at the same moment shares one renewal.
        NexusCredential renewed;
        try
        {
            renewed = await client.RenewCredentialsAsync(id, credential, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            response.Dispose();
            throw;
        }

        if (renewed.HasSameValues(credential))
        {
            return response; // the same credential would be refused again (or there was nothing to refresh): the 401 stands
        }

        response.Dispose();
        await renewed.ApplyAsync(request, client.Time, cancellationToken).ConfigureAwait(false);
        return await SendOnOriginAsync(request, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends <paramref name="request"/>, which carries the credential, down the chain. A primary handler this handler
    /// could not turn redirects off on (see <see cref="Redirects.TurnOff"/>) may have followed one itself, out of its
    /// sight: an answer from another origin than the request's means the credential went there, and is not passed
    /// over in silence.
    /// </summary>
    private async Task<HttpResponseMessage> SendOnOriginAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var sentTo = request.RequestUri;
        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        if (sentTo is { IsAbsoluteUri: true } && response.RequestMessage?.RequestUri is { IsAbsoluteUri: true } final && !Redirects.SameOrigin(final, sentTo))
        {
            response.Dispose();
            throw new InvalidOperationException($"The handler under NexusCredentialHandler followed a redirect from {sentTo.Scheme}://{sentTo.Authority} to "
                + $"{final.Scheme}://{final.Authority}, which received the connection's credential with it. Give it a primary handler that does not follow "
                + "redirects (a SocketsHttpHandler or HttpClientHandler, whose following NexusCredentialHandler turns off and does itself within the origin).");
        }

        return response;
    }
}

/// <summary>Registration of the Nexus client and handlers with <c>Microsoft.Extensions.DependencyInjection</c> and <c>IHttpClientFactory</c>.</summary>
public static class NexusServiceCollectionExtensions
{
    /// <summary>
    /// Registers one <see cref="NexusClient"/> (a singleton) configured from <c>NEXUS_URL</c> / <c>NEXUS_API_KEY</c>
    /// and then <paramref name="configure"/>. Calling it again does not register a second one.
    /// </summary>
    public static IServiceCollection AddNexusClient(this IServiceCollection services, Action<NexusClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(_ =>
        {
            var options = NexusClientOptions.FromEnvironment();
            configure?.Invoke(options);
            return new NexusClient(options);
        });
        return services;
    }

    /// <summary>
    /// Applies <paramref name="connectionId"/>'s credential to every request of this named or typed client
    /// (<c>services.AddHttpClient("github").AddNexusCredentials(connectionId)</c>), with one refresh-and-retry after a
    /// provider 401. Registers the <see cref="NexusClient"/> from the environment unless one is registered.
    /// </summary>
    public static IHttpClientBuilder AddNexusCredentials(this IHttpClientBuilder builder, string connectionId)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        return builder.AddNexusCredentials((_, _) => connectionId);
    }

    /// <summary>
    /// Like <see cref="AddNexusCredentials(IHttpClientBuilder, string)"/>, choosing each request's connection (e.g. the
    /// signed-in user's); a request's <see cref="NexusCredentialHandler.ConnectionIdOption"/> overrides the choice.
    /// </summary>
    public static IHttpClientBuilder AddNexusCredentials(this IHttpClientBuilder builder, Func<IServiceProvider, HttpRequestMessage, string?>? connectionId = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddNexusClient();
        return builder.AddHttpMessageHandler(services =>
            new NexusCredentialHandler(services.GetRequiredService<NexusClient>(), connectionId is null ? null : request => connectionId(services, request)));
    }
}
