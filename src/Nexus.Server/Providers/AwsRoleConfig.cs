using System.Globalization;
using System.Text.RegularExpressions;

namespace Nexus.Server.Providers;

/// <summary>The role an aws_sigv4 connection assumes before it is used, resolved from the provider's aws block and the connection's own values.</summary>
/// <param name="StsEndpoint">The STS endpoint's root ("https://sts.eu-west-1.amazonaws.com/"); AssumeRole is a POST to it.</param>
/// <param name="Region">The SigV4 region the AssumeRole request is signed for: the region the connection signs with.</param>
internal sealed record AwsRole(string RoleArn, string? ExternalId, int DurationSeconds, string StsEndpoint, string Region);

/// <summary>
/// The optional fields of an aws_sigv4 provider's <c>aws</c> block that make Nexus hand out short-lived STS
/// credentials instead of the stored keys (role_arn, external_id, session_duration_seconds, sts_endpoint), and the
/// connection-level <c>role_arn</c> that overrides the provider's. The rules are those of the STS AssumeRole API
/// reference (request parameters RoleArn, ExternalId, DurationSeconds, RoleSessionName).
/// </summary>
internal static partial class AwsRoleConfig
{
    public const string Service = "service";
    public const string Region = "region";
    public const string RoleArn = "role_arn";
    public const string ExternalId = "external_id";
    public const string SessionDuration = "session_duration_seconds";
    public const string StsEndpoint = "sts_endpoint";

    /// <summary>Every key the aws block may hold; another one is a typo that would silently drop a setting.</summary>
    public static readonly string[] Keys = [Service, Region, RoleArn, ExternalId, SessionDuration, StsEndpoint];

    // AssumeRole DurationSeconds: 900 s to the role's maximum session duration, which IAM caps at 12 hours. The
    // default is STS's own. (Role chaining, i.e. keys that are themselves temporary, is limited by STS to 1 hour.)
    public const int MinDurationSeconds = 900;
    public const int MaxDurationSeconds = 43_200;
    public const int DefaultDurationSeconds = 3_600;

    /// <summary>
    /// An IAM role ARN (IAM identifiers, "IAM ARNs"): partition aws, aws-cn, aws-us-gov…, a 12-digit account and the
    /// role's path and name. ASCII-only classes with escaped '/' and '-' so that the same pattern also works in the
    /// credential form's HTML pattern attribute (which browsers compile with the 'v' flag).
    /// </summary>
    public const string RoleArnPattern = @"^arn:aws[a-z\-]*:iam::[0-9]{12}:role\/[A-Za-z0-9_+=,.@\/\-]{1,512}$";

    /// <summary>The unqualified default STS region endpoint ("AWS STS regional endpoints").</summary>
    public static string DefaultStsEndpoint(string region) => $"https://sts.{region}.amazonaws.com";

    [GeneratedRegex(RoleArnPattern)]
    private static partial Regex RoleArnRegex();

    // AssumeRole ExternalId: 2 to 1224 characters of [\w+=,.@:/-].
    [GeneratedRegex(@"^[A-Za-z0-9_+=,.@:/\-]{2,1224}$")]
    private static partial Regex ExternalIdRegex();

    public static bool IsRoleArn(string? value) => value is not null && RoleArnRegex().IsMatch(value);

    /// <summary>
    /// What is wrong with the role fields of an aws block, as (field, message) pairs. <paramref name="checkUrl"/> says
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
            else if (Uri.TryCreate(filled, UriKind.Absolute, out var uri) && (uri.AbsolutePath != "/" || uri.Query.Length > 0))
            {
                yield return ("aws.sts_endpoint", "sts_endpoint is the STS host only, e.g. https://sts.eu-west-1.amazonaws.com: AssumeRole is posted to its root, so it has no path or query.");
            }
        }
    }

    /// <summary>The role to assume for a connection's stored values, or null when neither the connection nor the provider names one.</summary>
    public static AwsRole? Resolve(Provider provider, IReadOnlyDictionary<string, string> values)
    {
        var aws = provider.Config.Aws ?? [];
        var arn = values.GetValueOrDefault(RoleArn) is { Length: > 0 } own ? own : aws.GetValueOrDefault(RoleArn);
        if (string.IsNullOrEmpty(arn))
        {
            return null;
        }

        // The same region the Bridge signs with (BridgeCredentials): the connection's, else the provider's.
        var region = values.GetValueOrDefault(Region) ?? aws.GetValueOrDefault(Region) ?? "us-east-1";
        var duration = int.TryParse(aws.GetValueOrDefault(SessionDuration), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) ? seconds : DefaultDurationSeconds;
        var endpoint = aws.GetValueOrDefault(StsEndpoint) ?? DefaultStsEndpoint(region);
        return new AwsRole(arn, aws.GetValueOrDefault(ExternalId), duration, endpoint.TrimEnd('/') + "/", region);
    }
}
