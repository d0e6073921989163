using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Nexus.Server.Providers;

/// <summary>Authentication modes of catalog entries; the broker runs the OAuth 2.0 handshake for <see cref="OAuth2"/>.</summary>
internal static class AuthModes
{
    public const string OAuth2 = "oauth2";
    public const string ApiKey = "api_key";
    public const string BasicAuth = "basic_auth";
    public const string AwsSigV4 = "aws_sigv4";

    /// <summary>An OAuth-protected MCP server registered by its URL alone (RemoteMcp): discovered, not described; never in the catalog.</summary>
    public const string McpOAuth2 = "mcp_oauth2";

    public static readonly string[] All = [OAuth2, ApiKey, BasicAuth, AwsSigV4];

    /// <summary>Whether connections of this mode are made by an OAuth consent at the provider (rather than a credential form).</summary>
    public static bool IsOAuth(string mode) => mode is OAuth2 or McpOAuth2;
}

/// <summary>One provider of Providers/catalog.json. Field meanings are documented in docs/provider-catalog.md.</summary>
internal sealed record CatalogEntry
{
    public string DisplayName { get; init; } = "";
    public string AuthMode { get; init; } = "";
    public string[] Categories { get; init; } = [];
    public string DocsUrl { get; init; } = "";
    public string ApiBaseUrl { get; init; } = "";
    public string? AuthorizationUrl { get; init; }
    public string? TokenUrl { get; init; }
    public string? RevocationUrl { get; init; }
    public string? UserinfoUrl { get; init; }
    public string[]? DefaultScopes { get; init; }
    public string? ScopeSeparator { get; init; }
    public string? Pkce { get; init; }
    public string? TokenEndpointAuth { get; init; }
    public string? TokenRequestFormat { get; init; }
    public string? RevocationFormat { get; init; }
    public string? RefreshUrl { get; init; }
    public string? ClientIdParam { get; init; }
    public string? ApiAuthScheme { get; init; }
    public Dictionary<string, string>? ApiRequestHeaders { get; init; }
    public Dictionary<string, string>? AuthorizationParams { get; init; }
    public Dictionary<string, string>? TokenRequestHeaders { get; init; }
    public CatalogTokenResponse? TokenResponse { get; init; }
    public CatalogRefresh? Refresh { get; init; }
    public Dictionary<string, string>? Scopes { get; init; }
    public Dictionary<string, CatalogPlaceholder>? Placeholders { get; init; }
    public CatalogMetadata? Metadata { get; init; }
    public CatalogApiKey? ApiKey { get; init; }
    public JsonElement? CredentialSchema { get; init; }
    public CatalogVerify? Verify { get; init; }
    public Dictionary<string, string>? Aws { get; init; }

    /// <summary>Further resources the refresh token mints tokens for (Entra: Graph, SharePoint, Business Central).</summary>
    public Dictionary<string, ProviderResource>? Resources { get; init; }
    public string? Notes { get; init; }
}

internal sealed record CatalogTokenResponse
{
    public bool RefreshTokenRotates { get; init; }
    public bool ExpiresInMissing { get; init; }
    public bool FormEncoded { get; init; }
}

internal sealed record CatalogRefresh
{
    public bool Supported { get; init; }
}

internal sealed record CatalogPlaceholder
{
    public string Description { get; init; } = "";
    public string Pattern { get; init; } = "";
    public string? Default { get; init; }

    /// <summary>Who supplies the value (<see cref="PlaceholderSources"/>); null means the registration.</summary>
    public string? Source { get; init; }

    /// <summary>token_response and metadata sources: the top-level field the value (or a URL holding it) is read from.</summary>
    public string? Field { get; init; }

    [JsonIgnore]
    public bool PerConnection => Source is PlaceholderSources.Connection or PlaceholderSources.TokenResponse or PlaceholderSources.Metadata;
}

/// <summary>Where a placeholder's value comes from (issue 17: per-connection values).</summary>
internal static class PlaceholderSources
{
    /// <summary>The administrator's registration (POST /v1/providers "placeholders"), or the default.</summary>
    public const string Registration = "registration";

    /// <summary>Each connection: connection_config at POST /v1/request-connection, or asked of the person before consent.</summary>
    public const string Connection = "connection";

