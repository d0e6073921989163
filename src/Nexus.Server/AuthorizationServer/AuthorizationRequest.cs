using Microsoft.Extensions.Primitives;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Resources;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>A validated authorization request (RFC 6749 §4.1.1 with RFC 7636 PKCE and OIDC parameters).</summary>
internal sealed record AuthorizationRequest(
    OAuthClient Client,
    string RedirectUri,
    IReadOnlyList<string> Scopes,
    string? State,
    string? Nonce,
    string? CodeChallenge,
    string? Prompt,
    IReadOnlyDictionary<string, string> Parameters,
    string? Resource = null)
{
    /// <summary>Whether the request named its redirect_uri (else <see cref="RedirectUri"/> is the client's only registered one).</summary>
    public bool RedirectUriSent => Parameters.ContainsKey("redirect_uri");

    /// <summary>
    /// OIDC Core §3.1.2.1 max_age: the most seconds since the person last authenticated that the client accepts; null
    /// when not sent. Validated (a non-negative integer) by <see cref="AuthorizationRequestValidator"/>.
    /// </summary>
    public long? MaxAge => Parameters.TryGetValue("max_age", out var value) ? long.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : null;
}

/// <summary>
/// What is wrong with an authorization request. Errors found before the client and redirect URI are trusted are
/// shown on a Nexus page (<see cref="RedirectUri"/> is null): redirecting then would make Nexus an open
/// redirector (RFC 9700 §4.11). Later errors go back to the client.
/// </summary>
/// <param name="Client">The client, once known: one that registered itself has its errors redirected only where trusted (AuthorizeEndpoint).</param>
internal sealed record AuthorizationError(OAuthError Error, string Description, string? RedirectUri, string? State, OAuthClient? Client = null);

internal static class AuthorizationRequestValidator
{
    public const int CodeLifetimeSeconds = 60;

