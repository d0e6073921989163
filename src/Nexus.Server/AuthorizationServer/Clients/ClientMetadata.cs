using System.Text.Json;
using Nexus.Server.AuthorizationServer.Applications;
using Nexus.Server.AuthorizationServer.Resources;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Clients;

/// <summary>Client metadata (RFC 7591 §2) after validation: what a self-registered client may be.</summary>
internal sealed record ClientMetadata(
    string Name,
    IReadOnlyList<string> RedirectUris,
    string TokenEndpointAuthMethod,
    IReadOnlyList<string> GrantTypes,
    IReadOnlyList<string> Scopes,
    string? ClientUri)
{
    public const string None = "none";
    public const string ClientSecretBasic = "client_secret_basic";
    public const string ClientSecretPost = "client_secret_post";

    /// <summary>The scopes a client that registered itself may ask for: sign-in (OpenID Connect) and the MCP scopes.</summary>
    public static readonly IReadOnlyList<string> SelfRegisteredScopes = [.. ApplicationService.DefaultScopes, .. McpScopes.All];

    public bool IsPublic => TokenEndpointAuthMethod == None;

    /// <summary>
    /// Validates client metadata sent to the registration endpoint (RFC 7591 §2, §3.2.2) or published as a client ID
    /// metadata document. Fields Nexus does not use are ignored (RFC 7591 §2: "MUST ignore any client metadata sent by
    /// the client that it does not understand"). The error is an RFC 7591 error code and its description.
    /// </summary>
    /// <param name="document">A client ID metadata document: it cannot hold a secret, so only token_endpoint_auth_method "none".</param>
    public static (ClientMetadata? Metadata, OAuthError? Error, string? Description) Parse(JsonElement root, bool document)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return Fail(OAuthErrorCatalog.InvalidClientMetadata, "The client metadata must be a JSON object.");
        }

        // redirect_uris: required, because Nexus offers self-registered clients only the authorization code flow.
        if (!root.TryGetProperty("redirect_uris", out var uris) || uris.ValueKind != JsonValueKind.Array || uris.GetArrayLength() == 0)
        {
            return Fail(OAuthErrorCatalog.InvalidRedirectUri, "redirect_uris is required: an array of at least one redirect URI.");
        }

        if (uris.GetArrayLength() > 20)
        {
            return Fail(OAuthErrorCatalog.InvalidRedirectUri, "Register at most 20 redirect URIs.");
        }

        var redirectUris = new List<string>();
        foreach (var uri in uris.EnumerateArray())
        {
            var value = uri.ValueKind == JsonValueKind.String ? uri.GetString() : null;
            if (Clients.RedirectUris.SelfRegisteredProblem(value) is { } problem)
            {
                return Fail(OAuthErrorCatalog.InvalidRedirectUri, value is null ? "Each redirect URI must be a string." : $"'{Shorten(value)}' {problem}");
            }

            if (!redirectUris.Contains(value!))
            {
                redirectUris.Add(value!);
            }
        }

        // RFC 7591 §2: token_endpoint_auth_method defaults to client_secret_basic.
        var (method, methodError) = OptionalString(root, "token_endpoint_auth_method");
        method ??= document ? None : ClientSecretBasic;
        if (methodError is not null || method is not (None or ClientSecretBasic or ClientSecretPost))
        {
            return Fail(OAuthErrorCatalog.InvalidClientMetadata, "token_endpoint_auth_method must be none (a public client, PKCE), client_secret_basic or client_secret_post.");
        }

        if (document && method != None)
        {
            // Client ID Metadata Document draft: a document is public, so it cannot establish a shared secret.
            return Fail(OAuthErrorCatalog.InvalidClientMetadata, "A client ID metadata document can only describe a public client: token_endpoint_auth_method must be none.");
        }

        // RFC 7591 §2: grant_types defaults to authorization_code, response_types to code; §2.1: they must agree.
        var (grantTypes, grantError) = OptionalStrings(root, "grant_types");
        grantTypes ??= [Clients.GrantTypes.AuthorizationCode];
        if (grantError is not null || grantTypes.Count == 0 || !grantTypes.Contains(Clients.GrantTypes.AuthorizationCode)
            || grantTypes.Any(g => g is not (Clients.GrantTypes.AuthorizationCode or Clients.GrantTypes.RefreshToken)))
        {
            return Fail(OAuthErrorCatalog.InvalidClientMetadata, "grant_types may contain authorization_code (required) and refresh_token; Nexus offers self-registered clients nothing else.");
        }

        var (responseTypes, responseError) = OptionalStrings(root, "response_types");
        if (responseError is not null || (responseTypes is not null && (responseTypes.Count != 1 || responseTypes[0] != "code")))
        {
            return Fail(OAuthErrorCatalog.InvalidClientMetadata, "response_types must be [\"code\"] (only the authorization code flow is offered).");
        }

        var (scope, scopeError) = OptionalString(root, "scope");
        IReadOnlyList<string> scopes = SelfRegisteredScopes;
        if (scopeError is not null)
        {
            return Fail(OAuthErrorCatalog.InvalidClientMetadata, "scope must be a string of space-separated scopes.");
        }

        if (scope is not null)
        {
            var parsed = ScopeSyntax.Parse(scope);
            if (parsed is null || parsed.Count == 0)
            {
                return Fail(OAuthErrorCatalog.InvalidClientMetadata, "scope is malformed (RFC 6749 §3.3).");
            }

            if (parsed.FirstOrDefault(s => !SelfRegisteredScopes.Contains(s)) is { } unknown)
            {
                return Fail(OAuthErrorCatalog.InvalidClientMetadata, $"The scope '{Shorten(unknown)}' is not offered; choose from: {string.Join(' ', SelfRegisteredScopes)}.");
            }

            scopes = parsed;
        }

        var (name, nameError) = OptionalString(root, "client_name");
        if (nameError is not null || name is { Length: > 200 })
        {
            return Fail(OAuthErrorCatalog.InvalidClientMetadata, "client_name must be a string of at most 200 characters.");
        }

        var (clientUri, clientUriError) = OptionalString(root, "client_uri");
        if (clientUriError is not null || (clientUri is not null && (clientUri.Length > 2000 || clientUri.EnumerateRunes().Any(Invisible) || !Uri.TryCreate(clientUri, UriKind.Absolute, out var parsedUri)
            || parsedUri.Scheme is not ("https" or "http"))))
        {
            return Fail(OAuthErrorCatalog.InvalidClientMetadata, "client_uri must be an absolute http(s) URL.");
        }

        // Control characters, and format characters (Unicode Cf: bidi overrides and isolates such as U+202E, zero-width
        // spaces and joiners), which the consent page would still apply: "GitHub‮…" could read as another name.
        name = string.IsNullOrWhiteSpace(name) ? null : string.Concat(name.EnumerateRunes().Where(r => !Invisible(r)).Select(r => r.ToString())).Trim();
        name = string.IsNullOrEmpty(name) ? null : name;
        return (new ClientMetadata(name ?? "Unnamed application", redirectUris, method, grantTypes.Distinct(StringComparer.Ordinal).ToList(), scopes, clientUri), null, null);
    }

    /// <summary>A control character, or a format character (Unicode Cf: bidi overrides and isolates, zero-width characters, tags), in or beyond the BMP.</summary>
    private static bool Invisible(System.Text.Rune rune) =>
        System.Text.Rune.IsControl(rune) || System.Text.Rune.GetUnicodeCategory(rune) == System.Globalization.UnicodeCategory.Format;

    private static (ClientMetadata?, OAuthError?, string?) Fail(OAuthError error, string description) => (null, error, description);

    private static (string? Value, string? Error) OptionalString(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return (null, null);
        }

        return value.ValueKind == JsonValueKind.String ? (value.GetString(), null) : (null, $"{name} must be a string.");
    }

    private static (List<string>? Values, string? Error) OptionalStrings(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return (null, null);
        }

        if (value.ValueKind != JsonValueKind.Array || value.EnumerateArray().Any(v => v.ValueKind != JsonValueKind.String))
        {
            return (null, $"{name} must be an array of strings.");
        }

        return (value.EnumerateArray().Select(v => v.GetString()!).ToList(), null);
    }

    private static string Shorten(string value) => value.Length > 100 ? value[..100] + "…" : value;
}