    /// <summary>After consent, from a field of the token response (Salesforce's instance_url).</summary>
    public const string TokenResponse = "token_response";

    /// <summary>After consent, from a field of the entry's metadata call (Mailchimp's dc).</summary>
    public const string Metadata = "metadata";

    public static readonly string[] All = [Registration, Connection, TokenResponse, Metadata];
}

/// <summary>A call made with the fresh access token after consent to learn per-connection values (Mailchimp's metadata endpoint).</summary>
internal sealed record CatalogMetadata
{
    public string Url { get; init; } = "";

    /// <summary>The Authorization scheme the token is sent with (Mailchimp: "OAuth"); Bearer by default.</summary>
    public string? AuthScheme { get; init; }
}

internal sealed record CatalogApiKey
{
    public string In { get; init; } = "";
    public string Name { get; init; } = "";
    public string? Prefix { get; init; }
}

internal sealed record CatalogVerify
{
    public string Method { get; init; } = "";
    public string Path { get; init; } = "";
    public int ExpectStatus { get; init; }
}

internal sealed record CatalogDocument
{
    public int Version { get; init; }
    public Dictionary<string, CatalogEntry> Providers { get; init; } = [];
}

/// <summary>
/// The provider catalog shipped inside the assembly (Providers/catalog.json). It is parsed strictly (an unknown
/// field is an error, so a typo never silently drops a setting) and validated when Nexus starts.
/// </summary>
internal sealed partial class ProviderCatalog
{
    public const string ResourceName = "providers/catalog.json";

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Disallow,
    };

    public ProviderCatalog(CatalogDocument document)
    {
        Version = document.Version;
        Entries = new SortedDictionary<string, CatalogEntry>(document.Providers, StringComparer.Ordinal);
    }

    public int Version { get; }

    public IReadOnlyDictionary<string, CatalogEntry> Entries { get; }

    public CatalogEntry? Find(string key) => Entries.GetValueOrDefault(key);

    /// <summary>Loads and validates the embedded catalog; an invalid catalog stops startup with every problem listed.</summary>
    public static ProviderCatalog LoadEmbedded()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"The provider catalog resource '{ResourceName}' is missing from the build.");
        var catalog = Parse(stream);
        var errors = catalog.Validate();
        if (errors.Count > 0)
        {
            throw new InvalidOperationException("The provider catalog is invalid:\n  - " + string.Join("\n  - ", errors));
        }

        return catalog;
    }

    public static ProviderCatalog Parse(Stream json) =>
        new(JsonSerializer.Deserialize<CatalogDocument>(json, JsonOptions) ?? throw new InvalidOperationException("The provider catalog is empty."));

    /// <summary>Every problem of every entry, as "key: message" lines.</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        if (Version != 1)
        {
            errors.Add($"catalog: version must be 1 (got {Version}).");
        }

        foreach (var (key, entry) in Entries)
        {
            foreach (var error in ValidateEntry(key, entry))
            {
                errors.Add($"{key}: {error}");
            }
        }

        return errors;
    }

    public static IEnumerable<string> ValidateEntry(string key, CatalogEntry e)
    {
        if (!ProviderNames.IsValid(key))
        {
            yield return "the key must be lowercase letters, digits, '_' or '-' (at most 63).";
        }

        if (string.IsNullOrWhiteSpace(e.DisplayName))
        {
            yield return "display_name is required.";
        }

        if (!AuthModes.All.Contains(e.AuthMode))
        {
            yield return $"auth_mode must be one of {string.Join(", ", AuthModes.All)} (got '{e.AuthMode}').";
        }

        if (e.Categories.Length == 0 || e.Categories.Any(string.IsNullOrWhiteSpace))
        {
            yield return "categories must list at least one category.";
        }

        // Placeholders: every {name} used must be declared, every declared one must be used, and defaults must
        // match their own pattern.
        var declared = e.Placeholders ?? [];
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (field, template) in Templates(e))
        {
            foreach (Match m in PlaceholderPattern().Matches(template))
            {
                if (field == "revocation_url" && m.Value == ReservedClientId)
                {
                    // Filled with the registration's client id when revoking (GitHub's /applications/{client_id}/grant).
                    continue;
                }

                used.Add(m.Groups[1].Value);
                if (!declared.ContainsKey(m.Groups[1].Value))
                {
                    yield return $"{field} uses the placeholder {{{m.Groups[1].Value}}}, which is not declared in placeholders.";
                }
            }

            var rest = PlaceholderPattern().Replace(template, "");
            if (rest.Contains('{', StringComparison.Ordinal) || rest.Contains('}', StringComparison.Ordinal))
            {
                yield return $"{field} has an unbalanced or malformed '{{' '}}'.";
            }
        }

        foreach (var (name, placeholder) in declared)
        {
            if ("{" + name + "}" == ReservedClientId)
            {
                yield return "the placeholder name 'client_id' is reserved: revocation_url's {client_id} is the registration's client id.";
            }

            if (!used.Contains(name))
            {
                yield return $"the placeholder '{name}' is declared but used by no URL.";
            }

            if (string.IsNullOrWhiteSpace(placeholder.Description))
            {
                yield return $"the placeholder '{name}' needs a description.";
            }

            Regex? regex = null;
            string? regexError = null;
            try
            {
                regex = new Regex(placeholder.Pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
            }
            catch (ArgumentException ex)
            {
                regexError = ex.Message;
            }

            if (placeholder.Source is not null && !PlaceholderSources.All.Contains(placeholder.Source))
            {
                yield return $"the placeholder '{name}' has source '{placeholder.Source}'; it must be one of {string.Join(", ", PlaceholderSources.All)}.";
            }

            if (placeholder.Source is PlaceholderSources.TokenResponse or PlaceholderSources.Metadata)
            {
                if (string.IsNullOrWhiteSpace(placeholder.Field))
                {
                    yield return $"the placeholder '{name}' comes from the {placeholder.Source}: it needs the field it is read from.";
                }

                // Known only after consent: the URLs of the consent itself cannot use it.
                if ((e.AuthorizationUrl ?? "").Contains("{" + name + "}", StringComparison.Ordinal) || (e.TokenUrl ?? "").Contains("{" + name + "}", StringComparison.Ordinal)
                    || (e.Metadata?.Url ?? "").Contains("{" + name + "}", StringComparison.Ordinal))
                {
                    yield return $"the placeholder '{name}' is known only after consent; authorization_url, token_url and metadata.url cannot use it.";
                }
            }
            else if (placeholder.Field is not null)
            {
                yield return $"the placeholder '{name}' has a field but its source is not token_response or metadata.";
            }

            if (placeholder.Source == PlaceholderSources.Metadata && e.Metadata is null)
            {
                yield return $"the placeholder '{name}' comes from the metadata call, but the entry declares no metadata {{url}}.";
            }

            if (placeholder.PerConnection && placeholder.Default is not null)
            {
                yield return $"the placeholder '{name}' varies per connection; it cannot have a default.";
            }

            if (regex is null || !placeholder.Pattern.StartsWith('^') || !placeholder.Pattern.EndsWith('$'))
            {
                yield return $"the placeholder '{name}' needs a valid pattern anchored with ^ and $ ({regexError ?? placeholder.Pattern}).";
            }
            else if (placeholder.Default is not null && !regex.IsMatch(placeholder.Default))
            {
                yield return $"the default of the placeholder '{name}' does not match its pattern.";
            }
        }

        foreach (var (field, template) in Templates(e).Where(t => t.Field.EndsWith("url", StringComparison.Ordinal)))
        {
            if (!IsAbsoluteHttps(Fill(template, declared)))
            {
                yield return $"{field} must be an absolute https URL (got '{template}').";
            }
        }

        if (!Uri.TryCreate(e.DocsUrl, UriKind.Absolute, out var docs) || docs.Scheme != Uri.UriSchemeHttps)
        {
            yield return "docs_url must be an absolute https URL.";
        }

        foreach (var error in ProviderResources.Problems(e))
        {
            yield return error;
        }

        foreach (var (name, resource) in e.Resources ?? [])
        {
            if (resource.ApiBaseUrl is { } resourceBase && !IsAbsoluteHttps(Fill(resourceBase, declared)))
            {
                yield return $"resources.{name}.api_base_url must be an absolute https URL.";
            }
        }

        switch (e.AuthMode)
        {
            case AuthModes.OAuth2:
                foreach (var error in ValidateOAuth2(e))
                {
                    yield return error;
                }

                break;
            case AuthModes.ApiKey:
                if (e.ApiKey is null || e.ApiKey.In is not ("header" or "query") || string.IsNullOrWhiteSpace(e.ApiKey.Name))
                {
                    yield return "api_key mode needs api_key {in: header|query, name}.";
                }

                break;
            case AuthModes.AwsSigV4:
                if (e.Aws is null || !e.Aws.ContainsKey("service") || !e.Aws.ContainsKey("region"))
                {
                    yield return "aws_sigv4 mode needs aws {service, region}.";
                }

                // The optional role fields; values that still hold placeholders are checked once registration fills them.
                foreach (var (field, message) in AwsRoleConfig.Problems(e.Aws ?? [], url => IsAbsoluteHttps(url) ? null : "must be an absolute https URL.", skipPlaceholders: true))
                {
                    yield return $"{field}: {message}";
                }

                break;
        }

        if (e.AuthMode is AuthModes.ApiKey or AuthModes.BasicAuth or AuthModes.AwsSigV4)
        {
            foreach (var error in ValidateCredentialSchema(e.CredentialSchema, e.AuthMode))
            {
                yield return error;
            }

            if (e.AuthorizationUrl is not null || e.TokenUrl is not null)
            {
                yield return "authorization_url and token_url belong to oauth2 entries only.";
            }
        }

        if (e.Verify is { } verify && (verify.Method is not ("GET" or "POST" or "HEAD") || !verify.Path.StartsWith('/') || verify.ExpectStatus is < 100 or > 599))
        {
            yield return "verify needs method GET|POST|HEAD, a path starting with '/' and an HTTP status in expect_status.";
        }
    }

    private static IEnumerable<string> ValidateOAuth2(CatalogEntry e)
    {
        if (e.AuthorizationUrl is null || e.TokenUrl is null)
        {
            yield return "oauth2 entries need authorization_url and token_url.";
        }

        if (e.DefaultScopes is null)
        {
            yield return "oauth2 entries need default_scopes (may be empty).";
        }
        else if (e.DefaultScopes.Any(s => !AuthorizationServer.ScopeSyntax.IsValidToken(s)))
        {
            yield return "default_scopes must be valid scope tokens (RFC 6749 §3.3).";
        }

        // OpenID Connect Core §5.4 and §11 define these; an entry need not describe them.
        string[] standard = ["openid", "profile", "email", "address", "phone", "offline_access"];
        if (e.Scopes is not null && e.DefaultScopes is not null && e.DefaultScopes.FirstOrDefault(s => !e.Scopes.ContainsKey(s) && !standard.Contains(s)) is { } undocumented)
        {
            yield return $"the default scope '{undocumented}' is not described in scopes.";
        }

        if (e.Pkce is not (PkceModes.Required or PkceModes.Supported or PkceModes.Unsupported))
        {
            yield return "pkce must be required, supported or unsupported.";
        }

        if (e.TokenEndpointAuth is not (ClientAuthMethods.Basic or ClientAuthMethods.Post or ClientAuthMethods.None))
        {
            yield return "token_endpoint_auth must be client_secret_basic, client_secret_post or none.";
        }

        if (e.TokenEndpointAuth == ClientAuthMethods.None && e.Pkce == PkceModes.Unsupported)
        {
            yield return "a public client (token_endpoint_auth none) needs PKCE: pkce must be required or supported.";
        }

        if (e.TokenRequestFormat is not (null or TokenRequestFormats.Form or TokenRequestFormats.Json))
        {
            yield return "token_request_format must be form or json.";
        }

        if (e.RevocationFormat is not null && !RevocationFormats.All.Contains(e.RevocationFormat))
        {
            yield return $"revocation_format must be one of {string.Join(", ", RevocationFormats.All)}.";
        }

        if (e.RevocationFormat is RevocationFormats.GitHubGrant or RevocationFormats.Square or RevocationFormats.FormAccessTokenWithClient
            && e.TokenEndpointAuth == ClientAuthMethods.None)
        {
            yield return $"revocation_format {e.RevocationFormat} authenticates with the client secret; a public client (token_endpoint_auth none) has none.";
        }

        if (e.ClientIdParam is not null && !QuirkSyntax.ParameterName().IsMatch(e.ClientIdParam))
        {
            yield return "client_id_param must be a parameter name (letters, digits, '_').";
        }

        if (e.ApiAuthScheme is not null && !QuirkSyntax.AuthScheme().IsMatch(e.ApiAuthScheme))
        {
            yield return "api_auth_scheme must be an HTTP authentication scheme token (RFC 9110 §11.1), e.g. OAuth.";
        }

        foreach (var (name, value) in e.ApiRequestHeaders ?? [])
        {
            if (!QuirkSyntax.HeaderName().IsMatch(name) || ApiRequestHeaderTemplate.ReservedHeaders.Contains(name))
            {
                yield return $"api_request_headers: '{name}' is not a header the catalog may set (not a token, or one the Bridge sets itself).";
            }

            if (ApiRequestHeaderTemplate.Problem(value) is { } problem)
            {
                yield return $"api_request_headers.{name}: {problem}";
            }
        }

        if (e.RevocationFormat is not null && e.RevocationUrl is null)
        {
            yield return "revocation_format needs a revocation_url.";
        }

        if (e.ScopeSeparator is not (null or " " or ","))
        {
            yield return "scope_separator must be ' ' or ','.";
        }

        if (e.Refresh is null)
        {
            yield return "oauth2 entries need refresh {supported}.";
        }

        if (e.CredentialSchema is not null || e.ApiKey is not null)
        {
            yield return "credential_schema and api_key belong to non-oauth2 entries.";
        }
    }

    /// <summary>The JSON Schema subset credential forms rely on: an object with typed properties and a consistent required list.</summary>
    private static IEnumerable<string> ValidateCredentialSchema(JsonElement? schema, string mode)
    {
        if (schema is not { ValueKind: JsonValueKind.Object } s)
        {
            yield return "credential_schema (a JSON Schema object) is required.";
            yield break;
        }

        if (s.TryGetProperty("$schema", out var dialect) && dialect.GetString() != "https://json-schema.org/draft/2020-12/schema")
        {
            yield return "credential_schema.$schema must be https://json-schema.org/draft/2020-12/schema.";
        }

        if (!s.TryGetProperty("type", out var type) || type.GetString() != "object")
        {
            yield return "credential_schema.type must be \"object\".";
        }

        if (!s.TryGetProperty("properties", out var properties) || properties.ValueKind != JsonValueKind.Object || !properties.EnumerateObject().Any())
        {
            yield return "credential_schema.properties must describe at least one field.";
            yield break;
        }

        foreach (var property in properties.EnumerateObject())
        {
            if (property.Value.ValueKind != JsonValueKind.Object || !property.Value.TryGetProperty("type", out var t)
                || t.GetString() is not ("string" or "integer" or "number" or "boolean"))
            {
                yield return $"credential_schema.properties.{property.Name} needs a scalar type.";
            }

            if (property.Value.TryGetProperty("pattern", out var pattern))
            {
                string? regexError = null;
                try
                {
                    _ = new Regex(pattern.GetString() ?? "", RegexOptions.None, TimeSpan.FromSeconds(1));
                }
                catch (ArgumentException ex)
                {
                    regexError = ex.Message;
                }

                if (regexError is not null)
                {
                    yield return $"credential_schema.properties.{property.Name}.pattern is not a valid regular expression.";
                }
            }

            if (property.Value.TryGetProperty("x-secret", out var secret) && secret.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                yield return $"credential_schema.properties.{property.Name}.x-secret must be a boolean.";
            }
        }

        if (s.TryGetProperty("required", out var required))
        {
            if (required.ValueKind != JsonValueKind.Array || required.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String || !properties.TryGetProperty(r.GetString()!, out _)))
            {
                yield return "credential_schema.required must list names from properties.";
            }
            else
            {
                // The same rule as registration (CredentialSchemas.RequiredFields): the mode's fields, under their names.
                foreach (var name in CredentialSchemas.RequiredFields(mode))
                {
                    if (!properties.TryGetProperty(name, out _) || !required.EnumerateArray().Any(r => r.GetString() == name))
                    {
                        yield return $"credential_schema must define and require '{name}' ({mode} property names are fixed).";
                    }
                }
            }
        }
        else
        {
            yield return "credential_schema.required must say which fields are mandatory.";
        }

        if (!properties.EnumerateObject().Any(p => p.Value.TryGetProperty("x-secret", out var x) && x.ValueKind == JsonValueKind.True))
        {
            yield return "credential_schema must mark its secret field(s) with \"x-secret\": true, so they are encrypted and never shown.";
        }
    }

    private static IEnumerable<(string Field, string Template)> Templates(CatalogEntry e)
    {
        (string, string?)[] fields =
        [
            ("api_base_url", e.ApiBaseUrl), ("authorization_url", e.AuthorizationUrl), ("token_url", e.TokenUrl),
            ("revocation_url", e.RevocationUrl), ("userinfo_url", e.UserinfoUrl), ("refresh_url", e.RefreshUrl),
        ];
        foreach (var (field, value) in fields)
        {
            if (value is not null)
            {
                yield return (field, value);
            }
        }

        foreach (var (name, value) in e.Aws ?? [])
        {
            yield return ($"aws.{name}", value);
        }

        if (e.Metadata is { } metadata)
        {
            yield return ("metadata.url", metadata.Url);
        }

        foreach (var (name, resource) in e.Resources ?? [])
        {
            for (var i = 0; i < resource.Scopes.Length; i++)
            {
                yield return ($"resources.{name}.scopes[{i}]", resource.Scopes[i]);
            }

            if (resource.ApiBaseUrl is not null)
            {
                yield return ($"resources.{name}.api_base_url", resource.ApiBaseUrl);
            }
        }
    }

    /// <summary>Fills placeholders with their defaults, or a sample value when there is none (for shape checks).</summary>
    private static string Fill(string template, Dictionary<string, CatalogPlaceholder> placeholders) =>
        PlaceholderPattern().Replace(template, m => placeholders.TryGetValue(m.Groups[1].Value, out var p) && p.Default is not null ? p.Default : "sample");

    public static bool IsAbsoluteHttps(string? url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttps && !string.IsNullOrEmpty(uri.Host)
        && string.IsNullOrEmpty(uri.Fragment) && string.IsNullOrEmpty(uri.UserInfo);

    [GeneratedRegex(@"\{([a-z_][a-z0-9_]*)\}")]
    public static partial Regex PlaceholderPattern();

    /// <summary>The reserved placeholder a revocation_url may hold for the registration's client id.</summary>
    public const string ReservedClientId = "{client_id}";
}