    private static readonly HashSet<string> SingleValued =
        ["client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "prompt", "response_mode", "max_age", "login_hint", ResourceIndicators.Parameter];

    /// <param name="defaultResponseType">The documented /api/oauth/authorize route sends no response_type and means "code".</param>
    public static async Task<(AuthorizationRequest? Request, AuthorizationError? Error)> ValidateAsync(
        IEnumerable<KeyValuePair<string, StringValues>> raw, ClientRegistry clients, NexusOptions options, bool defaultResponseType, CancellationToken ct,
        ClientMetadataDocuments? documents = null, string? address = null)
    {
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        string? repeated = null;
        foreach (var (name, values) in raw)
        {
            if (values.Count > 1 && SingleValued.Contains(name))
            {
                repeated ??= name;
            }

            if (values.Count > 0 && !string.IsNullOrEmpty(values[0]))
            {
                parameters[name] = values[0]!;
            }
        }

        string? Get(string name) => parameters.GetValueOrDefault(name);

        if (repeated is "client_id" or "redirect_uri")
        {
            return (null, new AuthorizationError(OAuthErrorCatalog.InvalidRequest, $"The parameter '{repeated}' is repeated.", null, null));
        }

        var clientId = Get("client_id");
        var client = clientId is null || clientId.Length > 2000 ? null : await clients.FindCachedAsync(clientId, ct);
        if (clientId is not null && documents is not null && documents.IsCandidate(clientId) && (client is null || documents.IsStale(client)))
        {
            // Client ID Metadata Document draft §4: the client_id is the URL of the client's metadata; fetch it (or
            // again, once the copy Nexus holds has expired). Errors are shown here: the redirect URI is not trusted yet.
            var (described, documentError) = await documents.ResolveAsync(clientId, address ?? "unknown", ct);
            if (described is null)
            {
                return (null, new AuthorizationError(OAuthErrorCatalog.InvalidClient, $"This application's client ID metadata document cannot be used: {documentError}", null, null));
            }

            client = described;
        }

        if (client is null || client.IsRevoked || client.Kind != ClientKinds.Application)
        {
            return (null, new AuthorizationError(OAuthErrorCatalog.InvalidClient, "This application is not registered with Nexus (unknown or revoked client_id).", null, null));
        }

        // RFC 9700 §4.1.3 / OAuth 2.1 §4.1.1: redirect URIs are compared as exact strings, no pattern matching,
        // except for the port of a loopback redirect (RFC 8252 §7.3, in RedirectUris.Matches).
        var redirectUri = Get("redirect_uri");
        if (redirectUri is null)
        {
            if (client.RedirectUriList.Count != 1)
            {
                return (null, new AuthorizationError(OAuthErrorCatalog.InvalidRequest, "redirect_uri is required because this application registered several.", null, null));
            }

            redirectUri = client.RedirectUriList[0];
        }
        else if (!RedirectUris.IsRegistered(client, redirectUri))
        {
            return (null, new AuthorizationError(OAuthErrorCatalog.InvalidRequest, "The redirect_uri does not match any registered for this application.", null, null));
        }

        var state = Get("state");
        AuthorizationError Fail(OAuthError error, string description) => new(error, description, redirectUri, state, client);

        if (repeated == ResourceIndicators.Parameter)
        {
            // RFC 8707 §2: the server may refuse a combination of resources; Nexus binds each grant to one, so that
            // every token it issues has a single audience.
            return (null, Fail(OAuthErrorCatalog.InvalidTarget, "Request one resource per authorization: Nexus binds each grant to a single resource."));
        }

        if (repeated is not null)
        {
            // RFC 6749 §3.1: request parameters MUST NOT be included more than once.
            return (null, Fail(OAuthErrorCatalog.InvalidRequest, $"The parameter '{repeated}' is repeated."));
        }

        // OpenID Connect Core §6: parameters inside a request object would be ignored without a word (a nonce, a code
        // challenge); discovery says neither is supported (request_parameter_supported, request_uri_parameter_supported).
        if (Get("request") is not null)
        {
            return (null, Fail(OAuthErrorCatalog.RequestNotSupported, "Request objects are not supported: send the authorization parameters themselves."));
        }

        if (Get("request_uri") is not null)
        {
            return (null, Fail(OAuthErrorCatalog.RequestUriNotSupported, "request_uri is not supported: send the authorization parameters themselves."));
        }

        var responseType = Get("response_type") ?? (defaultResponseType ? "code" : null);
        if (responseType is null)
        {
            return (null, Fail(OAuthErrorCatalog.InvalidRequest, "response_type is required."));
        }

        if (responseType != "code")
        {
            // OAuth 2.1 / RFC 9700 §2.1.2: only the code flow; the implicit flow is not offered.
            return (null, Fail(OAuthErrorCatalog.UnsupportedResponseType, "Only response_type=code is supported."));
        }

        if (Get("response_mode") is { } mode && mode != "query")
        {
            return (null, Fail(OAuthErrorCatalog.InvalidRequest, "Only response_mode=query is supported."));
        }

        if (!client.GrantTypes.Contains(GrantTypes.AuthorizationCode))
        {
            return (null, Fail(OAuthErrorCatalog.UnauthorizedClient, "This application may not use the authorization code flow."));
        }

        IReadOnlyList<string> scopes = client.Scopes;
        if (Get("scope") is { } scopeParameter)
        {
            // RFC 6749 §3.3: scope-token = 1*NQCHAR; a scope parameter of blanks (scope=+) is malformed: invalid_scope,
            // never an empty list that every consent would vacuously cover.
            var parsed = ScopeSyntax.Parse(scopeParameter);
            if (parsed is null)
            {
                return (null, Fail(OAuthErrorCatalog.InvalidScope, "The scope parameter is malformed: it must hold one or more space-separated scopes."));
            }

            if (parsed.FirstOrDefault(s => !client.Scopes.Contains(s)) is { } unknown)
            {
                return (null, Fail(OAuthErrorCatalog.InvalidScope, $"The scope '{unknown}' is not available to this application."));
            }

            scopes = parsed;
        }

        // RFC 7636 §4.3 and RFC 9700 §2.1.1: only S256; "plain" would hand the verifier to whoever sees the URL.
        var challenge = Get("code_challenge");
        var method = Get("code_challenge_method");
        if (challenge is null)
        {
            if (method is not null)
            {
                return (null, Fail(OAuthErrorCatalog.InvalidRequest, "code_challenge_method was sent without code_challenge."));
            }

            // OAuth 2.1 §7.5.1 and MCP authorization: public clients, and every client that registered itself, use PKCE.
            if (client.IsPublic || client.IsSelfRegistered)
            {
                return (null, Fail(OAuthErrorCatalog.InvalidRequest, "PKCE is required for this application: send code_challenge with code_challenge_method=S256."));
            }
        }
        else
        {
            if (method != "S256")
            {
                return (null, Fail(OAuthErrorCatalog.InvalidRequest, method is null or "plain"
                    ? "code_challenge_method must be S256; plain is not accepted."
                    : "Unsupported code_challenge_method; use S256."));
            }

            // RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters.
            if (challenge.Length != 43 || !challenge.All(IsBase64UrlChar))
            {
                return (null, Fail(OAuthErrorCatalog.InvalidRequest, "code_challenge must be the 43-character base64url SHA-256 of the code verifier."));
            }
        }

        var prompt = Get("prompt");
        if (prompt is not null && prompt.Split(' ').Any(p => p is not ("none" or "login" or "consent" or "select_account")))
        {
            return (null, Fail(OAuthErrorCatalog.InvalidRequest, "Unsupported prompt value."));
        }

        // OIDC Core §3.1.2.1: "If this parameter contains none with any other value, an error is returned."
        if (prompt is not null && prompt.Split(' ').Contains("none") && prompt.Split(' ').Any(p => p != "none"))
        {
            return (null, Fail(OAuthErrorCatalog.InvalidRequest, "prompt=none cannot be combined with another prompt value."));
        }

        string? resource = null;
        if (Get(ResourceIndicators.Parameter) is { } requestedResource)
        {
            // RFC 8707 §2: an unknown or malformed resource is invalid_target.
            (resource, var targetError) = ResourceIndicators.Resolve(options, requestedResource);
            if (resource is null)
            {
                return (null, Fail(OAuthErrorCatalog.InvalidTarget, targetError!));
            }
        }

        // OIDC Core §3.1.2.1: max_age is a number of seconds; anything else is a malformed request.
        if (Get("max_age") is { } maxAge && (maxAge.Length is 0 or > 10 || !maxAge.All(char.IsAsciiDigit)))
        {
            return (null, Fail(OAuthErrorCatalog.InvalidRequest, "max_age must be a non-negative integer number of seconds."));
        }

        return (new AuthorizationRequest(client, redirectUri, scopes, state, Get("nonce"), challenge, prompt, parameters, resource), null);
    }

    public static bool IsBase64UrlChar(char c) => c is >= 'A' and <= 'Z' or >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_';

    /// <summary>RFC 6749 §4.1.2 and RFC 9207: the response goes to the redirect URI with state and iss.</summary>
    public static string BuildRedirect(string redirectUri, string issuer, string? state, params (string Name, string Value)[] parameters)
    {
        var query = parameters.Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value)}").ToList();
        if (state is not null)
        {
            query.Add($"state={Uri.EscapeDataString(state)}");
        }

        query.Add($"iss={Uri.EscapeDataString(issuer)}");
        var separator = redirectUri.Contains('?', StringComparison.Ordinal) ? "&" : "?";
        return redirectUri + separator + string.Join('&', query);
    }
}
