using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Nexus.Sdk.Aws;

namespace Nexus.Sdk.Tests;

public sealed class SigV4SignerTests
{
    private static readonly AwsCredentials Credentials = new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    private static readonly DateTimeOffset Now = new(2026, 3, 14, 15, 9, 26, TimeSpan.Zero);

    [Fact]
    public void OneCredentialsObjectSignsEachDateRegionAndServiceWithItsOwnKeyWhenTheKeyIsCachedBetweenRequests()
    {
        // The signing key is derived once and kept per credentials object; a new date, region or service must derive
        // it again. A fresh credentials object (nothing cached) gives the expected signature for each.
        var shared = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session");
        var uri = new Uri("https://service.us-east-1.amazonaws.com/path?b=2&a=1");
        (DateTimeOffset When, string Region, string Service)[] scopes =
        [
            (Now, "us-east-1", "service"), (Now.AddSeconds(30), "us-east-1", "service"), (Now.AddDays(1), "us-east-1", "service"),
            (Now.AddDays(1), "eu-west-1", "service"), (Now.AddDays(1), "eu-west-1", "sts"), (Now, "us-east-1", "service"),
        ];
        foreach (var (when, region, service) in scopes)
        {
            for (var repeat = 0; repeat < 2; repeat++)
            {
                var cached = SigV4Signer.Sign("GET", uri, [], SigV4Signer.EmptyPayloadHash, region, service, shared, when);
                var fresh = SigV4Signer.Sign("GET", uri, [], SigV4Signer.EmptyPayloadHash, region, service, shared with { }, when);
                Assert.Equal(fresh.AuthorizationHeader, cached.AuthorizationHeader);
            }
        }

        Assert.NotEqual(
            SigV4Signer.Sign("GET", uri, [], SigV4Signer.EmptyPayloadHash, "us-east-1", "service", shared, Now).Signature,
            SigV4Signer.Sign("GET", uri, [], SigV4Signer.EmptyPayloadHash, "us-east-1", "service", shared with { SecretAccessKey = "other" }, Now).Signature);
    }

    [Fact]
    public void S3SignsThePathExactlyAsSentWhileOtherServicesNormalizeAndEncodeItAgain()
    {
        var uri = new Uri(
            "https://bucket.s3.us-east-1.amazonaws.com/a//b/../c%20d(e)",
            new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });

