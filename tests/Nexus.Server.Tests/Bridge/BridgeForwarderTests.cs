using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Nexus.Sdk.Aws;
using Nexus.Server.Bridge;
using Nexus.Server.Credentials;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Bridge;

/// <summary>
/// The Bridge's forwarding engine over real HTTP: a loopback host runs <see cref="BridgeForwarder"/> in front of an
/// echo upstream that records what arrives. Not in parallel with other classes: the streaming test counts the bytes the
/// whole process allocates (GC.GetTotalAllocatedBytes), which other tests running beside it inflated past its bound.
/// </summary>
[Collection(Name)]
public sealed class BridgeForwarderTests : IAsyncLifetime
{
    public const string Name = "Bridge forwarder (not in parallel)";

    private EchoUpstream echo = null!;
    private WebApplication host = null!;
    private HttpClient http = null!;
    private HttpClient http2 = null!;
    private BridgeForwarder forwarder = null!;
    private BridgeTarget target = null!;
    private int refreshes;

    public async ValueTask InitializeAsync()
    {
        echo = await EchoUpstream.StartAsync();
        // The default timeout: a test that is not about timeouts must not turn into one when the machine is busy (the
        // SigV4 test failed once in a loaded full run with a 2 s bound, most likely so). Timeout tests call UseForwarder.
        UseForwarder(new BridgeOptions { TimeoutSeconds = 30 });
        var builder = WebApplication.CreateSlimBuilder();
        var (port, port2) = (LoopbackHost.FreePort(), LoopbackHost.FreePort());
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = 1024 * 1024;
            k.Listen(System.Net.IPAddress.Loopback, port);
            // HTTP/2 without TLS (prior knowledge): what a caller speaks to a Nexus that terminates TLS itself.
            k.Listen(System.Net.IPAddress.Loopback, port2, o => o.Protocols = HttpProtocols.Http2);
        });
        host = builder.Build();
        host.Map("/bridge/{**rest}", (HttpContext context) =>
        {
            var raw = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
            var path = raw["/bridge".Length..];
            var query = path.IndexOf('?', StringComparison.Ordinal);
            return forwarder.ForwardAsync(context, target, query < 0 ? path : path[..query]);
        });
        await host.StartAsync();
        http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        http2 = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port2}") };
        target = new BridgeTarget(new Uri(echo.BaseUrl + "/api"), new UpstreamCredential.Bearer("secret-access-token"));
    }

    public async ValueTask DisposeAsync()
    {
        http.Dispose();
        http2.Dispose();
        forwarder.Dispose();
        await host.DisposeAsync();
        await echo.DisposeAsync();
    }

    /// <summary>Replaces the forwarder the host calls with one built from these Bridge options (and BASE_URL, if given).</summary>
    private void UseForwarder(BridgeOptions bridge, string? baseUrl = null, TimeProvider? time = null, IHostApplicationLifetime? lifetime = null)
    {
        forwarder?.Dispose();
        var options = new NexusOptions { Bridge = bridge };
        if (baseUrl is not null)
        {
            options.BaseUrl = baseUrl;
        }

        forwarder = new BridgeForwarder(options, time ?? TimeProvider.System, NullLogger<BridgeForwarder>.Instance, LoopbackGuard(), lifetime: lifetime);
    }

    private async Task<JsonElement> GetJsonAsync(string path, Action<HttpRequestMessage>? configure = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        configure?.Invoke(request);
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    [Fact]
    public async Task InjectsBearerTokenAndStripsCallerCredentials()
    {
        var body = await GetJsonAsync("/bridge/repos/nexus?per_page=5", r =>
        {
            r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "caller-token");
            r.Headers.Add("X-API-Key", "nexus-key");
            r.Headers.Add("Cookie", "session=abc");
            r.Headers.Add("Nexus-Connection-Id", "conn_1");
            r.Headers.Add("X-Custom", "kept");
        });
        Assert.Equal("/api/repos/nexus", body.GetProperty("path").GetString());
        Assert.Equal("?per_page=5", body.GetProperty("query").GetString());
        var headers = echo.Last.Headers;
        Assert.Equal("Bearer secret-access-token", headers["Authorization"]);
        Assert.False(headers.ContainsKey("X-API-Key"));
        Assert.False(headers.ContainsKey("Cookie"));
        Assert.False(headers.ContainsKey("Nexus-Connection-Id"));
        Assert.Equal("kept", headers["X-Custom"]);
    }

    [Fact]
    public async Task InjectsApiKeyInHeaderWithPrefixOrInQuery()
    {
        target = target with { Credential = new UpstreamCredential.ApiKey("header", "x-api-key", null, "sk-live-123") };
        await GetJsonAsync("/bridge/v1/models", r => r.Headers.Add("x-api-key", "caller-supplied"));
        Assert.Equal("sk-live-123", echo.Last.Headers["x-api-key"]);
        Assert.False(echo.Last.Headers.ContainsKey("Authorization"));

        target = target with { Credential = new UpstreamCredential.ApiKey("header", "Authorization", "Token ", "abc") };
        await GetJsonAsync("/bridge/v1/models");
        Assert.Equal("Token abc", echo.Last.Headers["Authorization"]);

        target = target with { Credential = new UpstreamCredential.ApiKey("query", "api_key", null, "k&v=1") };
        var body = await GetJsonAsync("/bridge/search?q=x&api_key=caller");
        Assert.Equal("?q=x&api_key=k%26v%3D1", body.GetProperty("query").GetString());
    }

    [Fact]
    public async Task InjectsBasicCredentials()
    {
        target = target with { Credential = new UpstreamCredential.Basic("AC123", "token:with:colons") };
        await GetJsonAsync("/bridge/2010-04-01/Accounts.json");
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("AC123:token:with:colons")), echo.Last.Headers["Authorization"]);
    }

    [Fact]
    public async Task SignsWithSigV4ThatVerifiesAgainstTheSameSigner()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token");
        target = target with { Credential = new UpstreamCredential.AwsSigV4(credentials, "us-east-1", "execute-api") };
        var request = new HttpRequestMessage(HttpMethod.Post, "/bridge/items?b=2&a=1") { Content = new StringContent("{\"x\":1}", Encoding.UTF8, "application/json") };
        request.Headers.Add("X-Amz-Date", "19990101T000000Z");
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var received = echo.Last;
        Assert.Equal("session-token", received.Headers["X-Amz-Security-Token"]);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("{\"x\":1}"))), received.Headers["x-amz-content-sha256"]);
        Assert.NotEqual("19990101T000000Z", received.Headers["X-Amz-Date"]);

        // Recompute the signature independently from what arrived.
        var authorization = received.Headers["Authorization"];
        var signedHeaders = authorization.Split("SignedHeaders=")[1].Split(',')[0].Split(';');
        var date = DateTimeOffset.ParseExact(received.Headers["X-Amz-Date"], "yyyyMMdd'T'HHmmss'Z'", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal);
        var headers = signedHeaders.Where(h => h is not ("x-amz-date" or "x-amz-security-token" or "x-amz-content-sha256")).Select(h => new KeyValuePair<string, string>(h, received.Headers[h]));
        var expected = SigV4Signer.Sign("POST", new Uri(echo.BaseUrl + "/api/items?b=2&a=1"), headers, received.Headers["x-amz-content-sha256"], "us-east-1", "execute-api", credentials, date,
            new SigV4Options { AddContentSha256Header = true });
        Assert.Equal(expected.AuthorizationHeader, authorization);
    }

    [Theory]
    [InlineData("/other-bucket/secret.txt")]
    [InlineData("other-bucket/secret.txt")]
    [InlineData("/api/../other-bucket/secret.txt")]
    [InlineData("/api%2F..%2Fother-bucket/secret.txt")]
    [InlineData("/apiother/secret.txt")]
    public async Task AnS3CopyFromOutsideTheConnectionsBaseIsRefusedBeforeAnythingIsSent(string copySource)
    {
        target = target with { Credential = new UpstreamCredential.AwsSigV4(new AwsCredentials("AKIDEXAMPLE", "secret", null), "us-east-1", "s3") };
        var count = echo.Requests.Count;
        var request = new HttpRequestMessage(HttpMethod.Put, "/bridge/copy.txt");
        request.Headers.Add("x-amz-copy-source", copySource);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("bridge_path_refused", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(count, echo.Requests.Count);
    }

    [Theory]
    [InlineData("https://reports.s3.eu-west-1.amazonaws.com/", "/reports/2026/q4.csv", true)]
    [InlineData("https://reports.s3.eu-west-1.amazonaws.com/", "/other/q4.csv", false)]
    [InlineData("https://my.s3data.s3-eu-west-1.amazonaws.com/team/", "my.s3data/team/a.txt?versionId=3", true)]
    [InlineData("https://my.s3data.s3-eu-west-1.amazonaws.com/team/", "/my.s3data/other/a.txt", false)]
    [InlineData("https://s3.eu-west-1.amazonaws.com/", "/any-bucket/key", true)]
    [InlineData("https://s3.eu-west-1.amazonaws.com/reports", "/reports/key", true)]
    [InlineData("https://s3.eu-west-1.amazonaws.com/reports", "/reports2/key", false)]
    public void ACopySourceIsInsideTheBucketAndPathTheBaseUrlNames(string apiBase, string copySource, bool inside) =>
        Assert.Equal(inside, BridgePath.CopySourceInside(new Uri(apiBase), copySource));

    [Fact]
    public async Task ASmallChunkedBodyIsSentWithItsLengthAndSignedWithItsHash()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", null);
        target = target with { Credential = new UpstreamCredential.AwsSigV4(credentials, "us-east-1", "s3") };
        var sent = Encoding.UTF8.GetBytes("{\"x\":1}");
        using var request = new HttpRequestMessage(HttpMethod.Put, "/bridge/object.json") { Content = new StreamContent(new UnknownLengthStream(sent)) };
        request.Headers.TransferEncodingChunked = true;
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = echo.Last;
        Assert.Equal(sent.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), received.Headers["Content-Length"]);
        Assert.False(received.Headers.ContainsKey("Transfer-Encoding"));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(sent)), received.Headers["x-amz-content-sha256"]);
    }

    [Fact]
    public async Task AnHttp2BodyOfUnknownLengthIsForwardedWhole()
    {
        // HTTP/2 has no Transfer-Encoding: a streamed upload (curl -T -, a pipe) comes with no Content-Length at all.
        var sent = RandomNumberGenerator.GetBytes(300_000);
        using var request = new HttpRequestMessage(HttpMethod.Put, "/bridge/upload")
        {
            Content = new StreamContent(new UnknownLengthStream(sent)), Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        using var response = await http2.SendAsync(request);
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal((sent.LongLength, Convert.ToHexStringLower(SHA256.HashData(sent))), (echo.Last.BodyLength, echo.Last.BodySha256));
    }

    /// <summary>A readable stream that does not tell its length, so HttpClient sends no Content-Length.</summary>
    private sealed class UnknownLengthStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();
    }

    [Fact]
    public async Task PassesTheCallersOwnAwsHeadersOnAndSignsThemButNeverItsSignatureHeaders()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token");
        target = target with { Credential = new UpstreamCredential.AwsSigV4(credentials, "us-east-1", "s3") };
        // An S3 CopyObject: the source, and the encryption the copy must have, are headers; it has no body.
        var request = new HttpRequestMessage(HttpMethod.Put, "/bridge/bucket/copy.txt");
        // The base URL (the echo's /api) stands for the bucket the connection is confined to.
        request.Headers.Add("x-amz-copy-source", "/api/original.txt");
        request.Headers.Add("x-amz-server-side-encryption", "aws:kms");
        request.Headers.Add("X-Amz-Target", "DynamoDB_20120810.GetItem");
        request.Headers.Add("X-Amz-Security-Token", "the-callers-own");
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var received = echo.Last;
        Assert.Equal("/api/original.txt", received.Headers["x-amz-copy-source"]);
        Assert.Equal("aws:kms", received.Headers["x-amz-server-side-encryption"]);
        Assert.Equal("DynamoDB_20120810.GetItem", received.Headers["X-Amz-Target"]);
        Assert.Equal("session-token", received.Headers["X-Amz-Security-Token"]);
        var signed = received.Headers["Authorization"].Split("SignedHeaders=")[1].Split(',')[0].Split(';');
        Assert.Contains("x-amz-copy-source", signed);
        Assert.Contains("x-amz-server-side-encryption", signed);
        Assert.Contains("x-amz-target", signed);
    }

    [Theory]
    [InlineData("/bridge/../admin")]
    [InlineData("/bridge/a/../../admin")]
    [InlineData("/bridge/%2e%2e/admin")]
    [InlineData("/bridge/a%2fb")]
    [InlineData("/bridge/a%5cb")]
    [InlineData("/bridge/a%2Fb")]
    [InlineData("/bridge/a%5Cb")]
    [InlineData("/bridge/%2E%2E/admin")]
    [InlineData("/bridge/a%00b")]
    [InlineData("/bridge//evil.example/x")]
    [InlineData("/bridge/http://evil.example/x")]
    [InlineData("/bridge/@evil.example/x")]
    [InlineData("/bridge/x%40evil.example")]
    [InlineData("/bridge/%252e%252e/admin")]
    [InlineData("/bridge/..;/admin")]
    [InlineData("/bridge/a/..;x/..;y/admin")]
    [InlineData("/bridge/;/evil.example")]
    public async Task RefusesPathsThatCouldLeaveTheApi(string path)
    {
        var count = echo.Requests.Count;
        using var client = new HttpClient { BaseAddress = http.BaseAddress };
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(http.BaseAddress + path.TrimStart('/'), new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true }));
        using var response = await client.SendAsync(request);
        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"{path} → {(int)response.StatusCode}");
        Assert.Equal(count, echo.Requests.Count);
    }

    [Fact]
    public async Task RefusesRedirectsToOtherHostsButPassesSameHostOnes()
    {
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = http.BaseAddress };
        target = target with { ApiBase = new Uri(echo.BaseUrl) };
        using var away = await client.GetAsync("/bridge/redirect?to=" + Uri.EscapeDataString("https://evil.example/steal"));
        Assert.Equal(HttpStatusCode.BadGateway, away.StatusCode);
        Assert.Contains("redirect_refused", await away.Content.ReadAsStringAsync());

        using var same = await client.GetAsync("/bridge/redirect?to=" + Uri.EscapeDataString("/elsewhere"));
        Assert.Equal(HttpStatusCode.Redirect, same.StatusCode);

        // Two Location headers (a same-host one first, which a check of the first alone passes), or one that is no URI
        // reference, cannot be checked as one redirect: refused, and the caller sees neither.
        foreach (var query in new[] { "to=%2Fok&to=" + Uri.EscapeDataString("https://evil.example/steal"), "to=" + Uri.EscapeDataString("http://[not-a-uri") })
        {
            using var several = await client.GetAsync("/bridge/redirect-each?" + query);
            Assert.Equal(HttpStatusCode.BadGateway, several.StatusCode);
            Assert.Contains("redirect_refused", await several.Content.ReadAsStringAsync());
            Assert.False(several.Headers.Contains("Location"));
        }
    }

    [Theory]
    // Relative, absolute-path and absolute references inside the API's base path come back as the Bridge's own path,
    // query and fragment kept; so a caller that follows the redirect comes back through the Bridge and its credential.
    [InlineData("items?page=2", "/bridge/items?page=2")]
    [InlineData("/api/repos/renamed", "/bridge/repos/renamed")]
    [InlineData("{echo}/api/export/part-2#top", "/bridge/export/part-2#top")]
    [InlineData("/api", "/bridge")]
    // Beside the base path, on the same host: not a Bridge path; the provider's absolute URL, never a path the caller
    // would resolve against Nexus (/v1/bridge/{another connection}/…).
    [InlineData("/other/place", "{echo}/other/place")]
    [InlineData("/apis/x", "{echo}/apis/x")]
    [InlineData("/v1/bridge/conn_other/x", "{echo}/v1/bridge/conn_other/x")]
    [InlineData("{echo}/other/place", "{echo}/other/place")]
    public async Task ARedirectInsideTheProvidersApiPointsBackAtTheBridge(string location, string expected)
    {
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = http.BaseAddress };
        target = target with { ApiBase = new Uri(new Uri(echo.BaseUrl), "/api") };
        using var response = await client.GetAsync("/bridge/redirect?to=" + Uri.EscapeDataString(location.Replace("{echo}", echo.BaseUrl, StringComparison.Ordinal)));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal(expected.Replace("{echo}", echo.BaseUrl, StringComparison.Ordinal), response.Headers.Location!.OriginalString);
    }

    [Theory]
    // Published by a reverse proxy under BASE_URL's path, which the proxy strips: the rewritten Location carries it, as
    // every URL Nexus hands out does, so the caller comes back by the proxy.
    [InlineData("https://example.com/nexus", "items?page=2", "/nexus/bridge/items?page=2")]
    [InlineData("https://example.com/nexus/", "/api/repos/renamed", "/nexus/bridge/repos/renamed")]
    [InlineData("https://example.com/a/b", "{echo}/api/export#top", "/a/b/bridge/export#top")]
    [InlineData("https://example.com/", "/api/repos/renamed", "/bridge/repos/renamed")]
    // Outside the API: the provider's absolute URL, as without a prefix.
    [InlineData("https://example.com/nexus", "/other/place", "{echo}/other/place")]
    public async Task ARedirectInsideTheProvidersApiKeepsThePathBaseUrlPublishesNexusUnder(string baseUrl, string location, string expected)
    {
        UseForwarder(new BridgeOptions { TimeoutSeconds = 30 }, baseUrl);
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = http.BaseAddress };
        target = target with { ApiBase = new Uri(new Uri(echo.BaseUrl), "/api") };
        using var response = await client.GetAsync("/bridge/redirect?to=" + Uri.EscapeDataString(location.Replace("{echo}", echo.BaseUrl, StringComparison.Ordinal)));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal(expected.Replace("{echo}", echo.BaseUrl, StringComparison.Ordinal), response.Headers.Location!.OriginalString);
    }

    [Theory]
    // A host that mounts Nexus under a path itself (UsePathBase) receives the path in the raw target: it is said once.
    [InlineData("items?page=2", "/nexus/bridge/items?page=2")]
    [InlineData("/api/repos/renamed", "/nexus/bridge/repos/renamed")]
    // Outside the API: the provider's absolute URL, as without a path base.
    [InlineData("/other/place", "{echo}/other/place")]
    public async Task ARedirectInsideTheProvidersApiSaysThePathBaseOfAHostThatMountsNexusUnderOneOnce(string location, string expected)
    {
        UseForwarder(new BridgeOptions { TimeoutSeconds = 30 }, "https://example.com/nexus");
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var mounted = builder.Build();
        mounted.UsePathBase("/nexus");
        mounted.UseRouting();
        mounted.Map("/bridge/{**rest}", (HttpContext context) =>
        {
            Assert.Equal("/nexus", context.Request.PathBase.Value);
            var raw = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
            var path = raw["/nexus/bridge".Length..];
            var query = path.IndexOf('?', StringComparison.Ordinal);
            return forwarder.ForwardAsync(context, target, query < 0 ? path : path[..query]);
        });
        await mounted.StartAsync();
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(mounted.Urls.First()) };
        target = target with { ApiBase = new Uri(new Uri(echo.BaseUrl), "/api") };
        using var response = await client.GetAsync("/nexus/bridge/redirect?to=" + Uri.EscapeDataString(location.Replace("{echo}", echo.BaseUrl, StringComparison.Ordinal)));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal(expected.Replace("{echo}", echo.BaseUrl, StringComparison.Ordinal), response.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task RefreshesAndRetriesOnceAfterA401()
    {
        echo.AcceptedTokens["fresh-token"] = true;
        target = new BridgeTarget(new Uri(echo.BaseUrl), new UpstreamCredential.Bearer("stale-token"), _ =>
        {
            Interlocked.Increment(ref refreshes);
            return Task.FromResult<UpstreamCredential?>(new UpstreamCredential.Bearer("fresh-token"));
        });
        using var response = await http.GetAsync("/bridge/protected");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, refreshes);

        // A provider that keeps refusing gets exactly one retry, and the 401 is passed on.
        echo.AcceptedTokens.Clear();
        using var refused = await http.GetAsync("/bridge/protected");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal(2, refreshes);
    }

    [Fact]
    public async Task TheRefreshAfterA401AndTheSecondRequestEachGetTheWholeTimeout()
    {
        // BridgeOptions.TimeoutSeconds is how long each wait on the provider may take. A slow first answer (2 s)
        // followed by a slow refresh (2 s) takes longer than the 3 s timeout, but neither wait does: the retried
        // request is answered, not cut off with what the first answer left of the timeout. The slowness is the
        // Bridge's clock moved while it waits, so each wait is exactly 2 s of its time and none of the test's.
        var clock = new ManualTimeProvider();
        UseForwarder(new BridgeOptions { TimeoutSeconds = 3 }, time: clock);
        echo.AcceptedTokens["fresh-token"] = true;
        var gate = new Gate();
        echo.ProtectedGate = gate;
        target = new BridgeTarget(new Uri(echo.BaseUrl), new UpstreamCredential.Bearer("stale-token"), ct =>
        {
            Interlocked.Increment(ref refreshes);
            clock.Advance(TimeSpan.FromSeconds(2)); // a slow token endpoint: the scenario is the time it takes
            ct.ThrowIfCancellationRequested();
            return Task.FromResult<UpstreamCredential?>(new UpstreamCredential.Bearer("fresh-token"));
        });

        var call = http.GetAsync("/bridge/protected", TestContext.Current.CancellationToken);
        await gate.Arrived.WaitAsync(TestContext.Current.CancellationToken);
        clock.Advance(TimeSpan.FromSeconds(2)); // a slow first answer, likewise (its timer was armed before it was sent)
        gate.Release();
        using var response = await call;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, refreshes);
    }

    [Fact]
    public async Task PassesRateLimitsThroughAndDropsUpstreamCookies()
    {
        target = target with { ApiBase = new Uri(echo.BaseUrl) };
        using var limited = await http.GetAsync("/bridge/status/429");
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(7), limited.Headers.RetryAfter?.Delta);

        using var echoed = await http.GetAsync("/bridge/anything");
        Assert.Equal("yes", echoed.Headers.GetValues("X-Echo").Single());
        Assert.False(echoed.Headers.Contains("Set-Cookie"));
    }

    [Fact]
    public async Task AnswersBadGatewayWhenTheProviderIsDownAndGatewayTimeoutWhenSlow()
    {
        var clock = new ManualTimeProvider();
        UseForwarder(new BridgeOptions { TimeoutSeconds = 2 }, time: clock);
        target = target with { ApiBase = new Uri("http://127.0.0.1:1/") };
        using var down = await http.GetAsync("/bridge/x");
        Assert.Equal(HttpStatusCode.BadGateway, down.StatusCode);
        Assert.Equal("application/problem+json", down.Content.Headers.ContentType?.MediaType);
        Assert.DoesNotContain("secret-access-token", await down.Content.ReadAsStringAsync());

        // /slow answers after 10 s. Once the Bridge waits on it, its clock reaches the timeout a tick short of it
        // (still waiting), then the timeout: a 504.
        target = target with { ApiBase = new Uri(echo.BaseUrl) };
        var armed = clock.Arms;
        var slow = http.GetAsync("/bridge/slow", TestContext.Current.CancellationToken);
        await clock.ArmedAfterAsync(armed, TestContext.Current.CancellationToken);
        clock.Advance(TimeSpan.FromSeconds(2) - TimeSpan.FromTicks(1));
        Assert.False(slow.IsCompleted);
        clock.Advance(TimeSpan.FromTicks(1));
        using var timedOut = await slow;
        Assert.Equal(HttpStatusCode.GatewayTimeout, timedOut.StatusCode);
    }

    [Fact]
    public async Task AProviderThatStopsMidBodyIsCutOffAndOneThatKeepsSendingIsNot()
    {
        // The Bridge's clock is moved past the timeout once it waits on the body (its timers are events: the first
        // armed for a request is the wait for the headers, the next the wait for the body).
        var clock = new ManualTimeProvider();
        UseForwarder(new BridgeOptions { TimeoutSeconds = 2 }, time: clock);
        target = target with { ApiBase = new Uri(echo.BaseUrl) };

        // Headers and nothing else: nothing has reached the caller yet, so it gets a clean 504, not the provider's
        // status and Content-Length over Nexus's problem.
        var armed = clock.Arms;
        var waiting = http.GetAsync("/bridge/stall?first=0", TestContext.Current.CancellationToken);
        await clock.ArmedAfterAsync(armed + 1, TestContext.Current.CancellationToken);
        clock.Advance(TimeSpan.FromSeconds(2));
        using var silent = await waiting;
        Assert.Equal(HttpStatusCode.GatewayTimeout, silent.StatusCode);
        Assert.Equal("application/problem+json", silent.Content.Headers.ContentType?.MediaType);
        Assert.Equal("upstream_timeout", JsonDocument.Parse(await silent.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());

        // Part of the body, then silence: the caller already has the provider's 200, so the response is broken
        // off within the timeout. Chunked is the case that matters: a plain return would end it with the last
        // chunk, as if it were whole (with a Content-Length, the short body gives itself away).
        foreach (var chunked in new[] { true, false })
        {
            // Once the caller has all 2048 bytes, the Bridge has read them all: the timer armed after that is its
            // wait for more.
            using var stalled = await http.GetAsync($"/bridge/stall?first=2048&chunked={chunked}", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, stalled.StatusCode);
            await using var body = await stalled.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken);
            await body.ReadExactlyAsync(new byte[2048], TestContext.Current.CancellationToken);
            await clock.WhenArmedAsync(TestContext.Current.CancellationToken);
            clock.Advance(TimeSpan.FromSeconds(2));
            var rest = new byte[4096];
            var more = 0;
            var broken = await Record.ExceptionAsync(async () =>
            {
                int read;
                while ((read = await body.ReadAsync(rest)) > 0)
                {
                    more += read;
                }
            });
            Assert.Equal(0, more);
            Assert.True(broken is not null, "the body ended normally after the provider's 2048 bytes");
        }

        // 8 pieces 0.5 s apart take longer than the 2 s timeout, but no wait is that long: all of it arrives. The
        // provider moves the Bridge's clock by each gap while the Bridge waits for that piece (EchoUpstream.Clock).
        echo.Clock = clock;
        using var steady = await http.GetAsync("/bridge/trickle/8?gapMs=500");
        Assert.Equal(HttpStatusCode.OK, steady.StatusCode);
        Assert.Equal(8 * 1024, (await steady.Content.ReadAsByteArrayAsync()).Length);
    }

    [Fact]
    public async Task ACallerThatReadsALargeAnswerSlowlyGetsAllOfItPastTheProvidersTimeout()
    {
        // The timeout measures the provider, not the caller: while the caller does not read, the Bridge waits on its
        // write, and the provider's bytes already received are read at once afterwards. None of that is the provider
        // being idle, so a pause longer than the timeout must not cut the answer (as the wait for the headers must
        // not have left a timer running behind reads that never wait).
        UseForwarder(new BridgeOptions { TimeoutSeconds = 2 });
        target = target with { ApiBase = new Uri(echo.BaseUrl) };
        using var download = await http.GetAsync("/bridge/download/32", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        await using var stream = await download.Content.ReadAsStreamAsync();
        var buffer = new byte[81920];
        long total = await stream.ReadAsync(buffer);
        // The scenario is a pause itself: a caller that stops reading for longer than the timeout (32 MB is more than
        // the sockets and pipes between here and the provider hold, so the Bridge is left waiting on its write).
        await Task.Delay(TimeSpan.FromSeconds(3), TestContext.Current.CancellationToken);
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            total += read;
        }

        Assert.Equal(32L * 1024 * 1024, total);
    }

    [Fact]
    public async Task AChunkedAnswerThatAlsoClaimsAContentLengthIsPassedOnWholeFramedByItsChunks()
    {
        // RFC 9112 §6.1 and §6.3: Transfer-Encoding overrides Content-Length, and an intermediary that forwards such
        // an answer removes the Content-Length first. A provider that sends both (a smuggling pattern, or a buggy
        // server) must not get its answer cut at the claimed length, nor the caller a length the body does not have.
        using var provider = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        provider.Start();
        var answered = Task.Run(async () =>
        {
            using var client = await provider.AcceptTcpClientAsync(TestContext.Current.CancellationToken);
            var stream = client.GetStream();
            var request = new StringBuilder();
            var buffer = new byte[4096];
            while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var read = await stream.ReadAsync(buffer, TestContext.Current.CancellationToken);
                if (read == 0)
                {
                    return;
                }

                request.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }

            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                + "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), TestContext.Current.CancellationToken);
            await stream.FlushAsync(TestContext.Current.CancellationToken);
        }, TestContext.Current.CancellationToken);
        target = target with { ApiBase = new Uri($"http://127.0.0.1:{((IPEndPoint)provider.LocalEndpoint).Port}/") };

        using var response = await http.GetAsync("/bridge/both");
        await answered;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("hello world", await response.Content.ReadAsStringAsync());
        Assert.NotEqual(5, response.Content.Headers.ContentLength);
    }

    /// <summary>Reads the body until it breaks, and fails if it ends normally; returns how much arrived.</summary>
    private static async Task<int> ReadUntilBrokenAsync(HttpResponseMessage response)
    {
        await using var body = await response.Content.ReadAsStreamAsync();
        var received = 0;
        var buffer = new byte[4096];
        var broken = await Record.ExceptionAsync(async () =>
        {
            int read;
            while ((read = await body.ReadAsync(buffer)) > 0)
            {
                received += read;
            }
        });
        Assert.True(broken is not null, $"the body ended normally after {received} bytes");
        return received;
    }

    [Fact]
    public async Task AProviderThatDropsTheConnectionIsABadGatewayOrABrokenAnswerNeverA500()
    {
        target = target with { ApiBase = new Uri(echo.BaseUrl) };

        // Dropped before any body byte: nothing has reached the caller, so it gets a clean 502 problem, without
        // the provider's Content-Length.
        using var early = await http.GetAsync("/bridge/drop?first=0");
        Assert.Equal(HttpStatusCode.BadGateway, early.StatusCode);
        Assert.Equal("application/problem+json", early.Content.Headers.ContentType?.MediaType);
        Assert.Equal("upstream_unreachable", JsonDocument.Parse(await early.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());

        // Dropped mid-body: the caller has the 200 already, and its answer is broken off, not completed (chunked
        // too, where a plain return would end it with the last chunk).
        foreach (var chunked in new[] { true, false })
        {
            using var late = await http.GetAsync($"/bridge/drop?first=2048&chunked={chunked}", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, late.StatusCode);
            Assert.Equal(2048, await ReadUntilBrokenAsync(late));
        }
    }

    [Fact]
    public async Task RefusesTraceWhichWouldEchoTheCredential()
    {
        var count = echo.Requests.Count;
        using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Trace, "/bridge/anything"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("bridge_method_refused", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        Assert.Equal(count, echo.Requests.Count);
    }

    [Fact]
    public async Task PassesACallersHeaderThatIsNotAsciiOnAsTheBytesItCameIn()
    {
        // Kestrel reads a header's bytes as UTF-8 when they are not ASCII; the client must write them back the same way
        // (its default is ASCII only: it threw, and the caller got 502 upstream_unreachable for its own header).
        using var utf8 = new HttpClient(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8 }) { BaseAddress = http.BaseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Put, "/bridge/objects/cv.pdf") { Content = new ByteArrayContent([1, 2, 3]) };
        request.Headers.TryAddWithoutValidation("X-Amz-Meta-Title", "résumé – ünïcode");
        using var response = await utf8.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("résumé – ünïcode", echo.Last.Headers["X-Amz-Meta-Title"]);
    }

    [Fact]
    public async Task DropsAProviderHeaderThatIsNotAsciiAndKeepsTheRest()
    {
        target = target with { ApiBase = new Uri(echo.BaseUrl) };
        using var response = await http.GetAsync("/bridge/utf8-header");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("yes", response.Headers.GetValues("X-Plain").Single());
        Assert.Null(response.Content.Headers.ContentDisposition);
    }

    [Fact]
    public async Task NeverHandsTheCredentialBackInTheProvidersHeaders()
    {
        target = target with { ApiBase = new Uri(echo.BaseUrl) };
        using var reflected = await http.GetAsync("/bridge/reflect");
        Assert.Equal(HttpStatusCode.OK, reflected.StatusCode);
        Assert.Equal("Bearer secret-access-token", echo.Last.Headers["Authorization"]);
        Assert.False(reflected.Headers.Contains("X-Seen-Authorization"));
        Assert.False(reflected.Headers.Contains("X-Seen-Authorization-Encoded"));

        // Percent-encoded, in lower-case hex, it is still the token.
        target = target with { Credential = new UpstreamCredential.Bearer("secret/access+token=") };
        using var encoded = await http.GetAsync("/bridge/reflect");
        Assert.Equal("Bearer secret/access+token=", echo.Last.Headers["Authorization"]);
        Assert.False(encoded.Headers.Contains("X-Seen-Authorization-Encoded"));
        Assert.Equal("yes", encoded.Headers.GetValues("X-Plain").Single());
        Assert.Equal("yes", reflected.Headers.GetValues("X-Plain").Single());

        // A query-string key in a same-host redirect's Location is taken out; the rest of the URL stays.
        target = target with { Credential = new UpstreamCredential.ApiKey("query", "api_key", null, "query-secret-key-123") };
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = http.BaseAddress };
        using var redirect = await client.GetAsync("/bridge/keep-query?page=2");
        Assert.Equal(HttpStatusCode.MovedPermanently, redirect.StatusCode);
        Assert.Equal("page=2&api_key=query-secret-key-123", echo.Last.Query.TrimStart('?'));
        Assert.Equal("/bridge/keep-query/?page=2", redirect.Headers.Location!.OriginalString);
        using var reflectedQuery = await client.GetAsync("/bridge/reflect?page=3");
        // Anywhere but Location and Content-Location, a header with the key in it is dropped whole.
        Assert.False(reflectedQuery.Headers.Contains("X-Seen-Query"));
        Assert.Equal("yes", reflectedQuery.Headers.GetValues("X-Plain").Single());
    }

    [Fact]
    public async Task AChunkedUploadOverTheLimitIsA413NotABadGateway()
    {
        UseForwarder(new BridgeOptions { TimeoutSeconds = 2, MaxRequestBodyBytes = 64 * 1024 });
        target = target with { ApiBase = new Uri(echo.BaseUrl) };
        // Past the limit the upload pauses: a server that closes on unread bytes sends a reset, which could reach
        // the client before the 413 does.
        using var upload = new HttpRequestMessage(HttpMethod.Put, "/bridge/upload") { Content = new StreamContent(new PausingStream(96 * 1024)) };
        Assert.Null(upload.Content.Headers.ContentLength);
        using var response = await http.SendAsync(upload);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("bridge_body_too_large", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public async Task StreamsLargeBodiesBothWaysWithoutHoldingThemInMemory()
    {
        target = target with { ApiBase = new Uri(echo.BaseUrl) };
        const long size = 200L * 1024 * 1024;
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        using var upload = new HttpRequestMessage(HttpMethod.Put, "/bridge/upload") { Content = new StreamContent(new PatternStream(size)) };
        upload.Content.Headers.ContentLength = size;
        using var response = await http.SendAsync(upload);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(size, echo.Last.BodyLength);
        Assert.Equal(PatternStream.Sha256(size), echo.Last.BodySha256);

        using var download = await http.GetAsync("/bridge/download/100", HttpCompletionOption.ResponseHeadersRead);
        await using (var stream = await download.Content.ReadAsStreamAsync())
        {
            var buffer = new byte[81920];
            long total = 0;
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0)
            {
                total += read;
            }

            Assert.Equal(100L * 1024 * 1024, total);
        }

        // Everything in this process (client, Bridge, upstream) allocated far less than the 300 MB that moved.
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        Assert.True(allocated < 120L * 1024 * 1024, $"allocated {allocated / (1024 * 1024)} MB while streaming 300 MB");
    }

    /// <summary>A deterministic stream of any length, generated on the fly.</summary>
    /// <summary>Length bytes, then a pause of a few seconds before the end (no Length: it is sent chunked).</summary>
    private sealed class PausingStream(int length) : Stream
    {
        private int position;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (position >= length)
            {
                await Task.Delay(TimeSpan.FromSeconds(5), cancellationToken);
                return 0;
            }

            var count = Math.Min(buffer.Length, length - position);
            buffer.Span[..count].Fill((byte)'x');
            position += count;
            return count;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class PatternStream(long length) : Stream
    {
        private long position;

        public static string Sha256(long length)
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            using var stream = new PatternStream(length);
            var buffer = new byte[1024 * 1024];
            int read;
            while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
            {
                sha.AppendData(buffer, 0, read);
            }

            return Convert.ToHexStringLower(sha.GetHashAndReset());
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - position);
            for (var i = 0; i < n; i++)
            {
                buffer[offset + i] = (byte)((position + i) % 251);
            }

            position += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Fact]
    public async Task AnEventStreamEndsCleanlyWhenNexusStops()
    {
        // A provider's event stream has no end of its own: left open, Kestrel's drain would wait for it the whole
        // shutdown timeout. At ApplicationStopping the Bridge ends it as a stream ends (the caller's EventSource
        // reconnects), after what the provider sent.
        var lifetime = new Microsoft.Extensions.Hosting.Internal.ApplicationLifetime(NullLogger<Microsoft.Extensions.Hosting.Internal.ApplicationLifetime>.Instance);
        UseForwarder(new BridgeOptions { TimeoutSeconds = 30 }, lifetime: lifetime);
        target = new BridgeTarget(new Uri(echo.BaseUrl), new UpstreamCredential.Bearer("secret-access-token"));
        var ct = TestContext.Current.CancellationToken;

        using var response = await http.GetAsync("/bridge/events", HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        Assert.Equal("data: first", await reader.ReadLineAsync(ct));
        Assert.Equal("", await reader.ReadLineAsync(ct));

        lifetime.StopApplication();

        // The end of the stream, not an error (an aborted answer throws here).
        Assert.Null(await reader.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(30), ct));
    }

    [Fact]
    public async Task APostsEventStreamIsLeftToFinishWhenNexusStops()
    {
        // An MCP tool call's answer is a POST's event stream that ends with the tool's result: the tool has run, so
        // cutting it at a stop would lose the result (and a retry would run the tool again). It finishes in the drain.
        var lifetime = new Microsoft.Extensions.Hosting.Internal.ApplicationLifetime(NullLogger<Microsoft.Extensions.Hosting.Internal.ApplicationLifetime>.Instance);
        UseForwarder(new BridgeOptions { TimeoutSeconds = 30 }, lifetime: lifetime);
        target = new BridgeTarget(new Uri(echo.BaseUrl), new UpstreamCredential.Bearer("secret-access-token"));
        var gate = echo.EventsGate = new Gate();
        var ct = TestContext.Current.CancellationToken;

        using var post = new HttpRequestMessage(HttpMethod.Post, "/bridge/events") { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(post, HttpCompletionOption.ResponseHeadersRead, ct);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        Assert.Equal("data: first", await reader.ReadLineAsync(ct));
        await gate.Arrived.WaitAsync(TimeSpan.FromSeconds(30), ct);

        lifetime.StopApplication();
        gate.Release();

        string?[] rest = [await reader.ReadLineAsync(ct), await reader.ReadLineAsync(ct), await reader.ReadLineAsync(ct)];
        Assert.Equal(new[] { "", "data: last", "" }, rest);
        Assert.Null(await reader.ReadLineAsync(ct));
    }

    private static OutboundNetworkGuard LoopbackGuard() =>
        new(new NexusOptions { AllowInsecureUpstreams = true }, new Microsoft.Extensions.Hosting.Internal.HostingEnvironment { EnvironmentName = "Test" }, NullLogger<OutboundNetworkGuard>.Instance);
}

[CollectionDefinition(BridgeForwarderTests.Name, DisableParallelization = true)]
public sealed class BridgeForwarderAlone;
