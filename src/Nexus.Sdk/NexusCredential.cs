using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Nexus.Sdk.Aws;

namespace Nexus.Sdk;

/// <summary>
/// A connection's credential from <c>GET /v1/token/{id}</c>: the <see cref="Strategy"/> and the values, applied to a
/// request by <see cref="ApplyAsync"/>. <see cref="ToString"/> never shows a value, nor does System.Text.Json
/// (<see cref="NexusCredentialJsonConverter"/>: the connection, strategy, field names and expiry, the values redacted).
/// </summary>
[JsonConverter(typeof(NexusCredentialJsonConverter))]
public sealed class NexusCredential
{
    private readonly Dictionary<string, string> values;
    private readonly string? headerName;
    private readonly string? headerValue;
    private readonly string? queryPair;
    private readonly string? queryName;

    internal NexusCredential(string connectionId, CredentialStrategy strategy, Dictionary<string, string> values, DateTimeOffset? expiresAt)
    {
        ConnectionId = connectionId;
        Strategy = strategy;
        this.values = values;
        ExpiresAt = expiresAt;
        // Everything a request needs is computed once per fetched credential, so that applying a cached one is a header set.
        switch (strategy.Type)
        {
            case CredentialStrategy.OAuth2:
                headerName = "Authorization";
                headerValue = "Bearer " + Required("access_token");
                break;
            case CredentialStrategy.BasicAuth:
                // RFC 7617 §2: base64 of user-id ":" password, UTF-8.
                headerName = "Authorization";
                headerValue = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(Required("username") + ":" + Required("password")));
                break;
            case CredentialStrategy.ApiKey when strategy.In == "query":
                queryName = strategy.Name ?? throw Unusable("the API key's query parameter has no name");
                queryPair = Uri.EscapeDataString(queryName) + "=" + Uri.EscapeDataString((strategy.Prefix ?? "") + Required("api_key"));
                break;
            case CredentialStrategy.ApiKey:
                headerName = strategy.Name ?? throw Unusable("the API key's header has no name");
                headerValue = (strategy.Prefix ?? "") + Required("api_key");
                break;
            case CredentialStrategy.AwsSigV4:
                Aws = new AwsCredentials(Required("access_key_id"), Required("secret_access_key"), values.GetValueOrDefault("session_token"));
                if (strategy.Region is null || strategy.Service is null)
                {
                    throw Unusable("the aws_sigv4 strategy lacks region or service");
                }

                break;
            default:
                throw Unusable($"the strategy '{strategy.Type}' is not known to this SDK version");
        }
    }

    /// <summary>The connection this credential belongs to.</summary>
    public string ConnectionId { get; }

    /// <summary>The connection's per-connection values (a Shopify <c>shop</c>, a Salesforce <c>instance</c>); empty when none. Not secrets.</summary>
    public IReadOnlyDictionary<string, string> ConnectionConfig { get; private init; } = new Dictionary<string, string>();

    /// <summary>How to apply it.</summary>
    public CredentialStrategy Strategy { get; }

    /// <summary>When it expires (null: it does not, as far as Nexus knows).</summary>
    public DateTimeOffset? ExpiresAt { get; }

    /// <summary>oauth2: the access token.</summary>
    public string? AccessToken => values.GetValueOrDefault("access_token");

    /// <summary>api_key: the key (without prefix).</summary>
    public string? ApiKey => values.GetValueOrDefault("api_key");

    /// <summary>basic_auth: the username.</summary>
    public string? Username => values.GetValueOrDefault("username");

    /// <summary>basic_auth: the password.</summary>
    public string? Password => values.GetValueOrDefault("password");

    /// <summary>aws_sigv4: the keys (and session token) to sign with.</summary>
    public AwsCredentials? Aws { get; }

    /// <summary>The names of the credential's fields (never their values).</summary>
    public IEnumerable<string> FieldNames => values.Keys;

    /// <summary>Whether <paramref name="other"/> is the same credential: same connection, strategy and values.</summary>
    internal bool HasSameValues(NexusCredential other)
    {
        if (ReferenceEquals(this, other))
        {
            return true;
        }

        if (ConnectionId != other.ConnectionId || Strategy != other.Strategy || values.Count != other.values.Count)
        {
            return false;
        }

        foreach (var (field, value) in values)
        {
            if (!other.values.TryGetValue(field, out var otherValue) || !string.Equals(value, otherValue, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A field of the credential by name (e.g. a custom schema's field), or null.</summary>
    public string? GetValue(string field) => values.GetValueOrDefault(field);

    /// <summary>
    /// Puts the credential on <paramref name="request"/>: <c>Authorization: Bearer</c>, the API key header or query
    /// parameter (with its prefix), <c>Authorization: Basic</c>, or an AWS SigV4 signature (with
    /// <c>X-Amz-Security-Token</c> when there is a session token). Applying again (after a refresh) replaces what an
    /// earlier call set. Only SigV4 does real work (it hashes the body); the others complete synchronously.
    /// </summary>
    public ValueTask ApplyAsync(HttpRequestMessage request, TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (headerName is not null)
        {
            var headers = request.Headers;
            headers.Remove(headerName);
            headers.TryAddWithoutValidation(headerName, headerValue);
            return ValueTask.CompletedTask;
        }

        if (queryPair is not null)
        {
            request.RequestUri = WithQueryParameter(request.RequestUri ?? throw new ArgumentException("The request has no URI.", nameof(request)), queryName!, queryPair);
            return ValueTask.CompletedTask;
        }

        return new ValueTask(SignAsync(request, (time ?? TimeProvider.System).GetUtcNow(), cancellationToken));
    }

    private async Task SignAsync(HttpRequestMessage request, DateTimeOffset now, CancellationToken cancellationToken) =>
        await SigV4Signer.SignAsync(request, Aws!, Strategy.Region!, Strategy.Service!, now, null, cancellationToken).ConfigureAwait(false);

    /// <summary>The URI with every <paramref name="name"/> parameter replaced by <paramref name="pair"/> (already encoded).</summary>
    internal static Uri WithQueryParameter(Uri uri, string name, string pair)
    {
        if (!uri.IsAbsoluteUri)
        {
            throw new ArgumentException("An API key in the query needs an absolute request URI.", nameof(uri));
        }

        var text = uri.AbsoluteUri;
        var hash = text.IndexOf('#', StringComparison.Ordinal);
        var fragment = hash < 0 ? "" : text[hash..];
        if (hash >= 0)
        {
            text = text[..hash];
        }

        var question = text.IndexOf('?', StringComparison.Ordinal);
        if (question < 0)
        {
            return new Uri(text + "?" + pair + fragment);
        }

        var query = text[(question + 1)..];
        var builder = new StringBuilder(text.Length + pair.Length + 1).Append(text, 0, question + 1);
        foreach (var part in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = part.IndexOf('=', StringComparison.Ordinal);
            var partName = Uri.UnescapeDataString(equals < 0 ? part : part[..equals]);
            if (partName != name)
            {
                builder.Append(part).Append('&');
            }
        }

        return new Uri(builder.Append(pair).Append(fragment).ToString());
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"NexusCredential {{ ConnectionId = {ConnectionId}, Strategy = {Strategy.Type}, Fields = [{string.Join(", ", values.Keys)}] (values hidden), ExpiresAt = {ExpiresAt?.ToString("O", System.Globalization.CultureInfo.InvariantCulture) ?? "none"} }}";

    internal static NexusCredential Parse(string connectionId, JsonElement root)
    {
        var strategy = CredentialStrategy.From(root.GetProperty("strategy"));
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        if (root.TryGetProperty("credentials", out var credentials) && credentials.ValueKind == JsonValueKind.Object)
        {
            foreach (var field in credentials.EnumerateObject())
            {
                if (field.Value.ValueKind == JsonValueKind.String)
                {
                    values[field.Name] = field.Value.GetString()!;
                }
            }
        }

        var expiresAt = Json.Long(root, "expires_at") is { } seconds ? DateTimeOffset.FromUnixTimeSeconds(seconds) : (DateTimeOffset?)null;
        return new NexusCredential(connectionId, strategy, values, expiresAt) { ConnectionConfig = Json.Strings(root, "connection_config") };
    }

    private string Required(string field) =>
        values.TryGetValue(field, out var value) && value.Length > 0 ? value : throw Unusable($"the credential has no '{field}'");

    private NexusException Unusable(string why) => new($"The credential of connection {ConnectionId} cannot be applied: {why}.", null, "credential_unusable", ConnectionId);
}

/// <summary>
/// Writes a <see cref="NexusCredential"/> without its secrets (as the Go and TypeScript SDKs encode theirs):
/// <c>{"connection_id", "strategy", "fields", "expires_at", "credentials": "[redacted]"}</c>. A credential is not read
/// from JSON: it comes from Nexus (<see cref="NexusClient.GetCredentialsAsync"/>).
/// </summary>
public sealed class NexusCredentialJsonConverter : JsonConverter<NexusCredential>
{
    internal const string Redacted = "[redacted]";

    /// <inheritdoc/>
    public override NexusCredential Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new NotSupportedException("A NexusCredential is not read from JSON: its values are never written to it.");

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, NexusCredential value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value);
        writer.WriteStartObject();
        writer.WriteString("connection_id", value.ConnectionId);
        writer.WriteString("strategy", value.Strategy.Type);
        writer.WriteStartArray("fields");
        foreach (var field in value.FieldNames)
        {
            writer.WriteStringValue(field);
        }

        writer.WriteEndArray();
        if (value.ExpiresAt is { } expiresAt)
        {
            writer.WriteNumber("expires_at", expiresAt.ToUnixTimeSeconds());
        }
        else
        {
            writer.WriteNull("expires_at");
        }

        writer.WriteString("credentials", Redacted);
        writer.WriteEndObject();
    }
}

/// <summary>Helpers for <see cref="AuthenticationHeaderValue"/>-free code paths.</summary>
internal static class Requests
{
    /// <summary>
    /// Whether the request can be sent a second time: no content, or content that serializes again
    /// (<see cref="ByteArrayContent"/> and its subclasses <see cref="StringContent"/>, <see cref="FormUrlEncodedContent"/>;
    /// <see cref="ReadOnlyMemoryContent"/>; <see cref="MultipartContent"/> of those).
    /// </summary>
    public static bool CanReplay(HttpContent? content) => content switch
    {
        null => true,
        ByteArrayContent or ReadOnlyMemoryContent => true,
        MultipartContent multipart => multipart.All(CanReplay),
        _ => false,
    };

    /// <summary>
    /// An empty body for a request that must not be sent twice and has none: the same bytes on the wire
    /// (<c>Content-Length: 0</c>, which .NET sends for a POST without content anyway), but SocketsHttpHandler sends a
    /// request without content again by itself, up to 3 times, when the connection closes before any byte of an answer,
    /// and a request with content never.
    /// </summary>
    public static HttpContent NeverResent() => new ByteArrayContent([]);
}