        Assert.Equal("/a//b/../c%20d(e)", CanonicalUri(Sign(uri, "s3")));
        Assert.Equal("/a/c%2520d%28e%29", CanonicalUri(Sign(uri, "execute-api")));
    }

    [Fact]
    public void PathOptionsOverrideTheServiceDefaults()
    {
        var uri = new Uri("https://example.com/a//./b/%7Bid%7D/", new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });

        var s3Like = new SigV4Options { NormalizePath = false, DoubleEncodePath = false };
        var others = new SigV4Options { NormalizePath = true, DoubleEncodePath = true };
        Assert.Equal("/a//./b/%7Bid%7D/", CanonicalUri(Sign(uri, "service", s3Like)));
        Assert.Equal("/a/b/%257Bid%257D/", CanonicalUri(Sign(uri, "s3", others)));
    }

    [Fact]
    public void QueryIsDecodedReencodedStrictlyAndSortedByNameThenValue()
    {
        var uri = new Uri("https://example.com/?b=2&a=%7e&a=1&c&B=x+y&d=%2f/&e=sp%20ace");

        Assert.Equal("B=x%2By&a=1&a=~&b=2&c=&d=%2F%2F&e=sp%20ace", Sign(uri, "service").CanonicalRequest.Split('\n')[2]);
    }

    [Fact]
    public void HeadersAreLowercasedTrimmedCombinedInOrderAndSortedByName()
    {
        var result = SigV4Signer.Sign(
            "GET",
            new Uri("https://example.com/"),
            [new("X_Under", "1"), new("X-Multi", "  b  "), new("x-multi", "a\t\tc"), new("Host", "example.com")],
            SigV4Signer.UnsignedPayload,
            "us-east-1",
            "service",
            Credentials,
            Now);

        Assert.Equal(
            "GET\n/\n\nhost:example.com\nx-amz-date:20260314T150926Z\nx-multi:b,a c\nx_under:1\n\nhost;x-amz-date;x-multi;x_under\nUNSIGNED-PAYLOAD",
            result.CanonicalRequest);
    }

    [Fact]
    public void HostIsTakenFromTheUriWithItsPortWhenNotGiven()
    {
        var result = SigV4Signer.Sign("GET", new Uri("http://localhost:8080/"), [], SigV4Signer.UnsignedPayload, "us-east-1", "service", Credentials, Now);

        Assert.Contains("\nhost:localhost:8080\n", result.CanonicalRequest, StringComparison.Ordinal);
        Assert.DoesNotContain(result.AddedHeaders, h => h.Key == "Host");
    }

    [Fact]
    public void HeadersTheSignerOwnsAreReplacedAndAuthorizationIsNeverSigned()
    {
        var result = SigV4Signer.Sign(
            "GET",
            new Uri("https://example.com/"),
            [new("Authorization", "stale"), new("X-Amz-Date", "19700101T000000Z"), new("X-Amz-Security-Token", "stale")],
            SigV4Signer.UnsignedPayload,
            "us-east-1",
            "service",
            Credentials with { SessionToken = "fresh" },
            Now);

        Assert.Equal("host;x-amz-date;x-amz-security-token", result.SignedHeaders);
        Assert.Contains("\nx-amz-date:20260314T150926Z\nx-amz-security-token:fresh\n", result.CanonicalRequest, StringComparison.Ordinal);
        Assert.Equal(
            [new("X-Amz-Date", "20260314T150926Z"), new("X-Amz-Security-Token", "fresh")],
            result.AddedHeaders);
    }

    [Fact]
    public void S3SendsAndSignsTheContentHashHeaderUnlessToldOtherwise()
    {
        var uri = new Uri("https://bucket.s3.amazonaws.com/key");

        var s3 = Sign(uri, "s3");
        Assert.Equal("host;x-amz-content-sha256;x-amz-date", s3.SignedHeaders);
        Assert.Contains(new KeyValuePair<string, string>("x-amz-content-sha256", SigV4Signer.UnsignedPayload), s3.AddedHeaders);
        Assert.EndsWith("\nUNSIGNED-PAYLOAD", s3.CanonicalRequest, StringComparison.Ordinal);

        Assert.Equal("host;x-amz-date", Sign(uri, "s3", new SigV4Options { AddContentSha256Header = false }).SignedHeaders);
        Assert.Equal("host;x-amz-content-sha256;x-amz-date", Sign(uri, "sts", new SigV4Options { AddContentSha256Header = true }).SignedHeaders);
    }

    [Fact]
    public void PayloadHashIsLowercasedAndAnythingButAHashOrUnsignedPayloadIsRejected()
    {
        string upper = Convert.ToHexString(SHA256.HashData("x"u8));
        var result = SigV4Signer.Sign("PUT", new Uri("https://example.com/"), [], upper, "us-east-1", "service", Credentials, Now);
        Assert.EndsWith("\n" + upper.ToLowerInvariant(), result.CanonicalRequest, StringComparison.Ordinal);

        Assert.Throws<ArgumentException>(() => SigV4Signer.Sign("PUT", new Uri("https://example.com/"), [], "abc", "us-east-1", "service", Credentials, Now));
        Assert.Throws<ArgumentException>(() => SigV4Signer.Sign("PUT", new Uri("https://example.com/"), [], new string('g', 64), "us-east-1", "service", Credentials, Now));
    }

    [Fact]
    public void MalformedRequestsAreRejected()
    {
        var uri = new Uri("https://example.com/");
        const string hash = SigV4Signer.UnsignedPayload;

        Assert.Throws<ArgumentException>(() => SigV4Signer.Sign("GET", new Uri("/relative", UriKind.Relative), [], hash, "us-east-1", "s3", Credentials, Now));
        Assert.Throws<ArgumentException>(() => SigV4Signer.Sign("GET", uri, [new("Bad Name", "v")], hash, "us-east-1", "s3", Credentials, Now));
        Assert.Throws<ArgumentException>(() => SigV4Signer.Sign("GET", uri, [new("X-Injected", "a\r\nHost: evil")], hash, "us-east-1", "s3", Credentials, Now));
        Assert.Throws<ArgumentException>(() => SigV4Signer.Sign("GET", uri, [], hash, "us-east-1/x", "s3", Credentials, Now));
        Assert.Throws<ArgumentException>(() => SigV4Signer.Sign("GET", uri, [], hash, "us-east-1", "s3", new AwsCredentials("", "secret"), Now));
    }

    [Fact]
    public void CredentialsNeverPrintTheirSecrets()
    {
        string text = new AwsCredentials("AKIDEXAMPLE", "very-secret", "session-token").ToString();

        Assert.Contains("AKIDEXAMPLE", text, StringComparison.Ordinal);
        Assert.DoesNotContain("very-secret", text, StringComparison.Ordinal);
        Assert.DoesNotContain("session-token", text, StringComparison.Ordinal);
    }

    [Fact]
    public void ASigningResultNeverPrintsTheSessionToken()
    {
        var result = SigV4Signer.Sign("GET", new Uri("https://sts.us-east-1.amazonaws.com/"), [], SigV4Signer.EmptyPayloadHash, "us-east-1", "sts",
            Credentials with { SessionToken = "session-token-SECRET" }, Now);
        Assert.Contains("session-token-SECRET", result.CanonicalRequest, StringComparison.Ordinal); // what the compiler's ToString printed

        string text = result.ToString();

        Assert.DoesNotContain("session-token-SECRET", text, StringComparison.Ordinal);
        Assert.DoesNotContain("session-token-SECRET", $"{result}", StringComparison.Ordinal);
        Assert.Contains(result.Signature, text, StringComparison.Ordinal);
        Assert.Contains("x-amz-security-token", text, StringComparison.Ordinal); // the name, in SignedHeaders
    }

    [Fact]
    public async Task SignAsyncHashesTheContentAndSetsTheSignedHeaders()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://sts.us-east-1.amazonaws.com/")
        {
            Content = new StringContent("Action=GetCallerIdentity&Version=2011-06-15", Encoding.UTF8, "application/x-www-form-urlencoded"),
        };

        var result = await SigV4Signer.SignAsync(request, Credentials with { SessionToken = "tok" }, "us-east-1", "sts", Now, cancellationToken: TestContext.Current.CancellationToken);

        string bodyHash = Convert.ToHexStringLower(SHA256.HashData("Action=GetCallerIdentity&Version=2011-06-15"u8));
        Assert.EndsWith("\n" + bodyHash, result.CanonicalRequest, StringComparison.Ordinal);
        Assert.Equal("content-type;host;x-amz-date;x-amz-security-token", result.SignedHeaders);
        Assert.Equal(result.AuthorizationHeader, Single(request, "Authorization"));
        Assert.Equal("20260314T150926Z", Single(request, "X-Amz-Date"));
        Assert.Equal("tok", Single(request, "X-Amz-Security-Token"));
        Assert.False(request.Headers.Contains("x-amz-content-sha256"));
    }

    [Fact]
    public async Task SignAsyncTakesAGivenPayloadHashWithoutReadingTheContent()
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, "https://bucket.s3.amazonaws.com/big.bin")
        {
            Content = new StreamContent(new UnreadableStream()),
        };

        var result = await SigV4Signer.SignAsync(
            request, Credentials, "us-east-1", "s3", Now, new SigV4Options { PayloadHash = SigV4Signer.UnsignedPayload }, TestContext.Current.CancellationToken);

        Assert.EndsWith("\nUNSIGNED-PAYLOAD", result.CanonicalRequest, StringComparison.Ordinal);
        Assert.Equal(SigV4Signer.UnsignedPayload, Single(request, "x-amz-content-sha256"));
    }

    [Fact]
    public async Task SignAsyncTakesTheHashOfAnXAmzContentSha256HeaderAlreadySet()
    {
        string hash = Convert.ToHexStringLower(SHA256.HashData("precomputed"u8));
        using var request = new HttpRequestMessage(HttpMethod.Put, "https://bucket.s3.amazonaws.com/big.bin")
        {
            Content = new StreamContent(new UnreadableStream()),
        };
        request.Headers.TryAddWithoutValidation("x-amz-content-sha256", hash);

        var result = await SigV4Signer.SignAsync(request, Credentials, "us-east-1", "s3", Now, cancellationToken: TestContext.Current.CancellationToken);

        Assert.EndsWith("\n" + hash, result.CanonicalRequest, StringComparison.Ordinal);
        Assert.Equal(hash, Single(request, "x-amz-content-sha256"));
    }

    [Fact]
    public async Task SignAsyncBuffersAOneShotStreamSoThatItCanStillBeSent()
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, "https://bucket.s3.amazonaws.com/small.txt")
        {
            Content = new StreamContent(new OneShotStream("hello, bucket"u8.ToArray())),
        };

        var result = await SigV4Signer.SignAsync(request, Credentials, "us-east-1", "s3", Now, cancellationToken: TestContext.Current.CancellationToken);

        Assert.EndsWith("\n" + Convert.ToHexStringLower(SHA256.HashData("hello, bucket"u8)), result.CanonicalRequest, StringComparison.Ordinal);
        Assert.Equal("hello, bucket", await request.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task SigningAgainReplacesThePreviousSignature()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://example.com/");

        await SigV4Signer.SignAsync(request, Credentials with { SessionToken = "old" }, "us-east-1", "service", Now.AddMinutes(-10), cancellationToken: TestContext.Current.CancellationToken);
        var result = await SigV4Signer.SignAsync(request, Credentials, "us-east-1", "service", Now, cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(result.AuthorizationHeader, Single(request, "Authorization"));
        Assert.Equal("20260314T150926Z", Single(request, "X-Amz-Date"));
        Assert.False(request.Headers.Contains("X-Amz-Security-Token"));
        Assert.Equal("host;x-amz-date", result.SignedHeaders);
    }

    [Fact]
    public async Task SignAsyncSignsTheRequestExactlyAsHttpClientSendsIt()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var captured = CaptureOneRequestAsync(listener, cancellationToken);

        var credentials = Credentials with { SessionToken = "session/token+==" };
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/prod/items/jane doe (1)/tags?z=last&a=b c&a=%C3%A9")
        {
            Content = new StringContent("""{"tag":"vip"}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/plain", 0.5));
        request.Headers.Add("X-Nexus-Tags", ["one", "two  three"]);
        request.Headers.UserAgent.ParseAdd("nexus-tests/1.0");
        var result = await SigV4Signer.SignAsync(request, credentials, "eu-west-1", "execute-api", Now, cancellationToken: cancellationToken);

        using var client = new HttpClient();
        using var response = await client.SendAsync(request, cancellationToken);
        var wire = RawHttpRequest.Parse(await captured);

        // Sign again from the bytes received, with only the headers the Authorization header says were signed.
        string authorization = wire.Header("Authorization")!;
        string signedHeaders = authorization.Split("SignedHeaders=")[1].Split(',')[0];
        var signedNames = signedHeaders.Split(';');
        var resigned = SigV4Signer.Sign(
            wire.Method,
            wire.Uri("http"),
            wire.Headers.Where(h => signedNames.Contains(h.Key.ToLowerInvariant())),
            Convert.ToHexStringLower(SHA256.HashData(wire.BodyBytes)),
            "eu-west-1",
            "execute-api",
            credentials with { SessionToken = wire.Header("X-Amz-Security-Token") },
            wire.AmzDate);

        Assert.Equal(result.CanonicalRequest, resigned.CanonicalRequest);
        Assert.Equal(authorization, resigned.AuthorizationHeader);
        Assert.Equal("accept;content-type;host;x-amz-date;x-amz-security-token;x-nexus-tags", signedHeaders);
    }

    private static SigV4SigningResult Sign(Uri uri, string service, SigV4Options? options = null) =>
        SigV4Signer.Sign("GET", uri, [], SigV4Signer.UnsignedPayload, "us-east-1", service, Credentials, Now, options);

    private static string CanonicalUri(SigV4SigningResult result) => result.CanonicalRequest.Split('\n')[1];

    private static string Single(HttpRequestMessage request, string name) => Assert.Single(request.Headers.GetValues(name));

    private static async Task<string> CaptureOneRequestAsync(TcpListener listener, CancellationToken cancellationToken)
    {
        using var connection = await listener.AcceptTcpClientAsync(cancellationToken);
        var stream = connection.GetStream();
        var received = new List<byte>();
        var chunk = new byte[4096];
        int expectedLength = -1;
        while (expectedLength < 0 || received.Count < expectedLength)
        {
            int read = await stream.ReadAsync(chunk, cancellationToken);
            if (read == 0)
            {
                break;
            }

            received.AddRange(chunk.AsSpan(0, read));
            string text = Encoding.UTF8.GetString([.. received]);
            int headerEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (expectedLength < 0 && headerEnd >= 0)
            {
                var head = RawHttpRequest.Parse(text[..headerEnd]);
                expectedLength = Encoding.UTF8.GetByteCount(text[..(headerEnd + 4)]) + int.Parse(head.Header("Content-Length") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        await stream.WriteAsync("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"u8.ToArray(), cancellationToken);
        return Encoding.UTF8.GetString([.. received]);
    }

    /// <summary>A stream that fails if anything reads it.</summary>
    private sealed class UnreadableStream : MemoryStream
    {
        public override int Read(byte[] buffer, int offset, int count) => throw new InvalidOperationException("The content was read.");

        public override int Read(Span<byte> buffer) => throw new InvalidOperationException("The content was read.");

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            throw new InvalidOperationException("The content was read.");

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("The content was read.");
    }

    /// <summary>A stream that can be read once, from start to end, like a network stream.</summary>
    private sealed class OneShotStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;

        public override long Seek(long offset, SeekOrigin loc) => throw new NotSupportedException();
    }
}
