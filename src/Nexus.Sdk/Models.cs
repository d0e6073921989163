using System.Text.Json;

namespace Nexus.Sdk;

/// <summary>The connection statuses Nexus reports.</summary>
public static class ConnectionStatuses
{
    /// <summary>The user has not completed consent.</summary>
    public const string Pending = "pending";

    /// <summary>Tokens or credentials stored; usable.</summary>
    public const string Active = "active";

    /// <summary>The provider rejected the refresh, or the token expired without one: the user must connect again.</summary>
    public const string AttentionRequired = "attention_required";

    /// <summary>The handshake failed.</summary>
    public const string Failed = "failed";
}

/// <summary>A connection as <c>GET /v1/connections/{id}</c> describes it. Holds no secret.</summary>
public sealed record Connection(
    string ConnectionId,
    string Status,
    string Provider,
    string WorkspaceId,
    IReadOnlyList<string> Scopes,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset? ExpiresAt,
    string? Error,
    string? ErrorDescription)
{
    /// <summary>Whether the connection can be used.</summary>
    public bool IsActive => Status == ConnectionStatuses.Active;

    internal static Connection From(JsonElement e) => new(
        e.GetProperty("connection_id").GetString()!,
        e.GetProperty("status").GetString()!,
        Json.String(e, "provider") ?? "",
        Json.String(e, "workspace_id") ?? "",
        e.TryGetProperty("scopes", out var scopes) && scopes.ValueKind == JsonValueKind.Array ? [.. scopes.EnumerateArray().Select(s => s.GetString()!)] : [],
        DateTimeOffset.FromUnixTimeSeconds(Json.Long(e, "created_at") ?? 0),
        DateTimeOffset.FromUnixTimeSeconds(Json.Long(e, "updated_at") ?? 0),
        Json.Long(e, "expires_at") is { } expires ? DateTimeOffset.FromUnixTimeSeconds(expires) : null,
        Json.String(e, "error"),
        Json.String(e, "error_description"));
}

/// <summary>What <see cref="NexusClient.RequestConnectionAsync"/> asks for.</summary>
/// <param name="WorkspaceId">The workspace (often your user's id) the connection belongs to.</param>
/// <param name="ProviderName">A registered provider's name.</param>
/// <param name="ReturnUrl">Where Nexus sends the user's browser after consent (an allowed origin).</param>
/// <param name="Scopes">The scopes to ask for; null for the provider's defaults.</param>
public sealed record ConnectionRequest(string WorkspaceId, string ProviderName, Uri ReturnUrl, IReadOnlyList<string>? Scopes = null);

/// <summary>A new pending connection: store <see cref="ConnectionId"/>, send the user's browser to <see cref="AuthUrl"/>.</summary>
public sealed record RequestedConnection(string ConnectionId, Uri AuthUrl)
{
    /// <inheritdoc/>
    // The auth URL carries a single-use state; it is not a secret of the app's, but it does not belong in logs either.
    public override string ToString() => $"RequestedConnection {{ ConnectionId = {ConnectionId}, AuthUrl = {AuthUrl.GetLeftPart(UriPartial.Path)}?… }}";
}

/// <summary>How a credential is applied, as <c>GET /v1/token</c>'s <c>strategy</c> says.</summary>
/// <param name="Type"><c>oauth2</c>, <c>api_key</c>, <c>basic_auth</c> or <c>aws_sigv4</c>.</param>
/// <param name="In">api_key: <c>header</c> or <c>query</c>.</param>
/// <param name="Name">api_key: the header or query parameter name.</param>
/// <param name="Prefix">api_key: text put before the key (e.g. <c>Bearer </c>).</param>
/// <param name="Region">aws_sigv4: the signing region.</param>
/// <param name="Service">aws_sigv4: the signing name (<c>s3</c>, <c>execute-api</c>…).</param>
/// <param name="RoleArn">aws_sigv4: the role whose temporary credentials these are, if any.</param>
public sealed record CredentialStrategy(string Type, string? In = null, string? Name = null, string? Prefix = null, string? Region = null, string? Service = null,
    string? RoleArn = null)
{
    /// <summary>OAuth 2.0 Bearer token.</summary>
    public const string OAuth2 = "oauth2";

    /// <summary>API key in a header or query parameter.</summary>
    public const string ApiKey = "api_key";

    /// <summary>HTTP Basic.</summary>
    public const string BasicAuth = "basic_auth";

    /// <summary>AWS Signature Version 4.</summary>
    public const string AwsSigV4 = "aws_sigv4";

    internal static CredentialStrategy From(JsonElement e) => new(
        Json.String(e, "type") ?? "", Json.String(e, "in"), Json.String(e, "name"), Json.String(e, "prefix"),
        Json.String(e, "region"), Json.String(e, "service"), Json.String(e, "role_arn"));
}

internal static class Json
{
    public static string? String(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public static long? Long(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var l) ? l : null;
}
