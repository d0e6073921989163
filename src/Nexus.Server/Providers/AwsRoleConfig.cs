using System.Globalization;
using System.Text.RegularExpressions;

namespace Nexus.Server.Providers;

/// <summary>The role an aws_sigv4 connection assumes before it is used, resolved from the provider's aws block and the connection's own values.</summary>
/// <param name="StsEndpoint">The STS endpoint's root ("https://sts.eu-west-1.amazonaws.com/"); AssumeRole is a POST to it.</param>
/// <param name="SigningRegion">
/// The SigV4 region the AssumeRole request is signed for. STS checks it against the endpoint it was sent to (a request
/// to sts.eu-west-1 scoped to us-east-1 is refused with SignatureDoesNotMatch), so it follows the endpoint, not the
/// region the connection's own API calls are signed for.
/// </param>
internal sealed record AwsRole(string RoleArn, string? ExternalId, int DurationSeconds, string StsEndpoint, string SigningRegion)
{
    // The external id is a shared secret of sorts (it guards against the confused deputy), so it stays out of logs.
    public override string ToString() =>
        $"AwsRole {{ RoleArn = {RoleArn}, DurationSeconds = {DurationSeconds}, StsEndpoint = {StsEndpoint}, SigningRegion = {SigningRegion} }}";
}

/// <summary>
/// The optional fields of an aws_sigv4 provider's <c>aws</c> block that make Nexus hand out short-lived STS
/// credentials instead of the stored keys (role_arn, external_id, session_duration_seconds, sts_endpoint,
/// sts_region), and the connection-level <c>role_arn</c> that overrides the provider's. The rules are those of the
/// STS AssumeRole API reference (request parameters RoleArn, ExternalId, DurationSeconds, RoleSessionName).
/// </summary>
internal static partial class AwsRoleConfig
{
    public const string Service = "service";
    public const string Region = "region";
    public const string RoleArn = "role_arn";
    public const string ExternalId = "external_id";
    public const string SessionDuration = "session_duration_seconds";
    public const string StsEndpoint = "sts_endpoint";
    public const string StsRegion = "sts_region";

    /// <summary>Every key the aws block may hold; another one is a typo that would silently drop a setting.</summary>
    public static readonly string[] Keys = [Service, Region, RoleArn, ExternalId, SessionDuration, StsEndpoint, StsRegion];

    // AssumeRole DurationSeconds: 900 s to the role's maximum session duration, which IAM caps at 12 hours. The
    // default is STS's own. Role chaining (keys that are themselves temporary) is capped by STS at 1 hour.
    public const int MinDurationSeconds = 900;
    public const int MaxDurationSeconds = 43_200;
    public const int DefaultDurationSeconds = 3_600;
    public const int MaxChainedDurationSeconds = 3_600;

    /// <summary>
    /// An IAM role ARN (IAM identifiers, "IAM ARNs"): partition aws, aws-cn, aws-us-gov…, a 12-digit account and the
    /// role's path and name. ASCII-only classes with escaped '/' and '-' so that the same pattern also works in the
    /// credential form's HTML pattern attribute (which browsers compile with the 'v' flag).
    /// </summary>
    public const string RoleArnPattern = @"^arn:aws[a-z\-]*:iam::[0-9]{12}:role\/[A-Za-z0-9_+=,.@\/\-]{1,512}$";

    /// <summary>
    /// An AWS region name (us-east-1, eu-central-1, us-gov-west-1, cn-north-1, us-isob-east-1): it becomes part of a
    /// host name and of the SigV4 credential scope, so nothing else (dots, slashes, ports) may get through. ASCII
    /// classes only: .NET's \d also matches non-ASCII digits.
    /// </summary>
    public const string RegionPattern = "^[a-z]{2}(-[a-z0-9]{1,20}){1,4}-[0-9]{1,3}$";

    [GeneratedRegex(RoleArnPattern)]
    private static partial Regex RoleArnRegex();

    [GeneratedRegex(RegionPattern)]
    private static partial Regex RegionRegex();

    // AssumeRole ExternalId: 2 to 1224 characters of [\w+=,.@:/-].
    [GeneratedRegex(@"^[A-Za-z0-9_+=,.@:/\-]{2,1224}$")]
    private static partial Regex ExternalIdRegex();

    // The STS hosts whose region is in the name ("AWS STS regional endpoints", FIPS and the China partition), and
    // interface VPC endpoints (vpce-…-….sts.<region>.vpce.amazonaws.com, optionally with an availability zone).
    [GeneratedRegex(@"^sts(-fips)?\.(?<region>[a-z0-9-]{1,40})\.amazonaws\.com(\.cn)?$")]
    private static partial Regex RegionalStsHost();

