namespace Nexus.Server.Hosting;

/// <summary>
/// One OAuth error code: the <c>error</c> member of an RFC 6749 §5.2 JSON body, the <c>error</c> parameter of a
/// redirect (RFC 6749 §4.1.2.1) or of a <c>WWW-Authenticate: Bearer</c> challenge (RFC 6750 §3.1); the HTTP status it
/// is answered with in JSON; what it means; and the specification that defines it.
/// </summary>
internal sealed record OAuthError(string Error, int Status, string Description, string Specification);

/// <summary>
/// Every OAuth <c>error</c> Nexus answers with, in one place (issue 13, item 4). The OAuth endpoints write them
/// through OAuthResponses.ErrorAsync with an entry of this table, never with a literal; the descriptions sent are the
/// call site's (they say what to change), the ones here say what the code means (docs/errors.md).
/// </summary>
internal static class OAuthErrorCatalog
{
    public static readonly OAuthError InvalidRequest = new("invalid_request", 400, "A parameter is missing, repeated, malformed or not supported.", "RFC 6749 §5.2");
    public static readonly OAuthError InvalidClient = new("invalid_client", 401, "Client authentication failed (429 when too many failed).", "RFC 6749 §5.2");
    public static readonly OAuthError InvalidGrant = new("invalid_grant", 400, "The code or refresh token is invalid, expired, revoked, already used or issued to another client.", "RFC 6749 §5.2");
    public static readonly OAuthError UnauthorizedClient = new("unauthorized_client", 400, "The client may not use this grant type or flow.", "RFC 6749 §5.2");
    public static readonly OAuthError UnsupportedGrantType = new("unsupported_grant_type", 400, "The grant type is not supported (501 when it is not enabled for this App Client).", "RFC 6749 §5.2");
    public static readonly OAuthError UnsupportedResponseType = new("unsupported_response_type", 400, "Only response_type=code is supported.", "RFC 6749 §4.1.2.1");
    public static readonly OAuthError InvalidScope = new("invalid_scope", 400, "The scope is malformed, unknown or wider than granted.", "RFC 6749 §5.2");
    public static readonly OAuthError InvalidTarget = new("invalid_target", 400, "The resource indicator is not acceptable.", "RFC 8707 §2");
    public static readonly OAuthError AccessDenied = new("access_denied", 403, "The user declined, or dynamic client registration is turned off.", "RFC 6749 §4.1.2.1");
    public static readonly OAuthError TemporarilyUnavailable = new("temporarily_unavailable", 503, "Nexus cannot answer now (the database is unavailable; 429 when registrations are rate limited).", "RFC 6749 §4.1.2.1");
    public static readonly OAuthError LoginRequired = new("login_required", 400, "prompt=none and the user is not signed in.", "OpenID Connect Core §3.1.2.6");
    public static readonly OAuthError ConsentRequired = new("consent_required", 400, "prompt=none and the user has not authorized the application yet.", "OpenID Connect Core §3.1.2.6");
    public static readonly OAuthError InteractionRequired = new("interaction_required", 400, "prompt=none and the user must act first: they signed in with a temporary password and have not chosen their own.", "OpenID Connect Core §3.1.2.6");
    public static readonly OAuthError RequestNotSupported = new("request_not_supported", 400, "Request objects (the request parameter) are not supported; send the parameters themselves.", "OpenID Connect Core §3.1.2.6");
    public static readonly OAuthError RequestUriNotSupported = new("request_uri_not_supported", 400, "request_uri is not supported; send the parameters themselves.", "OpenID Connect Core §3.1.2.6");
    public static readonly OAuthError InvalidClientMetadata = new("invalid_client_metadata", 400, "A field of the client metadata is not acceptable.", "RFC 7591 §3.2.2");
    public static readonly OAuthError InvalidRedirectUri = new("invalid_redirect_uri", 400, "A redirect URI is not acceptable.", "RFC 7591 §3.2.2");
    public static readonly OAuthError InvalidToken = new("invalid_token", 401, "The access token is missing, expired, revoked or not for this resource.", "RFC 6750 §3.1");
    public static readonly OAuthError InsufficientScope = new("insufficient_scope", 403, "The access token lacks a scope the request needs.", "RFC 6750 §3.1");

    /// <summary>Every entry, in the order above (docs/errors.md lists them so).</summary>
    public static readonly IReadOnlyList<OAuthError> All = typeof(OAuthErrorCatalog).GetFields()
        .Where(f => f.FieldType == typeof(OAuthError)).Select(f => (OAuthError)f.GetValue(null)!).ToList();
}
