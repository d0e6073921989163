using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nexus.Sdk;

/// <summary>
/// Settings of a <see cref="NexusClient"/>. <see cref="FromEnvironment"/> reads <c>NEXUS_URL</c> and <c>NEXUS_API_KEY</c>.
/// Neither <see cref="ToString"/> nor System.Text.Json shows the API key (<see cref="NexusApiKeyJsonConverter"/>: <c>"[redacted]"</c>).
/// </summary>
public sealed class NexusClientOptions
{
    /// <summary>The environment variable holding Nexus's base URL.</summary>
    public const string UrlVariable = "NEXUS_URL";

    /// <summary>The environment variable holding the gateway API key.</summary>
    public const string ApiKeyVariable = "NEXUS_API_KEY";

    /// <summary>Nexus's base URL, e.g. <c>https://nexus.example.com</c>.</summary>
    public Uri? BaseUrl { get; set; }

    /// <summary>The gateway API key sent as <c>X-API-Key</c>. Never logged, never part of a message; <c>"[redacted]"</c> in JSON.</summary>
    [JsonConverter(typeof(NexusApiKeyJsonConverter))]
    public string? ApiKey { get; set; }

    /// <summary>Timeout of each HTTP call to Nexus (not of <see cref="NexusClient.WaitUntilActiveAsync"/>); a call that times out is not retried. Default 30 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A cached credential is used until this long before its <c>expires_at</c>, but at most half the time it had left when fetched. Default 60 s.</summary>
    public TimeSpan CredentialExpiryMargin { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a credential without <c>expires_at</c> (API keys, Basic, stored AWS keys) is cached. Default 5 minutes.</summary>
    public TimeSpan CredentialMaxAge { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Retries of an idempotent call after 429, 502, 503, 504 or a connection that failed before any answer (of the
    /// forced refresh: after 429 or 503 only). Default 2 (3 attempts in all); 0 turns retries off.
    /// </summary>
    public int MaxRetries { get; set; } = 2;

    /// <summary>First retry delay without <c>Retry-After</c>; doubles per retry (250 ms, then 500 ms), with full jitter. Default 250 ms.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The longest wait before a retry. A <c>Retry-After</c> longer than this is not waited for: the typed error is thrown at once. Default 10 s.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Whether <see cref="NexusClient.SendThroughBridgeAsync"/> follows a redirect that points back at the same
    /// connection's Bridge on Nexus (the Bridge's rewrite of a redirect inside the provider's API), sending the API key
    /// again only there; any other redirect always comes back as the 3xx. Default true, as <see cref="HttpClient"/>
    /// follows redirects by default; false hands every Bridge 3xx back.
    /// </summary>
    public bool FollowBridgeRedirects { get; set; } = true;

    /// <summary>The clock for credential expiry and waits (tests pass a manual one). Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Options from <c>NEXUS_URL</c> and <c>NEXUS_API_KEY</c>.</summary>
    public static NexusClientOptions FromEnvironment()
    {
        var options = new NexusClientOptions();
        options.ApplyEnvironment();
        return options;
    }

    /// <summary>Fills <see cref="BaseUrl"/> and <see cref="ApiKey"/> from the environment where they are not set.</summary>
    public NexusClientOptions ApplyEnvironment()
    {
        if (BaseUrl is null && Environment.GetEnvironmentVariable(UrlVariable) is { Length: > 0 } url)
        {
            BaseUrl = new Uri(url, UriKind.Absolute);
        }

        if (string.IsNullOrEmpty(ApiKey) && Environment.GetEnvironmentVariable(ApiKeyVariable) is { Length: > 0 } key)
        {
            ApiKey = key;
        }

        return this;
    }

    internal void Validate()
    {
        if (BaseUrl is null || !BaseUrl.IsAbsoluteUri || (BaseUrl.Scheme != Uri.UriSchemeHttps && BaseUrl.Scheme != Uri.UriSchemeHttp))
        {
            throw new InvalidOperationException($"Nexus's URL is missing or not an absolute http(s) URL: set NexusClientOptions.BaseUrl or {UrlVariable}.");
        }

        if (string.IsNullOrEmpty(ApiKey))
        {
            throw new InvalidOperationException($"The Nexus API key is missing: set NexusClientOptions.ApiKey or {ApiKeyVariable}.");
        }

        if (Timeout <= TimeSpan.Zero || MaxRetries < 0 || RetryBaseDelay < TimeSpan.Zero || MaxRetryDelay < TimeSpan.Zero || CredentialExpiryMargin < TimeSpan.Zero
            || CredentialMaxAge < TimeSpan.Zero)
        {
            throw new InvalidOperationException("NexusClientOptions: Timeout must be positive; retries, delays, margin and max age may not be negative.");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"NexusClientOptions {{ BaseUrl = {BaseUrl}, ApiKey = {(string.IsNullOrEmpty(ApiKey) ? "(none)" : "***")} }}";
}

/// <summary>
/// Writes <see cref="NexusClientOptions.ApiKey"/> as <c>"[redacted]"</c> (null stays null, an empty key empty), as
/// <see cref="NexusCredentialJsonConverter"/> writes a credential's values. Reads a key as it is, but not
/// <c>"[redacted]"</c>: options written to JSON and read back do not carry their key, and must not pass that text to
/// Nexus as one.
/// </summary>
public sealed class NexusApiKeyJsonConverter : JsonConverter<string>
{
    /// <inheritdoc/>
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var key = reader.GetString();
        return key == NexusCredentialJsonConverter.Redacted
            ? throw new JsonException("The API key in this JSON was redacted when it was written: set NexusClientOptions.ApiKey or NEXUS_API_KEY.")
            : key;
    }

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStringValue(string.IsNullOrEmpty(value) ? "" : NexusCredentialJsonConverter.Redacted);
    }
}
