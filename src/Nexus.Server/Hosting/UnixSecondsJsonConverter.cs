using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nexus.Server.Hosting;

/// <summary>
/// Every time in Nexus's JSON is Unix seconds (a number), the format the seed's contract gives the credential's
/// <c>expires_at</c> and OAuth uses (RFC 7519 section 2 NumericDate for exp/iat, RFC 7662 section 2.2). Admin
/// resources, the audit log and webhook envelopes used to write ISO 8601 with seven fractional digits; one
/// converter on the HTTP JSON options makes every DateTimeOffset member follow the rule. Reading accepts Unix
/// seconds and, for clients written against the old format, an ISO 8601 string.
/// </summary>
internal sealed class UnixSecondsJsonConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.Number => DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64()),
        JsonTokenType.String => reader.GetDateTimeOffset(),
        _ => throw new JsonException("A time is Unix seconds."),
    };

    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) =>
        writer.WriteNumberValue(value.ToUnixTimeSeconds());
}