    [GeneratedRegex(@"^vpce-[a-z0-9-]{1,100}\.sts(-fips)?\.(?<region>[a-z0-9-]{1,40})\.vpce\.amazonaws\.com(\.cn)?$")]
    private static partial Regex VpcEndpointStsHost();

    public static bool IsRoleArn(string? value) => value is not null && RoleArnRegex().IsMatch(value);

    public static bool IsRegion(string? value) => value is { Length: <= 50 } && RegionRegex().IsMatch(value);

    /// <summary>
    /// The default STS endpoint of a region ("AWS STS regional endpoints"): https://sts.{region}.amazonaws.com, and
    /// in the China partition (cn-north-1, cn-northwest-1) https://sts.{region}.amazonaws.com.cn. Built with
    /// UriBuilder from a region that <see cref="IsRegion"/> accepted, so the region can only ever be one DNS label
    /// of the host.
    /// </summary>
    public static string DefaultStsEndpoint(string region)
    {
        if (!IsRegion(region))
        {
            throw new ArgumentException($"'{region}' is not an AWS region.", nameof(region));
        }

        var suffix = region.StartsWith("cn-", StringComparison.Ordinal) ? "amazonaws.com.cn" : "amazonaws.com";
        return new UriBuilder(Uri.UriSchemeHttps, $"sts.{region}.{suffix}").Uri.AbsoluteUri;
    }

    /// <summary>
    /// The region an STS host's requests must be signed for, when its name says: sts.&lt;r&gt;.amazonaws.com(.cn)
    /// and its FIPS and VPC endpoint forms are &lt;r&gt;; the global sts.amazonaws.com is us-east-1. Null for any
    /// other host (a proxy, a loopback test fake), where sts_region or the connection's region applies.
    /// </summary>
    public static string? SigningRegionOf(string host)
    {
        host = host.ToLowerInvariant().TrimEnd('.');
        if (host == "sts.amazonaws.com")
        {
            return "us-east-1";
        }

        var match = RegionalStsHost().Match(host);
        if (!match.Success)
        {
            match = VpcEndpointStsHost().Match(host);
        }

        return match.Success && IsRegion(match.Groups["region"].Value) ? match.Groups["region"].Value : null;
    }

    /// <summary>What is wrong with an STS endpoint beyond the upstream policy: AssumeRole is posted to its root.</summary>
    public static string? EndpointShapeProblem(Uri uri) =>
        uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.Fragment.Length > 0 || uri.UserInfo.Length > 0
            ? "is the STS host only, e.g. https://sts.eu-west-1.amazonaws.com: AssumeRole is posted to its root, so it has no path, query or user info."
            : null;

