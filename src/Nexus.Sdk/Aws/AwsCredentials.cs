namespace Nexus.Sdk.Aws;

/// <summary>
/// AWS credentials used to sign a request with Signature Version 4.
/// </summary>
/// <param name="AccessKeyId">The access key id (for example <c>AKIA…</c> or, for temporary credentials, <c>ASIA…</c>).</param>
/// <param name="SecretAccessKey">The secret access key. It never leaves the process: only values derived from it are sent.</param>
/// <param name="SessionToken">
/// The session token of temporary credentials (STS), or <see langword="null"/> for long-term keys.
/// When present it is sent, and signed, as the <c>X-Amz-Security-Token</c> header.
/// </param>
public sealed record AwsCredentials(string AccessKeyId, string SecretAccessKey, string? SessionToken = null)
{
    /// <summary>Describes the credentials without revealing the secret access key or the session token.</summary>
    /// <returns>The access key id, with the secret parts redacted.</returns>
    public override string ToString() =>
        $"AwsCredentials {{ AccessKeyId = {AccessKeyId}, SecretAccessKey = ***, SessionToken = {(SessionToken is null ? "null" : "***")} }}";
}
