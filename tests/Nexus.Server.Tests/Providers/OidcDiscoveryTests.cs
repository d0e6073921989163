using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting.Internal;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Providers;

public sealed class OidcDiscoveryTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ADiscoveryDocumentThatStopsHalfWayFailsWhenNexussClockPassesTheUpstreamTimeout()
    {
        await using var echo = await EchoUpstream.StartAsync();
        var services = new ServiceCollection();
        services.AddHttpClient(UpstreamPolicy.HttpClientName, c => c.Timeout = TimeSpan.FromSeconds(5));
        await using var provider = services.BuildServiceProvider();
        var policy = new UpstreamPolicy(new NexusOptions { AllowInsecureUpstreams = true }, new HostingEnvironment { EnvironmentName = "Test" });
        var clock = new ManualTimeProvider();
        var discovery = new OidcDiscovery(provider.GetRequiredService<IHttpClientFactory>(), policy, clock);

        var discovering = discovery.DiscoverAsync(echo.BaseUrl + "/stalled-issuer", Ct);

        // The headers came and the body stopped: the body's bound (HttpClient.Timeout) runs on Nexus's clock, so moving
        // that clock past it ends the wait, with no real time spent.
        await clock.WhenArmedAsync(Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        clock.Advance(TimeSpan.FromSeconds(5) - TimeSpan.FromTicks(1));
        Assert.False(discovering.IsCompleted);
        clock.Advance(TimeSpan.FromTicks(1));
        var (endpoints, error) = await discovering.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.Null(endpoints);
        Assert.Equal($"{echo.BaseUrl}/stalled-issuer/.well-known/openid-configuration could not be fetched.", error);
    }
}
