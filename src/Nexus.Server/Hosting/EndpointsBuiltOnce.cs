using Microsoft.Extensions.Primitives;

namespace Nexus.Server.Hosting;

/// <summary>
/// Builds every mapped endpoint once instead of twice (issue #20, footprint). ASP.NET Core's minimal-API data source
/// builds its endpoints anew (request delegate, metadata and filters per handler) each time
/// <see cref="EndpointDataSource.Endpoints"/> is read, and two readers each read it once: the authorization
/// middleware's policy cache, eagerly while the pipeline is built (through the container's composite data source), and
/// the routing middleware on the first request (through a composite of its own). That second build was ~20% of the CPU
/// until the first answer while the request delegates were compiled from expression trees at run time (the Request
/// Delegate Generator now writes them at compile time, and a build is cheaper). Right before the host starts, after every component has mapped its endpoints, each of the
/// application's data sources is wrapped in a <see cref="CachedEndpointDataSource"/>, so both readers get the same
/// endpoint objects, built once. Nothing else changes: same endpoints, same order, same change tokens.
/// </summary>
internal sealed class EndpointsBuiltOnce : IHostedLifecycleService
{
    private IEndpointRouteBuilder? routes;

    /// <summary>MapHosting hands over the application; the data sources are wrapped at StartingAsync, once all are mapped.</summary>
    public void Attach(IEndpointRouteBuilder application) => routes = application;

    // StartingAsync runs before any hosted service's StartAsync, so before the web server builds the pipeline.
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        if (routes is not null)
        {
            var sources = routes.DataSources.ToList();
            routes.DataSources.Clear();
            foreach (var source in sources)
            {
                routes.DataSources.Add(source as CachedEndpointDataSource ?? new CachedEndpointDataSource(source));
            }
        }

        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// An <see cref="EndpointDataSource"/> that reads its inner source's endpoints once and again only after the inner
/// source's change token fired (a source whose endpoints change keeps changing them); grouped endpoints (a route
/// group's prefix and conventions) are passed through unchanged.
/// </summary>
internal sealed class CachedEndpointDataSource(EndpointDataSource inner) : EndpointDataSource
{
    private readonly Lock gate = new();
    private IReadOnlyList<Endpoint>? endpoints;
    private IChangeToken? builtFor;

    public override IReadOnlyList<Endpoint> Endpoints
    {
        get
        {
            lock (gate)
            {
                if (endpoints is null || builtFor is { HasChanged: true })
                {
                    // The token first: a change while the endpoints are being read then shows on the next read.
                    builtFor = inner.GetChangeToken();
                    endpoints = inner.Endpoints;
                }

                return endpoints;
            }
        }
    }

    public override IChangeToken GetChangeToken() => inner.GetChangeToken();

    public override IReadOnlyList<Endpoint> GetGroupedEndpoints(RouteGroupContext context) => inner.GetGroupedEndpoints(context);
}
