using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Vault;

namespace Nexus.Server.Connections;

/// <summary>What a provider's token endpoint answered, reduced to what the broker stores. Never logged.</summary>
internal sealed record TokenExchangeResult(
    string? AccessToken,
    string? RefreshToken,
    string? TokenType,
    long? ExpiresIn,
    string? Error,
    string? ErrorDescription)
{
    public bool Succeeded => Error is null && !string.IsNullOrEmpty(AccessToken);

    /// <summary>
    /// The other top-level string fields of the response (scope, Salesforce's instance_url, Pipedrive's api_domain),
    /// never the tokens themselves.
    /// </summary>
    public IReadOnlyDictionary<string, string> Fields { get; init; } = new Dictionary<string, string>();

    // Holds tokens: never printed.
    public override string ToString() => Succeeded ? "TokenExchangeResult(succeeded)" : $"TokenExchangeResult({Error})";

    /// <summary>
    /// How a failure is to be taken (<see cref="Refresh.RefreshClient.Classify"/>), worked out once from the real HTTP
    /// status where there was one; null on success.
    /// </summary>
    public Refresh.RefreshFailureKind? FailureKind { get; init; }

    /// <summary>
    /// A failure worth trying again later, not a refusal: the token endpoint could not be reached or did not answer in
    /// time, answered 5xx, 429 or 408, said temporarily_unavailable or server_error, or answered something unreadable.
    /// </summary>
    public bool Transient => FailureKind == Refresh.RefreshFailureKind.Transient;

    /// <summary>The token endpoint's Retry-After (RFC 9110 §10.2.3) with a 503 or 429, which a refresh waits for at least.</summary>
    public TimeSpan? RetryAfter { get; init; }

    public static TokenExchangeResult Fail(string error, string? description) => new(null, null, null, null, error, description);
}

/// <summary>
/// The client side of OAuth 2.0 against a registered provider: the authorization request (RFC 6749 §4.1.1 with
/// PKCE, RFC 7636), the code exchange (§4.1.3) and token revocation (RFC 7009), with the per-provider variations
/// the catalog describes (client authentication, JSON bodies, form-encoded answers, Slack's authed_user).
/// </summary>
internal sealed class ProviderClient(IHttpClientFactory httpFactory, ProviderRegistry registry, UpstreamPolicy policy, TimeProvider time, ILogger<ProviderClient> logger)
{
    private const int MaxResponseBytes = 64 * 1024;

    /// <summary>
    /// Which account a fresh token belongs to, from the provider's userinfo endpoint (OIDC Core §5.3 or the
    /// provider's equivalent): email, else a login or name. Best effort: null when there is no endpoint or it fails.
    /// </summary>
    public async Task<string?> FetchAccountAsync(Provider provider, string accessToken, CancellationToken ct)
    {
        if (provider.Config.UserinfoUrl is not { } url || policy.Check(url) is not null)
        {
            return null;
        }

        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Authorization = new AuthenticationHeaderValue(provider.Config.ApiAuthScheme ?? "Bearer", accessToken);
            request.Headers.Accept.ParseAdd("application/json");
            foreach (var (name, value) in ApiRequestHeaderTemplate.For(provider, () => registry.DecryptSecret(provider), out _))
            {
                // Twitch's userinfo needs its Client-Id like every Helix call.
                request.Headers.TryAddWithoutValidation(name, value);
            }

            using var response = await httpFactory.CreateClient(UpstreamPolicy.HttpClientName).SendAsync(request, ct);
            if (!response.IsSuccessStatusCode || await response.Content.ReadLimitedAsync(MaxResponseBytes, ct) is not { } body)
            {
                return null;
            }

            var root = System.Text.Json.JsonDocument.Parse(body).RootElement;
            foreach (var claim in new[] { "email", "preferred_username", "login", "username", "name", "sub" })
            {
                if (root.ValueKind == System.Text.Json.JsonValueKind.Object && root.TryGetProperty(claim, out var value) && value.ValueKind == System.Text.Json.JsonValueKind.String
                    && value.GetString() is { Length: > 0 } text)
                {
                    return text;
                }
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            logger.LogInformation("Userinfo of {Provider} unavailable: {Error}", provider.Name, e.GetType().Name);
        }

        return null;
    }

