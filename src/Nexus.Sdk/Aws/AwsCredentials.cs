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
[System.Text.Json.Serialization.JsonConverter(typeof(AwsCredentialsJsonConverter))]
public sealed record AwsCredentials(string AccessKeyId, string SecretAccessKey, string? SessionToken = null)
{
    /// <summary>Describes the credentials without revealing the secret access key or the session token.</summary>
    /// <returns>The access key id, with the secret parts redacted.</returns>
    public override string ToString() =>
        $"AwsCredentials {{ AccessKeyId = {AccessKeyId}, SecretAccessKey = ***, SessionToken = {(SessionToken is null ? "null" : "***")} }}";
}

/// <summary>
/// Writes <see cref="AwsCredentials"/> without the secret access key or the session token (each <c>"[redacted]"</c>;
/// a missing session token stays null). Not read from JSON.
/// </summary>
public sealed class AwsCredentialsJsonConverter : System.Text.Json.Serialization.JsonConverter<AwsCredentials>
{
    /// <inheritdoc/>
    public override AwsCredentials Read(ref System.Text.Json.Utf8JsonReader reader, Type typeToConvert, System.Text.Json.JsonSerializerOptions options) =>
        throw new NotSupportedException("AwsCredentials are not read from JSON: their secrets are never written to it.");

    /// <inheritdoc/>
    public override void Write(System.Text.Json.Utf8JsonWriter writer, AwsCredentials value, System.Text.Json.JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value);
        writer.WriteStartObject();
        writer.WriteString("AccessKeyId", value.AccessKeyId);
        writer.WriteString("SecretAccessKey", NexusCredentialJsonConverter.Redacted);
        if (value.SessionToken is null)
        {
            writer.WriteNull("SessionToken");
        }
        else
        {
            writer.WriteString("SessionToken", NexusCredentialJsonConverter.Redacted);
        }

        writer.WriteEndObject();
    }
}