internal static class PkceModes
{
    public const string Required = "required";
    public const string Supported = "supported";
    public const string Unsupported = "unsupported";
}

/// <summary>Client authentication at the provider's token endpoint (RFC 6749 §2.3.1).</summary>
internal static class ClientAuthMethods
{
    public const string Basic = "client_secret_basic";
    public const string Post = "client_secret_post";

    /// <summary>A public client (RFC 6749 §2.1): no secret; only client_id is sent, and PKCE S256 is always used (RFC 7636, RFC 9700 §2.1.1).</summary>
    public const string None = "none";

    /// <summary>RFC 7523 §2.2: a JWT signed with the client's private key (ES256); only for machine-to-machine MCP servers.</summary>
    public const string PrivateKeyJwt = "private_key_jwt";
}

internal static class TokenRequestFormats
{
    /// <summary>application/x-www-form-urlencoded, as RFC 6749 §4.1.3 specifies (the default).</summary>
    public const string Form = "form";

    /// <summary>A JSON body, for providers that require one (Notion).</summary>
    public const string Json = "json";
}

internal static class RevocationFormats
{
    /// <summary>RFC 7009 §2.1: a form post of token and token_type_hint with client authentication (the default).</summary>
    public const string Rfc7009 = "rfc7009";

    /// <summary>The same form post, where revoking one token ends the person's whole grant to the app (Google): one call, skipped while the grant continues.</summary>
    public const string Rfc7009Grant = "rfc7009_grant";