    /// <summary>
    /// What is wrong with the fields of an aws block, as (field, message) pairs. <paramref name="checkUrl"/> says
    /// what is wrong with an sts_endpoint URL (the upstream policy at registration; https only in the catalog). With
    /// <paramref name="skipPlaceholders"/>, a value still holding a {placeholder} is left to registration, where it
    /// is filled.
    /// </summary>
    public static IEnumerable<(string Field, string Message)> Problems(IReadOnlyDictionary<string, string> aws, Func<string, string?> checkUrl, bool skipPlaceholders = false)
    {
        bool Unfilled(string value) => skipPlaceholders && ProviderCatalog.PlaceholderPattern().IsMatch(value);

        foreach (var key in aws.Keys.Where(k => !Keys.Contains(k)))
        {
            yield return ($"aws.{key}", $"'{key}' is not a field of the aws block; it has: {string.Join(", ", Keys)}.");
        }

        foreach (var key in new[] { Region, StsRegion })
        {
            if (aws.TryGetValue(key, out var region) && !Unfilled(region) && !IsRegion(region))
            {
                yield return ($"aws.{key}", $"{key} must be an AWS region such as eu-west-1 or cn-north-1 ({RegionPattern}).");
            }
        }

        if (aws.TryGetValue(RoleArn, out var arn) && !Unfilled(arn) && !IsRoleArn(arn))
        {
            yield return ("aws.role_arn", $"role_arn must be an IAM role ARN, e.g. arn:aws:iam::123456789012:role/nexus-reader ({RoleArnPattern}).");
        }

        if (aws.TryGetValue(ExternalId, out var externalId) && !Unfilled(externalId) && !ExternalIdRegex().IsMatch(externalId))
        {
            yield return ("aws.external_id", "external_id is 2 to 1224 letters, digits or _ + = , . @ : / - (STS AssumeRole ExternalId).");
        }

        if (aws.TryGetValue(SessionDuration, out var duration)
            && (!int.TryParse(duration, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || seconds is < MinDurationSeconds or > MaxDurationSeconds))
        {
            yield return ("aws.session_duration_seconds", $"session_duration_seconds is a whole number from {MinDurationSeconds} to {MaxDurationSeconds} (STS AssumeRole DurationSeconds); the default is {DefaultDurationSeconds}.");
        }

        if (aws.TryGetValue(StsEndpoint, out var endpoint))
        {
            var filled = skipPlaceholders ? ProviderCatalog.PlaceholderPattern().Replace(endpoint, "sample") : endpoint;
            if (checkUrl(filled) is { } problem)
            {
                yield return ("aws.sts_endpoint", $"sts_endpoint {problem}");
            }
            else if (Uri.TryCreate(filled, UriKind.Absolute, out var uri) && EndpointShapeProblem(uri) is { } shape)
            {
                yield return ("aws.sts_endpoint", $"sts_endpoint {shape}");
            }
            else if (uri is not null && !Unfilled(endpoint) && SigningRegionOf(uri.Host) is { } implied
                && aws.TryGetValue(StsRegion, out var stsRegion) && !Unfilled(stsRegion) && stsRegion != implied)
            {
                // The host decides what STS accepts; a contradicting sts_region would only ever fail.
                yield return ("aws.sts_region", $"sts_region '{stsRegion}' contradicts sts_endpoint, whose requests are signed for {implied}; leave sts_region out.");
            }
        }
    }

    /// <summary>The region a connection signs with: its own <c>region</c> value if it has one, else the provider's, else us-east-1.</summary>
    /// <returns>The region, whether it came from the connection's values, and null or what is wrong with it.</returns>
    public static (string Region, bool FromConnection, string? Problem) ResolveRegion(Provider provider, IReadOnlyDictionary<string, string> values)
    {
        var own = values.GetValueOrDefault(Region) is { Length: > 0 } value ? value : null;
        var region = own ?? provider.Config.Aws?.GetValueOrDefault(Region) ?? "us-east-1";
        // Checked wherever it is resolved, not only at capture: a custom credential_schema may have no pattern for
        // it, and a provider row may predate the check. It ends up in a host name and in the signature's scope.
        return IsRegion(region)
            ? (region, own is not null, null)
            : (region, own is not null, own is not null
                ? $"The connection's region is not an AWS region such as eu-west-1 ({RegionPattern})."
                : $"The provider's aws.region is not an AWS region such as eu-west-1 ({RegionPattern}); fix it with PATCH /v1/providers/{{name}}.");
    }

    /// <summary>
    /// The role to assume for a connection's stored values (null when neither the connection nor the provider names
    /// one), or what is wrong with the settings it would be built from, as (field of the connection's values or
    /// null, message). <paramref name="region"/> is the connection's resolved region (<see cref="ResolveRegion"/>).
    /// </summary>
    public static (AwsRole? Role, string? Field, string? Problem) Resolve(Provider provider, IReadOnlyDictionary<string, string> values, string region)
    {
        var aws = provider.Config.Aws ?? [];
        var own = values.GetValueOrDefault(RoleArn) is { Length: > 0 } value ? value : null;
        var arn = own ?? aws.GetValueOrDefault(RoleArn);
        if (string.IsNullOrEmpty(arn))
        {
            return (null, null, null);
        }

        if (!IsRoleArn(arn))
        {
            return own is not null
                ? (null, RoleArn, $"role_arn must be an IAM role ARN, e.g. arn:aws:iam::123456789012:role/nexus-reader ({RoleArnPattern}).")
                : (null, null, "The provider's aws.role_arn is not an IAM role ARN; fix it with PATCH /v1/providers/{name}.");
        }

        string endpoint;
        string? signingRegion;
        if (aws.GetValueOrDefault(StsEndpoint) is { } configured)
        {
            if (!Uri.TryCreate(configured, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host) || EndpointShapeProblem(uri) is not null)
            {
                return (null, null, "The provider's aws.sts_endpoint is not an STS host URL (no path, query or user info); fix it with PATCH /v1/providers/{name}.");
            }

            endpoint = uri.GetLeftPart(UriPartial.Authority) + "/";
            // Signed for the region the endpoint serves, which STS checks; only a host whose name does not say
            // (a proxy, a test fake) takes sts_region, and then the connection's region.
            signingRegion = SigningRegionOf(uri.Host);
            if (signingRegion is null && aws.GetValueOrDefault(StsRegion) is { } explicitRegion)
            {
                if (!IsRegion(explicitRegion))
                {
                    return (null, null, "The provider's aws.sts_region is not an AWS region; fix it with PATCH /v1/providers/{name}.");
                }

                signingRegion = explicitRegion;
            }
        }
        else
        {
            endpoint = DefaultStsEndpoint(region);
            signingRegion = region;
        }

        var duration = int.TryParse(aws.GetValueOrDefault(SessionDuration), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) ? seconds : DefaultDurationSeconds;
        return (new AwsRole(arn, aws.GetValueOrDefault(ExternalId), duration, endpoint, signingRegion ?? region), null, null);
    }
}
