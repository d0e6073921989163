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
/// <see cref="NexusAttentionRequiredException"/>.
/// </summary>
public sealed class NexusCredentialHandler : DelegatingHandler
{
    /// <summary>Set on a request (<c>request.Options.Set(NexusCredentialHandler.ConnectionIdOption, id)</c>) to choose its connection.</summary>
    public static readonly HttpRequestOptionsKey<string> ConnectionIdOption = new("Nexus.ConnectionId");

    private readonly NexusClient client;
    private readonly Func<HttpRequestMessage, string?>? connectionId;

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

        var credential = await client.GetCredentialsAsync(id, cancellationToken).ConfigureAwait(false);
        await credential.ApplyAsync(request, client.Time, cancellationToken).ConfigureAwait(false);
        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Unauthorized || !Requests.CanReplay(request.Content))
        {
            return response;
        }

        response.Dispose();
        // Single-flight: every request refused this credential at the same moment shares one renewal.
        credential = await client.RenewCredentialsAsync(id, credential, cancellationToken).ConfigureAwait(false);
        await credential.ApplyAsync(request, client.Time, cancellationToken).ConfigureAwait(false);
        return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
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