    /// <summary>
    /// The catalog's metadata call after consent (Mailchimp: GET /oauth2/metadata with "Authorization: OAuth …"): its
    /// top-level string fields, or null when there is no call or it fails.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, string>?> FetchMetadataAsync(Provider provider, string accessToken, CancellationToken ct)
    {
        if (provider.Config.Metadata is not { } metadata || policy.Check(metadata.Url) is not null)
        {
            return null;
        }

        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, metadata.Url);
            request.Headers.Authorization = new AuthenticationHeaderValue(metadata.AuthScheme ?? "Bearer", accessToken);
            request.Headers.Accept.ParseAdd("application/json");
            using var response = await httpFactory.CreateClient(UpstreamPolicy.HttpClientName).SendAsync(request, ct);
            if (!response.IsSuccessStatusCode || await response.Content.ReadLimitedAsync(MaxResponseBytes, ct) is not { } body)
            {
                return null;
            }

            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            return document.RootElement.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.String).Take(50)
                .ToDictionary(p => p.Name, p => p.Value.GetString()!);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
        {
            logger.LogInformation("Metadata call of {Provider} failed: {Error}", provider.Name, e.GetType().Name);
            return null;
        }
    }

    /// <summary>RFC 7636 §4.1: 32 random bytes, base64url, give a 43-character code_verifier.</summary>
    public static string NewCodeVerifier() => SecretGenerator.Base64Url(RandomNumberGenerator.GetBytes(32));

    /// <summary>RFC 7636 §4.2: code_challenge = BASE64URL(SHA256(ASCII(code_verifier))) for S256.</summary>
    public static string S256(string verifier) => SecretGenerator.Base64Url(SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));

    public static string AuthorizationUrl(Provider provider, string redirectUri, IReadOnlyList<string> scopes, string state, string? codeVerifier)
    {
        var query = new List<KeyValuePair<string, string?>>
        {
            new("response_type", "code"),
            // TikTok names it client_key (the catalog's client_id_param).
            new(provider.Config.ClientIdParameter, provider.ClientId),
            new("redirect_uri", redirectUri),
        };
        if (scopes.Count > 0)
        {
            query.Add(new("scope", string.Join(provider.Config.ScopeSeparator, scopes)));
        }

        query.Add(new("state", state));
        if (codeVerifier is not null)
        {
            // RFC 7636 §4.3; S256 only: "plain" protects nothing against an attacker who can read the request.
            query.Add(new("code_challenge", S256(codeVerifier)));
            query.Add(new("code_challenge_method", "S256"));
        }

        foreach (var (name, value) in provider.Config.AuthorizationParams)
        {
            query.Add(new(name, value));
        }

        if (provider.Config.Resource is { } resource)
        {
            // RFC 8707 §2 and MCP authorization (resource parameter): the token is requested for this resource only.
            query.Add(new("resource", resource));
        }

        return QueryHelpers.AddQueryString(provider.Config.AuthorizationUrl, query);
    }

    /// <summary>Exchanges an authorization code (RFC 6749 §4.1.3). Network failures come back as a failed result, never as an exception.</summary>
    public async Task<TokenExchangeResult> ExchangeCodeAsync(Provider provider, string code, string redirectUri, string? codeVerifier, CancellationToken ct)
    {
        if (policy.Check(provider.Config.TokenUrl) is { } problem)
        {
            return TokenExchangeResult.Fail("invalid_provider_configuration", $"token_url {problem}");
        }

        var parameters = new List<KeyValuePair<string, string>>
        {
            new("grant_type", "authorization_code"),
            new("code", code),
            // RFC 6749 §4.1.3: redirect_uri is REQUIRED here when it was sent in the authorization request.
            new("redirect_uri", redirectUri),
        };
        if (codeVerifier is not null)
        {
            parameters.Add(new("code_verifier", codeVerifier));
        }

        if (provider.Config.Resource is { } resource)
        {
            // RFC 8707 §2.2: the same resource on the token request as on the authorization request.
            parameters.Add(new("resource", resource));
        }

        return await RequestTokenAsync(provider, parameters, ct);
    }

    /// <summary>
    /// RFC 6749 §4.4.2: a token for the client itself (a machine-to-machine MCP server, SEP-1046), with the client
    /// authenticated by its secret or a private_key_jwt assertion (RFC 7523 §2.2). No person, no refresh token:
    /// a new token is asked for the same way whenever one is needed.
    /// </summary>
    public async Task<TokenExchangeResult> ClientCredentialsAsync(Provider provider, IReadOnlyCollection<string> scopes, CancellationToken ct)
    {
        if (policy.Check(provider.Config.TokenUrl) is { } problem)
        {
            return TokenExchangeResult.Fail("invalid_provider_configuration", $"token_url {problem}");
        }

        var parameters = new List<KeyValuePair<string, string>> { new("grant_type", "client_credentials") };
        if (scopes.Count > 0)
        {
            parameters.Add(new("scope", string.Join(' ', scopes)));
        }

        if (provider.Config.Resource is { } resource)
        {
            // RFC 8707 §2.2 / MCP authorization: resource on every token request.
            parameters.Add(new("resource", resource));
        }

        return await RequestTokenAsync(provider, parameters, ct);
    }

    private async Task<TokenExchangeResult> RequestTokenAsync(Provider provider, List<KeyValuePair<string, string>> parameters, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, provider.Config.TokenUrl);
        AddClientAuthentication(provider, request, parameters);
        request.Content = Body(provider.Config.TokenRequestFormat, parameters);
        foreach (var (name, value) in provider.Config.TokenRequestHeaders)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        try
        {
            var http = httpFactory.CreateClient(UpstreamPolicy.HttpClientName);
            // One deadline for the whole answer, headers and body (HttpClient.Timeout alone bounds the headers), or a
            // provider that trickles its answer would hold a callback (or a refresh, and its connection's lock) for ever.
            using var deadline = new Deadline(http.Timeout, time, ct);
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            var body = await response.Content.ReadLimitedAsync(MaxResponseBytes, deadline.Token);
            if (body is null)
            {
                return TokenExchangeResult.Fail("invalid_token_response", "The provider's token response is too large.") with { FailureKind = Refresh.RefreshFailureKind.Transient };
            }

            var result = Parse(body, response.Content.Headers.ContentType?.MediaType);
            if (result.Error is not null || !response.IsSuccessStatusCode || string.IsNullOrEmpty(result.AccessToken))
            {
                // GitHub and Slack report errors with HTTP 200 and an "error" field, others with 400 (RFC 6749 §5.2).
                return TokenExchangeResult.Fail(result.Error ?? (response.IsSuccessStatusCode ? "invalid_token_response" : "token_request_failed"),
                    result.ErrorDescription ?? (response.IsSuccessStatusCode ? "The provider answered without an access_token." : $"The provider's token endpoint answered HTTP {(int)response.StatusCode}."))
                    with
                    {
                        FailureKind = Refresh.RefreshClient.Classify((int)response.StatusCode, result.Error),
                        RetryAfter = Refresh.RefreshClient.RetryAfter(response, time.GetUtcNow()),
                    };
            }

            return result;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            logger.LogWarning("Token exchange with provider {Provider} failed: {Error}", provider.Name, e.GetType().Name);
            return TokenExchangeResult.Fail("provider_unreachable", "The provider's token endpoint could not be reached.") with { FailureKind = Refresh.RefreshFailureKind.Transient };
        }
    }

    /// <summary>
    /// Revokes the tokens at the provider, best effort, the way its revocation_format says (RFC 7009 §2.1 by default,
    /// or the provider's own API: <see cref="Revocation.RevocationStyle"/>). Returns a secret-free outcome for the audit log.
    /// <paramref name="grantContinues"/>: the tokens are superseded but the person's grant lives on in newer tokens (a
    /// reconnect), so a style that ends the whole grant is not called ("skipped_ends_grant").
    /// </summary>
    public async Task<string> RevokeAsync(Provider provider, string? accessToken, string? refreshToken, CancellationToken ct, bool grantContinues = false)
    {
        if (provider.Config.RevocationUrl is not { } template)
        {
            return "not_supported";
        }

        var style = Revocation.RevocationStyle.For(provider.Config.RevocationFormat);
        if (grantContinues && style.EndsGrant)
        {
            return "skipped_ends_grant";
        }

        // The catalog's reserved {client_id} (GitHub's /applications/{client_id}/grant): one path segment, escaped.
        var url = template.Replace(Revocation.RevocationStyle.ClientIdPlaceholder, Uri.EscapeDataString(provider.ClientId), StringComparison.Ordinal);
        if (policy.Check(url) is not null)
        {
            return "invalid_revocation_url";
        }

        var outcomes = new List<string>();
        var client = httpFactory.CreateClient(UpstreamPolicy.HttpClientName);
        var context = new Revocation.RevocationContext(provider, url, accessToken, refreshToken,
            () => provider.Config.TokenEndpointAuth == ClientAuthMethods.None ? null : registry.DecryptSecret(provider),
            (request, parameters) => AddClientAuthentication(provider, request, parameters));
        foreach (var (hint, request) in style.Calls(context))
        {
            using (request)
            {
                try
                {
                    using var response = await client.SendAsync(request, ct);
                    // RFC 7009 §2.2: 200 means revoked, or the token was already invalid; the providers' own APIs answer 200 or 204.
                    outcomes.Add($"{hint}:{(int)response.StatusCode}");
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
                {
                    outcomes.Add($"{hint}:unreachable");
                }
            }
        }

        return outcomes.Count == 0 ? "no_tokens" : string.Join(' ', outcomes);
    }

    /// <summary>RFC 6749 §2.3.1: HTTP Basic with the form-urlencoded id and secret, or both in the body.</summary>
    internal void AddClientAuthentication(Provider provider, HttpRequestMessage request, List<KeyValuePair<string, string>> parameters)
    {
        // RFC 6749 §2.3.1 / §3.2.1: a public client sends its client_id and nothing else; PKCE (RFC 7636) binds the code.
        var secret = provider.Config.TokenEndpointAuth == ClientAuthMethods.None ? null : registry.DecryptSecret(provider);
        if (provider.Config.TokenEndpointAuth == ClientAuthMethods.PrivateKeyJwt && secret is not null)
        {
            // RFC 7523 §2.2 (and OpenID Connect Core §9): the stored secret is the client's private key (PEM, encrypted
            // at rest); the assertion replaces any secret.
            parameters.Add(new("client_id", provider.ClientId));
            parameters.Add(new("client_assertion_type", ClientAssertions.JwtBearerType));
            parameters.Add(new("client_assertion", ClientAssertions.Create(secret, provider.ClientId, provider.Config.Issuer ?? provider.Config.TokenUrl, time)));
            return;
        }

        if (provider.Config.TokenEndpointAuth == ClientAuthMethods.Basic && secret is not null)
        {
            var pair = $"{Uri.EscapeDataString(provider.ClientId)}:{Uri.EscapeDataString(secret)}";
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(pair)));
            return;
        }

        // TikTok names it client_key (the catalog's client_id_param).
        parameters.Add(new(provider.Config.ClientIdParameter, provider.ClientId));
        if (secret is not null)
        {
            parameters.Add(new("client_secret", secret));
        }
    }

    internal static HttpContent Body(string format, List<KeyValuePair<string, string>> parameters)
    {
        if (format == TokenRequestFormats.Json)
        {
            return new StringContent(JsonSerializer.Serialize(parameters.ToDictionary(p => p.Key, p => p.Value)), Encoding.UTF8, "application/json");
        }

        return new FormUrlEncodedContent(parameters);
    }

    /// <summary>
    /// Reads a token response: JSON (RFC 6749 §5.1) or, as GitHub answers without Accept: application/json,
    /// form-encoded. When there is no top-level access_token, Slack's user token at authed_user is used.
    /// </summary>
    public static TokenExchangeResult Parse(string body, string? mediaType)
    {
        var trimmed = body.TrimStart();
        if (mediaType?.Contains("json", StringComparison.OrdinalIgnoreCase) == true || trimmed.StartsWith('{'))
        {
            try
            {
                using var document = JsonDocument.Parse(body);
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                {
                    return TokenExchangeResult.Fail("invalid_token_response", "The provider's token response is not a JSON object.");
                }

                var error = Str(root, "error");
                var source = root;
                var userToken = false;
                if (Str(root, "access_token") is null && root.TryGetProperty("authed_user", out var user) && user.ValueKind == JsonValueKind.Object && Str(user, "access_token") is not null)
                {
                    source = user;
                    userToken = true;
                }

                var fields = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var property in root.EnumerateObject())
                {
                    if (property.Name is not ("access_token" or "refresh_token" or "id_token") && property.Value.ValueKind == JsonValueKind.String && fields.Count < 50)
                    {
                        fields[property.Name] = property.Value.GetString()!;
                    }
                }

                if (userToken && Str(source, "scope") is { } userScope)
                {
                    // Slack's user token: its granted scope is the user's.
                    fields["scope"] = userScope;
                }

                return new TokenExchangeResult(Str(source, "access_token"), Str(source, "refresh_token"), Str(source, "token_type"), Seconds(Str(source, "expires_in")),
                    error is null ? null : Sanitize(error), Str(root, "error_description") is { } d ? Sanitize(d) : null) { Fields = fields };
            }
            catch (JsonException)
            {
                return TokenExchangeResult.Fail("invalid_token_response", "The provider's token response is not valid JSON.");
            }
        }

        var form = QueryHelpers.ParseQuery(trimmed.StartsWith('?') ? trimmed : "?" + trimmed);
        string? Get(string name) => form.TryGetValue(name, out var v) && v.Count == 1 && !string.IsNullOrEmpty(v[0]) ? v[0] : null;
        return new TokenExchangeResult(Get("access_token"), Get("refresh_token"), Get("token_type"), Seconds(Get("expires_in")),
            Get("error") is { } e ? Sanitize(e) : null, Get("error_description") is { } desc ? Sanitize(desc) : null)
        {
            Fields = form.Where(f => f.Key is not ("access_token" or "refresh_token" or "id_token") && f.Value.Count == 1).Take(50).ToDictionary(f => f.Key, f => f.Value[0]!),
        };
    }

    private static string? Str(JsonElement element, string name) =>
        element.TryGetProperty(name, out var v) ? v.ValueKind switch
        {
            JsonValueKind.String => v.GetString() is { Length: > 0 } s ? s : null,
            JsonValueKind.Number => v.GetRawText(),
            _ => null,
        } : null;

    /// <summary>The longest token lifetime Nexus takes from a provider's expires_in: ten years.</summary>
    public const long MaxLifetimeSeconds = 10L * 365 * 24 * 3600;

    /// <summary>
    /// expires_in (RFC 6749 §5.1, a lifetime in seconds). A longer lifetime than <see cref="MaxLifetimeSeconds"/>
    /// (a hostile or broken provider's 999999999999) is read as that, so that the expiry and refresh arithmetic
    /// (milliseconds since 1970, DateTimeOffset) stays in range: such a token is simply due in ten years.
    /// </summary>
    private static long? Seconds(string? value)
    {
        if (long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s))
        {
            return s > 0 ? Math.Min(s, MaxLifetimeSeconds) : null;
        }

        // More digits than a long holds.
        return value is { Length: > 0 } && value.All(char.IsAsciiDigit) ? MaxLifetimeSeconds : null;
    }

    /// <summary>A provider's refusal in one phrase: "error: description", or the error alone when it gave none.</summary>
    public static string Describe(string? error, string? description) => error + (description is { } why ? ": " + why : "");

    /// <summary>
    /// RFC 6749 §5.2 limits error and error_description to %x20-21 / %x23-5B / %x5D-7E; anything else from a
    /// provider is dropped before it reaches a redirect or the audit log.
    /// </summary>
    public static string Sanitize(string value)
    {
        var builder = new StringBuilder(Math.Min(value.Length, 200));
        foreach (var c in value)
        {
            if (builder.Length == 200)
            {
                break;
            }

            if (c is >= '\x20' and <= '\x7e' and not '"' and not '\\')
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }
}
