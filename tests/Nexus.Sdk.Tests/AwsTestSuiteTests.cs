using Nexus.Sdk.Aws;

namespace Nexus.Sdk.Tests;

/// <summary>
/// Signs every request of the official AWS SigV4 test suite and checks the canonical request, the string to
/// sign and the Authorization header against the ones AWS published.
/// </summary>
public sealed class AwsTestSuiteTests
{
    /// <summary>
    /// Two cases of the published suite contradict themselves: their <c>.req</c> and <c>.creq</c> were edited
    /// after the signature was computed, so no signer can match all their files (the last line of the
    /// <c>.sts</c> is the SHA-256 of a canonical request other than the published <c>.creq</c>). Each erratum
    /// undoes the edit. The test proves it is the right one with the suite's own files: the corrected canonical
    /// request hashes to the published <c>.sts</c>, and the corrected Authorization header is the one in the
    /// <c>.sreq</c>. The signer is checked against the uncorrected <c>.creq</c> as well.
    /// </summary>
    private static readonly Dictionary<string, Erratum> Errata = new(StringComparer.Ordinal)
    {
        // .req and .creq carry (and sign) a Content-Length: 13 header that the .sts, .authz and .sreq never had.
        ["post-x-www-form-urlencoded"] = new(
            request => request.WithoutHeader("Content-Length"),
            WithoutContentLength,
            authz => authz),

        // The same Content-Length edit, also made to the SignedHeaders of the .authz (not to its signature, nor
        // to the .sreq); and the charset changed from "utf8", the one that was signed, to "utf-8".
        ["post-x-www-form-urlencoded-parameters"] = new(
            request => request.WithoutHeader("Content-Length")
                .WithHeader("Content-Type", "application/x-www-form-urlencoded; charset=utf8"),
            creq => WithoutContentLength(creq).Replace("charset=utf-8", "charset=utf8", StringComparison.Ordinal),
            WithoutContentLength),
    };

    public static TheoryData<string> CaseNames()
    {
        var names = new TheoryData<string>();
        foreach (var vector in AwsSigV4TestSuite.Cases)
        {
            names.Add(vector.Name);
        }

        return names;
    }

    [Fact]
    public void SuiteHoldsAllTwentyEightCases()
    {
        Assert.Equal(28, AwsSigV4TestSuite.Cases.Count);
        Assert.Equal(28, AwsSigV4TestSuite.Cases.Select(c => c.Name).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void MatchesAwsVectorForEveryCase(string name)
    {
        var vector = AwsSigV4TestSuite.Case(name);
        var request = RawHttpRequest.Parse(vector.Req);

        // The signer gets the path exactly as written (.NET would otherwise remove dot segments itself).
        Assert.Equal(request.Target.Split('?')[0], request.Uri().AbsolutePath);

        var signed = Sign(request);
        Assert.Equal(vector.Creq, signed.CanonicalRequest);

        string expectedAuthz = vector.Authz;
        if (!vector.IsSelfConsistent)
        {
            Assert.True(Errata.TryGetValue(name, out var erratum), $"{name}: its files contradict one another and no erratum explains why.");
            request = erratum.FixRequest(request);
            string correctedCreq = erratum.FixCanonicalRequest(vector.Creq);
            Assert.Equal(vector.Sts.Split('\n')[^1], AwsSigV4TestSuite.Sha256Hex(correctedCreq));
            expectedAuthz = erratum.FixAuthorization(vector.Authz);
            Assert.Equal(vector.SreqAuthorization, expectedAuthz);

            signed = Sign(request);
            Assert.Equal(correctedCreq, signed.CanonicalRequest);
        }

        Assert.Equal(vector.Sts, signed.StringToSign);
        Assert.Equal(expectedAuthz, signed.AuthorizationHeader);
        Assert.Equal(vector.SreqAuthorization, signed.AuthorizationHeader);
        Assert.Equal(vector.Authz[(vector.Authz.LastIndexOf('=') + 1)..], signed.Signature);
        Assert.Contains(new KeyValuePair<string, string>("X-Amz-Date", request.Header("X-Amz-Date")!), signed.AddedHeaders);
    }

    [Fact]
    public void OnlyTheTwoFormCasesContradictTheirOwnFiles()
    {
        var inconsistent = AwsSigV4TestSuite.Cases.Where(c => !c.IsSelfConsistent).Select(c => c.Name).Order(StringComparer.Ordinal);
        Assert.Equal(Errata.Keys.Order(StringComparer.Ordinal), inconsistent);
    }

    [Fact]
    public void SessionTokenSignedBeforeMatchesAndTokenAddedAfterIsNotSigned()
    {
        // post-sts-header-before: the token is part of the request, so it is signed.
        var before = Sign(RawHttpRequest.Parse(AwsSigV4TestSuite.Case("post-sts-header-before").Req));
        Assert.Contains(new KeyValuePair<string, string>("X-Amz-Security-Token", AwsSigV4TestSuite.StsToken), before.AddedHeaders);
        Assert.Equal("host;x-amz-date;x-amz-security-token", before.SignedHeaders);

        // post-sts-header-after: the signed request carries the token, added once the request was signed.
        var after = AwsSigV4TestSuite.Case("post-sts-header-after");
        Assert.Contains("X-Amz-Security-Token:" + AwsSigV4TestSuite.StsToken, after.Sreq, StringComparison.Ordinal);
        Assert.Equal("host;x-amz-date", Sign(RawHttpRequest.Parse(after.Req)).SignedHeaders);
    }

    private static SigV4SigningResult Sign(RawHttpRequest request)
    {
        // A request that carries X-Amz-Security-Token was signed with temporary credentials holding that token.
        string? token = request.Header("X-Amz-Security-Token");
        var credentials = new AwsCredentials(AwsSigV4TestSuite.AccessKeyId, AwsSigV4TestSuite.SecretAccessKey, token);
        return SigV4Signer.Sign(
            request.Method,
            request.Uri(),
            request.Headers,
            AwsSigV4TestSuite.Sha256Hex(request.Body),
            AwsSigV4TestSuite.Region,
            AwsSigV4TestSuite.Service,
            credentials,
            request.AmzDate);
    }

    private static string WithoutContentLength(string text) =>
        text.Replace("content-length:13\n", "", StringComparison.Ordinal).Replace("content-length;", "", StringComparison.Ordinal);

    private sealed record Erratum(
        Func<RawHttpRequest, RawHttpRequest> FixRequest,
        Func<string, string> FixCanonicalRequest,
        Func<string, string> FixAuthorization);
}
