using System.Security.Cryptography;
using System.Text;
using Amazon.Runtime;
using Amazon.Runtime.Internal;
using Amazon.Runtime.Internal.Auth;
using Nexus.Sdk.Aws;

namespace Nexus.Sdk.Tests;

/// <summary>
/// Signs the same requests with Nexus's signer and with the AWS SDK for .NET's own (<see cref="AWS4Signer"/>
/// from AWSSDK.Core), and checks they agree to the byte. The AWS SDK always sends <c>x-amz-content-sha256</c>,
/// so Nexus is asked to as well.
/// </summary>
public sealed class AwsSdkComparisonTests
{
    private static readonly DateTime SignedAt = new(2026, 3, 14, 15, 9, 26, DateTimeKind.Utc);

    [Fact]
    public void GetWithQueryIsSignedLikeTheAwsSdk()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        var query = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["status"] = "open",
            ["prefix"] = "/division abc/sub/",
            ["marker"] = "a+b=c&d~ሴ",
            ["limit"] = "10",
            ["Limit"] = "20",
        };

        // A path that needs encoding, so that the double encoding of non-S3 services is compared too.
        AssertSignedAlike(
            "GET",
            new Uri("https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"),
            "/prod/users/jane doe/orders",
            query,
            new Dictionary<string, string>(StringComparer.Ordinal) { ["Accept"] = "application/json" },
            body: null,
            "execute-api",
            "us-east-1",
            credentials);
    }

    [Fact]
    public void PostWithBodyAndSessionTokenIsSignedLikeTheAwsSdk()
    {
        var credentials = new AwsCredentials(
            "ASIAEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token/with+base64==");
        byte[] body = Encoding.UTF8.GetBytes("""{"TableName":"connections","Key":{"id":{"S":"conn_42"}}}""");

        AssertSignedAlike(
            "POST",
            new Uri("https://dynamodb.eu-west-1.amazonaws.com"),
            "/",
            new Dictionary<string, string>(StringComparer.Ordinal),
            new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["Content-Type"] = "application/x-amz-json-1.0",
                ["X-Amz-Target"] = "DynamoDB_20120810.GetItem",
            },
            body,
            "dynamodb",
            "eu-west-1",
            credentials);
    }

    [Fact]
    public void S3PutWithAKeyNeedingEncodingIsSignedLikeTheAwsSdk()
    {
        var credentials = new AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token");

        AssertSignedAlike(
            "PUT",
            new Uri("https://nexus-bucket.s3.us-west-2.amazonaws.com"),
            "/reports/2026 Q1/summary (final).txt",
            new Dictionary<string, string>(StringComparer.Ordinal),
            new Dictionary<string, string>(StringComparer.Ordinal) { ["Content-Type"] = "text/plain" },
            Encoding.UTF8.GetBytes("quarterly numbers"),
            "s3",
            "us-west-2",
            credentials);
    }

    private static void AssertSignedAlike(
        string method,
        Uri endpoint,
        string resourcePath,
        Dictionary<string, string> query,
        Dictionary<string, string> headers,
        byte[]? body,
        string service,
        string region,
        AwsCredentials credentials)
    {
        // The AWS SDK's way: an IRequest with unencoded path and parameters, signed by AWS4Signer.
        var request = new DefaultRequest(new ProbeRequest(), "Probe")
        {
            Endpoint = endpoint,
            ResourcePath = resourcePath,
            HttpMethod = method,
            UseQueryString = query.Count > 0,
            Content = body,
        };
        foreach (var (name, value) in query)
        {
            request.Parameters.Add(name, value);
        }

        foreach (var (name, value) in headers)
        {
            request.Headers[name] = value;
        }

        if (credentials.SessionToken is not null)
        {
            // The AWS SDK's pipeline sets the token header before calling the signer.
            request.Headers["X-Amz-Security-Token"] = credentials.SessionToken;
        }

        var config = new ProbeConfig(service, region);
        var expected = new AWS4Signer().SignRequest(request, config, metrics: null, credentials.AccessKeyId, credentials.SecretAccessKey, SignedAt);

        // Nexus's way: the URI as the AWS SDK sends it (its path encoding leaves "(" and ")" as they are, like
        // System.Uri; its query encoding is RFC 3986's, like Uri.EscapeDataString), and the caller's headers.
        string queryString = string.Join('&', query.Select(p => Uri.EscapeDataString(p.Key) + "=" + Uri.EscapeDataString(p.Value)));
        var uri = new Uri(endpoint, queryString.Length == 0 ? resourcePath : resourcePath + "?" + queryString);
        string payloadHash = Convert.ToHexStringLower(SHA256.HashData(body ?? []));
        var actual = SigV4Signer.Sign(
            method,
            uri,
            headers,
            payloadHash,
            region,
            service,
            credentials,
            SignedAt,
            new SigV4Options { AddContentSha256Header = true });

        // Equal signatures mean equal canonical requests: the signature covers the canonical request's hash.
        Assert.Equal(expected.ForAuthorizationHeader, actual.AuthorizationHeader);
        Assert.Equal(expected.Signature, actual.Signature);
        Assert.Equal(request.Headers["X-Amz-Date"], Added(actual, "X-Amz-Date"));
        Assert.Equal(request.Headers["X-Amz-Content-SHA256"], Added(actual, "x-amz-content-sha256"));
        Assert.Equal(credentials.SessionToken, Added(actual, "X-Amz-Security-Token"));
    }

    private static string? Added(SigV4SigningResult result, string name) =>
        result.AddedHeaders.SingleOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

    private sealed class ProbeRequest : AmazonWebServiceRequest;

    private sealed class ProbeConfig : ClientConfig
    {
        public ProbeConfig(string service, string region)
            : base(new DefaultConfigurationProvider([new DefaultConfiguration { Name = DefaultConfigurationMode.Standard }]))
        {
            AuthenticationServiceName = service;
            AuthenticationRegion = region;
        }

        public override string RegionEndpointServiceName => "probe";

        public override string ServiceVersion => "2026-01-01";

        public override string UserAgent => "nexus-sdk-tests";

        // Not reached: AuthenticationServiceName and AuthenticationRegion decide the credential scope.
        public override Amazon.Runtime.Endpoints.Endpoint DetermineServiceOperationEndpoint(
            Amazon.Runtime.Endpoints.ServiceOperationEndpointParameters parameters) => throw new NotSupportedException();
    }
}