    /// <summary>A POST that carries the token to revoke as its Bearer credentials and no body (Slack, Dropbox).</summary>
    public const string Bearer = "bearer";

    /// <summary>A JSON body {"token": …} with client authentication (Notion, QuickBooks).</summary>
    public const string Json = "json";

    /// <summary>A DELETE with the token to revoke as its Bearer credentials and no body (Zendesk, Vimeo, Facebook).</summary>
    public const string BearerDelete = "bearer_delete";

    /// <summary>The same DELETE where it ends the whole grant (Facebook's /me/permissions): skipped while the grant continues.</summary>
    public const string BearerDeleteGrant = "bearer_delete_grant";

    /// <summary>GitHub: DELETE /applications/{client_id}/grant, Basic client credentials, JSON {"access_token": …}.</summary>
    public const string GitHubGrant = "github_grant";

    /// <summary>A form post of access_token=… alone (Strava's deauthorize).</summary>
    public const string FormAccessToken = "form_access_token";

    /// <summary>A form post of access_token, client_id and client_secret (LINE Login).</summary>
    public const string FormAccessTokenWithClient = "form_access_token_client";

    /// <summary>Square: POST with "Authorization: Client {secret}" and JSON {client_id, access_token}.</summary>
    public const string Square = "square";

    /// <summary>A POST of the revocation URL with ?token= (the refresh token, else the access token) and no body (Zoho).</summary>
    public const string QueryToken = "query_token";

