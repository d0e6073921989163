using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// Issue #20 (footprint): the mapped endpoints are built once. ASP.NET Core's minimal-API data source builds every
/// endpoint anew each time its endpoints are read, and the authorization middleware (while the
/// pipeline is built) and the router (on the first request) each read them: Nexus wraps its data sources so both get
/// the same endpoint objects.
/// </summary>
public sealed class EndpointsBuiltOnceTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task ReadingTheEndpointsAgainGivesTheSameEndpointObjectsAndTheServerStillAnswers()
    {
        using var ready = await fixture.Server.Http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);

        var composite = Assert.IsType<CompositeEndpointDataSource>(fixture.Server.Services.GetRequiredService<EndpointDataSource>());
        Assert.NotEmpty(composite.DataSources);
        Assert.All(composite.DataSources, source =>
        {
            Assert.IsType<CachedEndpointDataSource>(source);
            var first = source.Endpoints;
            var again = source.Endpoints;
            Assert.Equal(first.Count, again.Count);
            Assert.All(first.Zip(again), pair => Assert.Same(pair.First, pair.Second));
        });
        Assert.True(composite.Endpoints.Count > 60, $"only {composite.Endpoints.Count} endpoints");
    }

    [Fact]
    public void ACachedSourceReadsItsInnerSourceAgainOnlyAfterItsChangeTokenFired()
    {
        using var inner = new CountingSource();
        var cached = new CachedEndpointDataSource(inner);

        var first = cached.Endpoints;
        Assert.Same(first, cached.Endpoints);
        Assert.Equal(1, inner.Reads);

        inner.Change();
        var second = cached.Endpoints;
        Assert.NotSame(first, second);
        Assert.Same(second, cached.Endpoints);
        Assert.Equal(2, inner.Reads);
    }

    private sealed class CountingSource : EndpointDataSource, IDisposable
    {
        private CancellationTokenSource changed = new();

        public int Reads { get; private set; }

        public override IReadOnlyList<Endpoint> Endpoints
        {
            get
            {
                Reads++;
                return [new Endpoint(_ => Task.CompletedTask, EndpointMetadataCollection.Empty, "test")];
            }
        }

        public override Microsoft.Extensions.Primitives.IChangeToken GetChangeToken() => new Microsoft.Extensions.Primitives.CancellationChangeToken(changed.Token);

        public void Change()
        {
            var old = changed;
            changed = new CancellationTokenSource();
            old.Cancel();
            old.Dispose();
        }

        public void Dispose() => changed.Dispose();
    }
}
