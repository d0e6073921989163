namespace Nexus.Server.AuthorizationServer.Clients;

internal static class ClientKinds
{
    /// <summary>Machine clients using the client credentials grant (the "App Clients" screen).</summary>
    public const string AppClient = "app_client";

    /// <summary>Applications using the authorization code flow for users (the "OAuth Applications" tab).</summary>
    public const string Application = "application";
}

internal static class ClientTypes
{
    /// <summary>Can keep a secret (a server): authenticates at the token endpoint.</summary>
    public const string Confidential = "confidential";

    /// <summary>Cannot keep a secret (SPA, mobile, CLI): no secret, PKCE mandatory.</summary>
    public const string Public = "public";
}

internal static class GrantTypes
{
    public const string ClientCredentials = "client_credentials";
    public const string AuthorizationCode = "authorization_code";
    public const string RefreshToken = "refresh_token";

    /// <summary>Every grant this server knows. A known grant that a client may not use is answered differently from an unknown one.</summary>
    public static readonly HashSet<string> Known = [ClientCredentials, AuthorizationCode, RefreshToken];

    /// <summary>Grants an App Client may be registered with.</summary>
    public static readonly HashSet<string> ForAppClients = [ClientCredentials];

    /// <summary>Grants an OAuth application may be registered with.</summary>
    public static readonly HashSet<string> ForApplications = [AuthorizationCode, RefreshToken];
}

/// <summary>How an OAuth application came to exist.</summary>
internal static class ClientRegistrations
{
    /// <summary>Registered by an administrator (Site management or the admin API).</summary>
    public const string Admin = "admin";

    /// <summary>Registered itself through dynamic client registration (RFC 7591).</summary>
    public const string Dynamic = "dynamic";

    /// <summary>Its client_id is the https URL of its client ID metadata document, which Nexus fetched.</summary>
    public const string MetadataDocument = "metadata_document";
}

/// <summary>A client of Nexus's authorization server. The secret itself is never held, only its keyed hash.</summary>
internal sealed record OAuthClient(
    string ClientId,
    string Kind,
    string Name,
    string? SecretHash,
    IReadOnlyList<string> Scopes,
    IReadOnlyList<string> GrantTypes,
    int AccessTokenLifetimeSeconds,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset SecretRotatedAt,
    DateTimeOffset? RevokedAt,
    string ClientType = ClientTypes.Confidential,
    IReadOnlyList<string>? RedirectUris = null,
    IReadOnlyList<string>? PostLogoutRedirectUris = null,
    string? Description = null,
    string? BaseUrl = null,
    string? OwnerEmail = null,
    string Registration = ClientRegistrations.Admin,
    DateTimeOffset? MetadataExpiresAt = null)
{
    /// <summary>Whether the client registered itself (no administrator vouched for it); the consent page says so.</summary>
    public bool IsSelfRegistered => Registration != ClientRegistrations.Admin;

    public bool IsRevoked => RevokedAt is not null;

    public bool IsPublic => ClientType == ClientTypes.Public;

    public IReadOnlyList<string> RedirectUriList => RedirectUris ?? [];

    public IReadOnlyList<string> PostLogoutRedirectUriList => PostLogoutRedirectUris ?? [];
}