    public static readonly string[] All = [Rfc7009, Rfc7009Grant, Bearer, Json, BearerDelete, BearerDeleteGrant, GitHubGrant, FormAccessToken, FormAccessTokenWithClient, Square, QueryToken];
}

/// <summary>Syntax of the catalog's request quirks.</summary>
internal static partial class QuirkSyntax
{
    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_]{0,39}$")]
    public static partial Regex ParameterName();

    /// <summary>RFC 9110 §5.6.2 token characters.</summary>
    [GeneratedRegex("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}$")]
    public static partial Regex HeaderName();

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9._-]{0,19}$")]
    public static partial Regex AuthScheme();
}

/// <summary>
/// A header the Bridge adds to every API call of a provider (Etsy's "x-api-key: {client_id}:{client_secret}"): literal
/// text with the registration's {client_id} and {client_secret}, nothing else.
/// </summary>
internal static partial class ApiRequestHeaderTemplate
{
    public const string ClientId = "{client_id}";
    public const string ClientSecret = "{client_secret}";

    /// <summary>Headers the Bridge sets or strips itself, or that change the meaning of the request.</summary>
    public static readonly HashSet<string> ReservedHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Authorization", "Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection", "Cookie", "Upgrade", "TE", "Trailer",
        "Proxy-Authorization", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP", "Nexus-Connection-Id",
    };

    public static bool UsesSecret(string template) => template.Contains(ClientSecret, StringComparison.Ordinal);

    public static string? Problem(string template)
    {
        var rest = template.Replace(ClientId, "", StringComparison.Ordinal).Replace(ClientSecret, "", StringComparison.Ordinal);
        if (rest.Contains('{', StringComparison.Ordinal) || rest.Contains('}', StringComparison.Ordinal))
        {
            return "only {client_id} and {client_secret} may be filled in.";
        }

        return rest.Any(c => c is < '\x20' or > '\x7e') ? "must be printable ASCII." : null;
    }

    public static string Fill(string template, string clientId, string? clientSecret) =>
        template.Replace(ClientId, clientId, StringComparison.Ordinal).Replace(ClientSecret, clientSecret ?? "", StringComparison.Ordinal);

    /// <summary>A provider's api_request_headers filled in; the client secret is decrypted only when a header uses it.</summary>
    public static List<KeyValuePair<string, string>> For(Provider provider, Func<string?> clientSecret, out string? secretUsed)
    {
        var headers = provider.Config.ApiRequestHeaders ?? [];
        secretUsed = headers.Values.Any(UsesSecret) ? clientSecret() : null;
        var secret = secretUsed;
        return [.. headers.Select(h => new KeyValuePair<string, string>(h.Key, Fill(h.Value, provider.ClientId, secret)))];
    }
}

internal static partial class ProviderNames
{
    public static bool IsValid(string? name) => name is not null && NamePattern().IsMatch(name);

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,62}$")]
    private static partial Regex NamePattern();
}
