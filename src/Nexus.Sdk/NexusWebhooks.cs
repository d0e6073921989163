using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Nexus.Sdk;

/// <summary>The webhook event types Nexus sends (others may be added: ignore those you do not know).</summary>
public static class WebhookEventTypes
{
    /// <summary>The user completed consent (<c>reason</c>: connected, reconnected), or a manual refresh brought it back (refreshed).</summary>
    public const string ConnectionActive = "connection.active";

    /// <summary>The provider rejected a refresh, or the token expired without a refresh token: ask the user to connect again.</summary>
    public const string ConnectionAttentionRequired = "connection.attention_required";

    /// <summary>The first transient refresh failure of a streak; Nexus keeps retrying.</summary>
    public const string ConnectionRefreshFailed = "connection.refresh_failed";

    /// <summary>A refresh succeeded after transient failures, once per streak (<see cref="ConnectionEventData.Failures"/>: how many there were).</summary>
    public const string ConnectionRecovered = "connection.recovered";

    /// <summary>The connection was deleted.</summary>
    public const string ConnectionRevoked = "connection.revoked";

    /// <summary><c>POST /v1/admin/webhooks/{id}/test</c>.</summary>
    public const string WebhookTest = "webhook.test";
}

/// <summary>A webhook delivery's body. <see cref="Id"/> is the same on every retry: de-duplicate on it. Holds no secret.</summary>
/// <param name="Id">The message id (also the <c>webhook-id</c> header).</param>
/// <param name="Type">One of <see cref="WebhookEventTypes"/>.</param>
/// <param name="Timestamp">When the event happened.</param>
/// <param name="WorkspaceId">The connection's workspace, when the event has one.</param>
/// <param name="Data">The data of a <c>connection.*</c> event (empty fields for other types).</param>
/// <param name="RawData">The data as sent, for any event.</param>
public sealed record WebhookEvent(string Id, string Type, DateTimeOffset Timestamp, string? WorkspaceId, ConnectionEventData Data, JsonElement RawData);

/// <summary>The data of the <c>connection.*</c> events; which fields are set depends on the type.</summary>
public sealed record ConnectionEventData(
    string? ConnectionId,
    string? Provider,
    string? Status,
    string? Reason,
    string? Error,
    string? ErrorDescription,
    long Failures,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? RetryAt,
    string? PreviousStatus,
    string? ProviderRevocation);

/// <summary>The delivery is not signed with the secret, or its timestamp is too far from now (a possible replay).</summary>
public sealed class NexusWebhookVerificationException(string message) : Exception(message);

/// <summary>Verifies Nexus's webhook deliveries (Standard Webhooks signatures) and reads their events.</summary>
public static class NexusWebhooks
{
    /// <summary>How far <c>webhook-timestamp</c> may be from now.</summary>
    public static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Checks <c>webhook-signature</c> (<c>v1,&lt;base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}"&gt;</c>, keyed with the
    /// base64 part of <paramref name="secret"/> after <c>whsec_</c>) in constant time, refuses a <c>webhook-timestamp</c> more than
    /// <see cref="Tolerance"/> from now, and returns the event. <paramref name="body"/> is the raw request body. A secret whose key is
    /// empty (<c>whsec_</c>, <c>""</c>) is refused.
    /// </summary>
    /// <param name="secret">The webhook's <c>whsec_…</c> secret.</param>
    /// <param name="header">Reads a request header by name (e.g. <c>name =&gt; request.Headers[name]</c>); null when absent.</param>
    /// <param name="body">The raw request body.</param>
    /// <param name="time">The clock (default: the system's).</param>
    /// <exception cref="NexusWebhookVerificationException">The signature or timestamp does not hold, or the secret is no secret.</exception>
    public static WebhookEvent Verify(string secret, Func<string, string?> header, ReadOnlySpan<byte> body, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(secret);
        ArgumentNullException.ThrowIfNull(header);
        var id = header("webhook-id");
        var timestamp = header("webhook-timestamp");
        var signatures = header("webhook-signature");
        if (string.IsNullOrEmpty(id) || string.IsNullOrEmpty(timestamp) || string.IsNullOrEmpty(signatures))
        {
            throw new NexusWebhookVerificationException("webhook-id, webhook-timestamp or webhook-signature missing.");
        }

        if (!long.TryParse(timestamp, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds))
        {
            throw new NexusWebhookVerificationException("webhook-timestamp is not a number.");
        }

        var now = (time ?? TimeProvider.System).GetUtcNow();
        if ((now - DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(seconds, 0, 253402300799))).Duration() > Tolerance)
        {
            throw new NexusWebhookVerificationException("webhook-timestamp is too far from now.");
        }

        byte[] key;
        try
        {
            key = Convert.FromBase64String(secret.StartsWith("whsec_", StringComparison.Ordinal) ? secret["whsec_".Length..] : secret);
        }
        catch (FormatException)
        {
            throw new NexusWebhookVerificationException("The secret is not a whsec_ secret.");
        }

        if (key.Length == 0)
        {
            // Anyone can compute an HMAC with an empty key: "whsec_" (or "") is no secret, as in the other SDKs.
            throw new NexusWebhookVerificationException("The secret is not a whsec_ secret.");
        }

        var prefix = Encoding.UTF8.GetBytes($"{id}.{timestamp}.");
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        var expected = Encoding.ASCII.GetBytes("v1," + Convert.ToBase64String(HMACSHA256.HashData(key, signed)));
        var valid = false;
        foreach (var candidate in signatures.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            valid |= CryptographicOperations.FixedTimeEquals(expected, Encoding.ASCII.GetBytes(candidate));
        }

        return valid ? Parse(body) : throw new NexusWebhookVerificationException("The signature is not valid.");
    }

    /// <summary>Reads a delivery's body without checking its signature: use <see cref="Verify"/> on requests.</summary>
    public static WebhookEvent Parse(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        using var document = JsonDocument.ParseValue(ref reader);
        var root = document.RootElement;
        var data = root.TryGetProperty("data", out var d) && d.ValueKind == JsonValueKind.Object ? d.Clone() : default;
        DateTimeOffset? Time(string name) => Json.Long(data, name) is { } s ? DateTimeOffset.FromUnixTimeSeconds(s) : null;
        return new WebhookEvent(Json.String(root, "id") ?? "", Json.String(root, "type") ?? "", DateTimeOffset.FromUnixTimeSeconds(Json.Long(root, "timestamp") ?? 0),
            Json.String(root, "workspace_id"),
            new ConnectionEventData(Json.String(data, "connection_id"), Json.String(data, "provider"), Json.String(data, "status"), Json.String(data, "reason"),
                Json.String(data, "error"), Json.String(data, "error_description"), Json.Long(data, "failures") ?? 0, Time("expires_at"), Time("retry_at"),
                Json.String(data, "previous_status"), Json.String(data, "provider_revocation")),
            data);
    }
}
