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

    /// <summary>The per-connection values of the provider's URLs (a Shopify shop, a Salesforce instance); empty when none.</summary>
    public IReadOnlyDictionary<string, string> ConnectionConfig { get; init; } = new Dictionary<string, string>();

    /// <summary>The scopes the provider granted; null while nothing is granted.</summary>
    public IReadOnlyList<string>? GrantedScopes { get; init; }

    /// <summary>When a refresh last succeeded.</summary>
    public DateTimeOffset? LastRefreshedAt { get; init; }

    /// <summary>When Nexus next refreshes (or retries) the token.</summary>
    public DateTimeOffset? NextRefreshAt { get; init; }

    /// <summary>Transient refresh failures in a row; 0 when healthy.</summary>
    public long ConsecutiveFailures { get; init; }

    /// <summary>The last error (a failing refresh's, or why the connection stopped); null when none.</summary>
    public ConnectionError? LastError { get; init; }

    /// <summary>Whether a reconnect waits for the user's consent (the current credential still works).</summary>
    public bool Reconnecting { get; init; }

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
        Json.String(e, "error_description"))
    {
        ConnectionConfig = Json.Strings(e, "connection_config"),
        GrantedScopes = e.TryGetProperty("granted_scopes", out var granted) && granted.ValueKind == JsonValueKind.Array ? [.. granted.EnumerateArray().Select(s => s.GetString()!)] : null,
        LastRefreshedAt = Json.Long(e, "last_refreshed_at") is { } refreshed ? DateTimeOffset.FromUnixTimeSeconds(refreshed) : null,
        NextRefreshAt = Json.Long(e, "next_refresh_at") is { } next ? DateTimeOffset.FromUnixTimeSeconds(next) : null,
        ConsecutiveFailures = Json.Long(e, "consecutive_failures") ?? 0,
        LastError = e.TryGetProperty("last_error", out var error) && error.ValueKind == JsonValueKind.Object
            ? new ConnectionError(Json.String(error, "code") ?? "", Json.String(error, "message") ?? "") : null,
        Reconnecting = e.TryGetProperty("reconnecting", out var reconnecting) && reconnecting.ValueKind == JsonValueKind.True,
    };
}

/// <summary>The last thing that went wrong with a connection, in plain words. Holds no secret.</summary>
public sealed record ConnectionError(string Code, string Message);

/// <summary>One page of <c>GET /v1/connections</c>; pass <see cref="NextCursor"/> back for the next one (null on the last page).</summary>
public sealed record ConnectionPage(IReadOnlyList<Connection> Connections, string? NextCursor);

/// <summary>What <see cref="NexusClient.RequestConnectionAsync"/> asks for.</summary>
/// <param name="WorkspaceId">The workspace (often your user's id) the connection belongs to.</param>
/// <param name="ProviderName">A registered provider's name.</param>
/// <param name="ReturnUrl">Where Nexus sends the user's browser after consent (an allowed origin).</param>
/// <param name="Scopes">The scopes to ask for; null for the provider's defaults.</param>
/// <param name="ConnectionConfig">Per-connection values the provider's URLs need (a Shopify <c>shop</c>); those missing are asked of the user.</param>
public sealed record ConnectionRequest(string WorkspaceId, string ProviderName, Uri ReturnUrl, IReadOnlyList<string>? Scopes = null,
    IReadOnlyDictionary<string, string>? ConnectionConfig = null);

/// <summary>
/// The answer to <see cref="NexusClient.RequestConnectionAsync"/> and <see cref="NexusClient.ReconnectAsync"/>: store
/// <see cref="ConnectionId"/>, and send the user's browser to <see cref="AuthUrl"/> when there is one.
/// </summary>
/// <param name="ConnectionId">The connection (after a reconnect, the connection's own id).</param>
/// <param name="AuthUrl">
/// Where the user gives consent. Null when the connection needs no consent (a machine-to-machine server): it is
/// active already, and <see cref="Status"/> says so.
/// </param>
public sealed record RequestedConnection(string ConnectionId, Uri? AuthUrl)
{
    /// <summary>
    /// The connection's status when Nexus's answer gives one: <c>active</c> for a machine-to-machine server's connection,
    /// which needs no consent. Null when the answer is a consent URL (<see cref="AuthUrl"/>).
    /// </summary>
    public string? Status { get; init; }

    /// <inheritdoc/>
    // The auth URL carries a single-use state; it is not a secret of the app's, but it does not belong in logs either.
    public override string ToString() =>
        $"RequestedConnection {{ ConnectionId = {ConnectionId}, AuthUrl = {(AuthUrl is null ? "(none)" : AuthUrl.GetLeftPart(UriPartial.Path) + "?…")}{(Status is null ? "" : ", Status = " + Status)} }}";

    /// <summary>
    /// The 201 of <c>POST /v1/request-connection</c> or the 200 of a reconnect: <c>{auth_url, connection_id}</c> for a
    /// consent, <c>{connection_id, status}</c> without <c>auth_url</c> (or with a null one) for a machine-to-machine server.
    /// </summary>
    internal static RequestedConnection From(JsonElement root) =>
        new(root.GetProperty("connection_id").GetString()!, Json.String(root, "auth_url") is { Length: > 0 } url ? new Uri(url, UriKind.Absolute) : null)
        {
            Status = Json.String(root, "status"),
        };
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

    public static IReadOnlyDictionary<string, string> Strings(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Object
            ? v.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.String).ToDictionary(p => p.Name, p => p.Value.GetString()!)
            : new Dictionary<string, string>();

    public static long? Long(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var l) ? l : null;
}
