using System.Net;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>The pages' stylesheet and script: embedded in the assembly, served with their type and an hour's cache.</summary>
public sealed class AssetsTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Theory]
    [InlineData("/assets/nexus.css", "text/css", ":root")]
    [InlineData("/assets/nexus.js", "text/javascript", "function")]
    public async Task AnAssetIsServedWithItsTypeAnHoursCacheAndNoSniffing(string path, string mediaType, string excerpt)
    {
        using var response = await fixture.Server.Http.GetAsync(path);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(mediaType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("utf-8", response.Content.Headers.ContentType?.CharSet);
        Assert.Equal("public, max-age=3600", response.Headers.CacheControl?.ToString());
        Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
        Assert.Contains(excerpt, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
