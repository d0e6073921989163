using System.Text.Json;

namespace Nexus.Server.Providers;

/// <summary>
/// Contract of POST and PATCH /v1/providers. Either <c>catalog</c> names a catalog entry (then only name,
/// display_name, client_id, client_secret, scopes and placeholders apply), or the fields define a custom provider:
/// <c>issuer</c> (OpenID Connect discovery) and/or explicit <c>authorization_url</c> + <c>token_url</c>.
/// </summary>
internal sealed record ProviderRequest(
    string? Name,
    string? Catalog,
    string? DisplayName,
    string? AuthMode,
    string? Issuer,
    string? AuthorizationUrl,
    string? TokenUrl,
    string? RevocationUrl,
    string? UserinfoUrl,
    string? ApiBaseUrl,
    string? ClientId,
    string? ClientSecret,
    string[]? Scopes,
    JsonElement? Pkce,
    string? TokenEndpointAuth,
    string? TokenRequestFormat,
    string? RevocationFormat,
    string? ScopeSeparator,
    Dictionary<string, string>? AuthorizationParams,
    Dictionary<string, string>? TokenRequestHeaders,
    Dictionary<string, string>? Placeholders,
    bool? RefreshSupported,
    CatalogApiKey? ApiKey = null,
    Dictionary<string, string>? Aws = null,
    JsonElement? CredentialSchema = null,
    CatalogVerify? Verify = null,
    int? RefreshMarginSeconds = null,
    string? McpUrl = null,
    bool? SendResource = null,
    string? GrantType = null,
    string? PrivateKeyPem = null);

internal sealed record ProviderResponse(
    string Name,
    string? Catalog,
    string DisplayName,
    string AuthMode,
    string? Issuer,
    string AuthorizationUrl,
    string TokenUrl,
    string? RevocationUrl,
    string? UserinfoUrl,
    string? ApiBaseUrl,
    string ClientId,
    bool HasClientSecret,
    IReadOnlyList<string> Scopes,
    string Pkce,
    string TokenEndpointAuth,
    string TokenRequestFormat,
    string RevocationFormat,
    string ScopeSeparator,
    IReadOnlyDictionary<string, string> AuthorizationParams,
    IReadOnlyDictionary<string, string> TokenRequestHeaders,
    IReadOnlyDictionary<string, string> Placeholders,
    bool RefreshSupported,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    CatalogApiKey? ApiKey,
    IReadOnlyDictionary<string, string>? Aws,
    System.Text.Json.Nodes.JsonObject? CredentialSchema,
    int? RefreshMarginSeconds = null,
    McpServerConfig? Mcp = null)
{
    /// <summary>The per-connection values the URLs still need (issue 17): what connection_config takes, or what is captured after consent.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, CatalogPlaceholder>? ConnectionConfigSchema { get; init; }

    /// <summary>Everything but the client secret, which is never returned.</summary>
    public static ProviderResponse From(Provider p) => new(
        p.Name, p.CatalogKey, p.DisplayName, p.AuthMode, p.Config.Issuer, p.Config.AuthorizationUrl, p.Config.TokenUrl, p.Config.RevocationUrl,
        p.Config.UserinfoUrl, p.Config.ApiBaseUrl, p.ClientId, p.ClientSecret is not null, p.Scopes, p.Config.Pkce, p.Config.TokenEndpointAuth,
        p.Config.TokenRequestFormat, p.Config.RevocationFormat, p.Config.ScopeSeparator, p.Config.AuthorizationParams, p.Config.TokenRequestHeaders,
        p.Placeholders, p.Config.RefreshSupported, p.CreatedAt, p.UpdatedAt, p.Config.ApiKey, p.Config.Aws, p.Config.CredentialSchema, p.Config.RefreshMarginSeconds, p.Config.Mcp)
    {
        ConnectionConfigSchema = p.Config.ConnectionPlaceholders,
    };
}
