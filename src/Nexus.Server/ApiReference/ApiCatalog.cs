using Nexus.Server.Accounts;
using Nexus.Server.ApiKeys;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.AuthorizationServer.Applications;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Connections;
using Nexus.Server.Hosting;
using Nexus.Server.Notifications;
using Nexus.Server.Providers;
using OAuth = Nexus.Server.Hosting.OAuthErrorCatalog;
using Problem = Nexus.Server.Hosting.ProblemCatalog;

namespace Nexus.Server.ApiReference;

/// <summary>Who may call an operation, as an OpenAPI security requirement.</summary>
internal enum ApiAuth
{
    None,

    /// <summary>The deployment's admin API key in X-API-Key.</summary>
    AdminKey,

    /// <summary>A gateway API key in X-API-Key.</summary>
    GatewayKey,

    /// <summary>OAuth client authentication (RFC 6749 §2.3.1): HTTP Basic, or client_secret in the form.</summary>
    Client,

    /// <summary>A Bearer access token Nexus issued (RFC 6750).</summary>
    Bearer,
}

/// <summary>The shape of an operation's error bodies.</summary>
internal enum ErrorFormat
{
    /// <summary>RFC 9457 problem details with a stable <c>code</c>.</summary>
    Problem,

    /// <summary>RFC 6749 §5.2: <c>{"error", "error_description"}</c>.</summary>
    OAuth,

    /// <summary>A browser leg: errors are redirects or HTML pages.</summary>
    Browser,
}

/// <summary>
/// One documented error response: its status and the codes (problem <c>code</c> or OAuth <c>error</c>) it carries. A
/// catalog entry (Hosting/ProblemCatalog.cs, Hosting/OAuthErrorCatalog.cs) converts to one with its own status; the
/// constructor is for a status the entry is not answered with by default (a browser leg's error page, a 429).
/// </summary>
internal sealed record ApiError(int Status, params string[] Codes)
{
    public static implicit operator ApiError(ProblemType type) => new(type.Status, type.Code);

    public static implicit operator ApiError(OAuthError error) => new(error.Status, error.Error);
}

/// <summary>A list response: <c>{"&lt;Property&gt;": [Item…]}</c>.</summary>
internal sealed record ListOf(string Property, Type Item);

/// <summary>
/// One public operation as the reference documents it. <see cref="Request"/> and <see cref="Response"/> are a CLR
/// type (its schema is generated with the API's JSON options), a <see cref="ListOf"/>, or a JSON example string.
/// </summary>
internal sealed record ApiOperation(
    string Method,
    string Pattern,
    string Summary,
    ApiAuth Auth,
    int Success,
    object? Response,
    ApiError[] Errors,
    object? Request = null,
    string RequestContentType = "application/json",
    ErrorFormat Format = ErrorFormat.Problem,
    string? Description = null)
{
    public string Key => ApiCatalog.Key(Method, Pattern);
}

/// <summary>
/// The table the API reference is completed from: every public route, its summary, body, success response and the
/// errors it documents. ApiReferenceTests fail when a mapped public route has no row, so a new endpoint cannot ship
/// undocumented. Error codes come from the catalogs the handlers answer with (Hosting/ProblemCatalog.cs,
/// Hosting/OAuthErrorCatalog.cs; docs/errors.md).
/// </summary>
internal static class ApiCatalog
{
    private const string Form = "application/x-www-form-urlencoded";

    // Errors every endpoint can answer with.
    private static readonly ApiError InvalidInput = Problem.InvalidInput;
    private static readonly ApiError Unavailable = Problem.DatabaseUnavailable;

    private static readonly ApiError[] Admin = [Problem.Unauthorized, Problem.AdminApiDisabled, InvalidInput, Unavailable];
    private static readonly ApiError[] AdminBody = [.. Admin, Problem.ValidationFailed, Problem.InvalidJson, Problem.BadRequest, Problem.UnsupportedMediaType];
    private static readonly ApiError[] Gateway = [Problem.Unauthorized, InvalidInput, Unavailable];
    private static readonly ApiError[] GatewayBody = [.. Gateway, Problem.ValidationFailed, Problem.InvalidJson, Problem.BadRequest, Problem.UnsupportedMediaType];
    private static readonly ApiError[] OAuthCommon = [OAuth.InvalidRequest, OAuth.TemporarilyUnavailable];
    private static readonly ApiError[] OAuthClient = [.. OAuthCommon, OAuth.InvalidClient];

    private static ApiError NotFound => Problem.NotFound;

    private const string TokenExample = """{"access_token":"eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9...","token_type":"Bearer","expires_in":3600,"refresh_token":"nxr_...","scope":"openid profile","id_token":"eyJhbGciOiJSUzI1NiJ9..."}""";

    public static readonly ApiOperation[] Operations =
    [
        // Discovery and keys (public).
        new("GET", "/.well-known/oauth-authorization-server", "Authorization server metadata (RFC 8414)", ApiAuth.None, 200,
            """{"issuer":"https://nexus.example.com","authorization_endpoint":"https://nexus.example.com/oauth2/authorize","token_endpoint":"https://nexus.example.com/oauth2/token","jwks_uri":"https://nexus.example.com/oauth2/jwks","response_types_supported":["code"],"grant_types_supported":["authorization_code","refresh_token","client_credentials"],"code_challenge_methods_supported":["S256"]}""",
            [Unavailable]),
        new("GET", "/.well-known/openid-configuration", "OpenID Provider configuration (OpenID Connect Discovery 1.0)", ApiAuth.None, 200,
            """{"issuer":"https://nexus.example.com","authorization_endpoint":"https://nexus.example.com/oauth2/authorize","token_endpoint":"https://nexus.example.com/oauth2/token","userinfo_endpoint":"https://nexus.example.com/oauth2/userinfo","jwks_uri":"https://nexus.example.com/oauth2/jwks","subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256"]}""",
            [Unavailable]),
        new("GET", "/oauth2/jwks", "The public signing keys (RFC 7517 JWK Set)", ApiAuth.None, 200,
            """{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k1","n":"...","e":"AQAB"}]}""", [Unavailable]),
        new("GET", "/.well-known/jwks.json", "The public signing keys (alias of /oauth2/jwks)", ApiAuth.None, 200,
            """{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k1","n":"...","e":"AQAB"}]}""", [Unavailable]),
        new("GET", "/.well-known/oauth-protected-resource", "Protected resource metadata (RFC 9728)", ApiAuth.None, 200,
            """{"resource":"https://nexus.example.com/mcp","authorization_servers":["https://nexus.example.com"],"bearer_methods_supported":["header"],"scopes_supported":["mcp"]}""",
            [NotFound]),
        new("GET", "/mcp-client-metadata.json", "Nexus's own client ID metadata document, its client_id at MCP servers' authorization servers (draft-ietf-oauth-client-id-metadata-document)", ApiAuth.None, 200,
            """{"client_id":"https://nexus.example.com/mcp-client-metadata.json","client_name":"Nexus","redirect_uris":["https://nexus.example.com/auth/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}""",
            [Unavailable]),
        new("GET", "/.well-known/oauth-protected-resource/mcp", "Protected resource metadata of the MCP server (RFC 9728 §3.1)", ApiAuth.None, 200,
            """{"resource":"https://nexus.example.com/mcp","authorization_servers":["https://nexus.example.com"],"bearer_methods_supported":["header"],"scopes_supported":["mcp"]}""",
            [NotFound]),
        new("GET", "/v1/catalog", "The provider catalog: the providers Nexus knows how to connect", ApiAuth.None, 200,
            """{"providers":[{"name":"github","display_name":"GitHub","auth_mode":"oauth2","category":"developer"}]}""", [InvalidInput]),

        // The authorization server.
        new("GET", "/oauth2/authorize", "Authorization endpoint (RFC 6749 §4.1.1, PKCE RFC 7636)", ApiAuth.None, 302, null,
            [new(400, OAuth.InvalidRequest.Error, OAuth.InvalidClient.Error, OAuth.UnauthorizedClient.Error, OAuth.UnsupportedResponseType.Error, OAuth.InvalidScope.Error,
                OAuth.InvalidTarget.Error, OAuth.AccessDenied.Error, OAuth.LoginRequired.Error, OAuth.ConsentRequired.Error)],
            Format: ErrorFormat.Browser,
            Description: "A browser request. With a valid client_id and redirect_uri, errors are redirected to the client (RFC 6749 §4.1.2.1) with `error` and `state`; otherwise Nexus shows an error page and never redirects."),
        new("GET", "/api/oauth/authorize", "Authorization endpoint (Nexus Integration Guide path; response_type defaults to code)", ApiAuth.None, 302, null,
            [new(400, OAuth.InvalidRequest.Error, OAuth.InvalidClient.Error, OAuth.UnauthorizedClient.Error, OAuth.UnsupportedResponseType.Error, OAuth.InvalidScope.Error,
                OAuth.InvalidTarget.Error, OAuth.AccessDenied.Error, OAuth.LoginRequired.Error, OAuth.ConsentRequired.Error)],
            Format: ErrorFormat.Browser),
        new("POST", "/oauth2/authorize", "The consent decision: the signed-in person's answer on the consent page", ApiAuth.None, 302, null,
            [new(400, OAuth.InvalidRequest.Error, OAuth.AccessDenied.Error)], "decision=allow&client_id=...&__csrf=...", Form, ErrorFormat.Browser,
            Description: "A browser form (session cookie and antiforgery token), not an API: Nexus redirects to the client's redirect_uri with `code` and `state`, or with `error=access_denied`. "
                + "An application may also send its authorization request by POST (OpenID Connect Core §3.1.2.1): a form without the `__csrf` field is answered 303 See Other to `GET /oauth2/authorize` with the same parameters."),
        new("POST", "/oauth2/token", "Token endpoint (RFC 6749 §3.2): authorization_code, refresh_token, client_credentials", ApiAuth.Client, 200, TokenExample,
            [.. OAuthClient, OAuth.InvalidGrant, OAuth.UnauthorizedClient, OAuth.UnsupportedGrantType, OAuth.InvalidScope, OAuth.InvalidTarget],
            "grant_type=client_credentials&scope=read", Form, ErrorFormat.OAuth),
        new("POST", "/nexus/oauth2/token", "Token endpoint (Nexus Integration Guide path)", ApiAuth.Client, 200, TokenExample,
            [.. OAuthClient, OAuth.InvalidGrant, OAuth.UnauthorizedClient, OAuth.UnsupportedGrantType, OAuth.InvalidScope, OAuth.InvalidTarget],
            "grant_type=client_credentials&scope=read", Form, ErrorFormat.OAuth),
        new("POST", "/api/v1/oauth/exchange", "Code exchange of the Nexus Integration Guide (parameters in the query or form)", ApiAuth.Client, 200,
            """{"access_token":"eyJhbGciOiJSUzI1NiJ9...","token_type":"Bearer","expires_in":28800,"state":"xyz"}""",
            [.. OAuthClient, OAuth.InvalidGrant, OAuth.UnauthorizedClient, OAuth.InvalidTarget],
            "client_id=app_123&client_secret=...&code=...&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback&expiration=480", Form, ErrorFormat.OAuth),
        new("POST", "/oauth2/introspect", "Token introspection (RFC 7662)", ApiAuth.Client, 200,
            """{"active":true,"client_id":"app_123","scope":"read","sub":"usr_1","exp":1767225600,"token_type":"Bearer"}""",
            OAuthClient, "token=eyJhbGciOi...&token_type_hint=access_token", Form, ErrorFormat.OAuth),
        new("POST", "/oauth2/revoke", "Token revocation (RFC 7009)", ApiAuth.Client, 200, null,
            OAuthClient, "token=nxr_...&token_type_hint=refresh_token", Form, ErrorFormat.OAuth),
        new("POST", "/oauth2/register", "Dynamic client registration (RFC 7591)", ApiAuth.None, 201,
            """{"client_id":"dyn_123","client_id_issued_at":1767225600,"client_name":"My MCP client","redirect_uris":["http://127.0.0.1:33418/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}""",
            [OAuth.InvalidClientMetadata, OAuth.InvalidRedirectUri, OAuth.InvalidRequest, OAuth.InvalidToken, OAuth.AccessDenied, new(429, OAuth.TemporarilyUnavailable.Error),
                OAuth.TemporarilyUnavailable],
            """{"client_name":"My MCP client","redirect_uris":["http://127.0.0.1:33418/callback"],"token_endpoint_auth_method":"none"}""", Format: ErrorFormat.OAuth),
        new("GET", "/oauth2/userinfo", "UserInfo (OpenID Connect Core §5.3)", ApiAuth.Bearer, 200,
            """{"sub":"usr_1","email":"ada@example.com","email_verified":true,"name":"Ada"}""",
            [Problem.InvalidToken, Problem.Unauthorized, Problem.InsufficientScope, Unavailable]),
        new("POST", "/oauth2/userinfo", "UserInfo (OpenID Connect Core §5.3), POST form", ApiAuth.Bearer, 200,
            """{"sub":"usr_1","email":"ada@example.com","email_verified":true,"name":"Ada"}""",
            [Problem.InvalidToken, Problem.Unauthorized, Problem.InsufficientScope, Unavailable]),
        new("GET", "/api/v1/me", "The caller's identity from its access token (Nexus Integration Guide)", ApiAuth.Bearer, 200, typeof(MeResponse),
            [Problem.InvalidToken, Problem.Unauthorized, Unavailable]),
        new("GET", "/oauth2/logout", "RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)", ApiAuth.None, 302, null,
            [OAuth.InvalidRequest], Format: ErrorFormat.Browser,
            Description: "Without an `id_token_hint` for the signed-in person Nexus asks first. An application may also POST the same form (RP-Initiated Logout §2): it is answered 303 See Other to this GET with the same parameters."),
        // The 400s are problem bodies, answered only where there is no verified state (so no trustworthy return_url) or the
        // request is malformed. Everything else that goes wrong (the provider's refusal, issuer_mismatch, a failed code
        // exchange, provider_missing, a connection deleted meanwhile: not_found, a newer consent begun meanwhile: superseded)
        // is the `error` of the 302 to return_url.
        new("GET", "/auth/callback", "The providers' redirect back to Nexus at the end of a connection's consent", ApiAuth.None, 302, null,
            [new(400, Problem.InvalidCallback.Code, Problem.InvalidState.Code, Problem.StateAlreadyUsed.Code, Problem.InvalidInput.Code)],
            Description: "Called by the provider, not by API clients: a signed single-use `state` identifies the connection; Nexus then redirects to the connection's return_url with `connection_id`, `status` "
                + "and, when the consent did not succeed, `error`: the provider's own (`access_denied`, …), `issuer_mismatch`, `invalid_callback`, `provider_missing`, `token_request_failed` or the token endpoint's error, "
                + "`connection_config_unavailable`, `expired`, or `not_found` for a connection deleted during the code exchange (`status=failed&error=not_found`; the tokens just issued for it are revoked at the provider), "
                + "or `superseded` when a newer consent for the connection (a reconnect) began during it: nothing of this one is stored (its tokens are revoked at the provider), `status` is the connection's as it is now, and the newer consent's link is the one to complete. "
                + "A 400 is answered, and nothing redirected, only when the state does not verify or was already used, or a parameter is repeated or not acceptable."),

        // The gateway.
        new("POST", "/v1/request-connection", "Start a connection: returns the provider consent URL", ApiAuth.GatewayKey, 201, typeof(RequestConnectionResponse),
            [.. GatewayBody, Problem.ReturnUrlNotAllowed, Problem.UnknownProvider, Problem.WorkspaceNotAllowed, Problem.TokenRequestFailed], typeof(RequestConnectionRequest),
            Description: "For a machine-to-machine MCP server (an `mcp_oauth2` provider registered with `grant_type: \"client_credentials\"`) there is no consent: the answer has `status: \"active\"` and no `auth_url`, or 502 `token_request_failed` with the `connection_id` of the failed connection."),
        new("GET", "/v1/connections", "List connections of a workspace", ApiAuth.GatewayKey, 200, new ListOf("connections", typeof(ConnectionResponse)),
            [.. Gateway, Problem.ValidationFailed, Problem.NotFound]),
        new("GET", "/v1/connections/{connectionId}", "A connection", ApiAuth.GatewayKey, 200, typeof(ConnectionResponse), [.. Gateway, NotFound]),
        new("DELETE", "/v1/connections/{connectionId}", "Revoke a connection (and its tokens at the provider where supported)", ApiAuth.GatewayKey, 204, null, [.. Gateway, NotFound]),
        new("POST", "/v1/connections/{connectionId}/reconnect", "A new consent for the same connection id (optional scopes, return_url); the old tokens keep working until it completes", ApiAuth.GatewayKey, 200,
            """{"auth_url":"https://accounts.example.com/authorize?response_type=code&client_id=...&state=...","connection_id":"conn_01J..."}""",
            [.. GatewayBody, NotFound, Problem.ReturnUrlNotAllowed, Problem.ProviderMissing, Problem.NotAnOAuthConnection, Problem.TokenRequestFailed],
            """{"scopes":["openid","email"],"return_url":"https://app.example.com/oauth/return"}""",
            Description: "For a machine-to-machine MCP server (an `mcp_oauth2` provider registered with `grant_type: \"client_credentials\"`) nobody consents: Nexus asks for a new token at once, and the answer is `{\"connection_id\", \"status\": \"active\"}` without `auth_url`, or 502 `token_request_failed` with `connection_id` and `connection_status` (an active connection keeps its token; any other is failed with the authorization server's error)."),
        new("POST", "/v1/connections/{connectionId}/credentials", "Submit the API key or credentials of a credential-based connection", ApiAuth.GatewayKey, 200, typeof(ConnectionResponse),
            [.. GatewayBody, NotFound, Problem.NotACredentialConnection, Problem.ConnectionFailed, Problem.CredentialsUnusable, Problem.CredentialsRejected],
            """{"api_key":"sk-live-..."}"""),
        new("GET", "/v1/token/{connectionId}", "Read a connection's current credentials (refreshed first when near expiry); ?resource=NAME: a token for one of the provider's further resources (Entra ID)", ApiAuth.GatewayKey, 200,
            """{"access_token":"gho_...","token_type":"Bearer","expires_at":1767229200,"scopes":["repo"]}""",
            [.. Gateway, Problem.UnknownResource, Problem.CredentialsNotReadable, NotFound,
                Problem.ConnectionNotActive, Problem.ProviderMissing, Problem.ResourceUnavailable, Problem.ResourceNotGranted, Problem.RefreshUnavailable,
                // An aws_sigv4 connection with a role: its stored keys cannot be used, or AWS STS refused or throttled AssumeRole.
                Problem.CredentialsUnusable, Problem.AwsAssumeRoleFailed, Problem.AwsStsThrottled]),
        new("POST", "/v1/refresh/{connectionId}", "Refresh a connection's tokens now", ApiAuth.GatewayKey, 200, typeof(ConnectionResponse),
            [.. Gateway, NotFound, Problem.ConnectionNotActive, Problem.RefreshNotSupported, Problem.RefreshUnavailable]),

        // The admin API.
        new("GET", "/v1/admin/api-keys", "List gateway API keys", ApiAuth.AdminKey, 200, new ListOf("api_keys", typeof(ApiKeyResponse)), Admin),
        new("POST", "/v1/admin/api-keys", "Create a gateway API key (the key is shown once)", ApiAuth.AdminKey, 201, typeof(ApiKeyResponse), AdminBody, typeof(ApiKeyRequest)),
        new("GET", "/v1/admin/api-keys/{id}", "A gateway API key", ApiAuth.AdminKey, 200, typeof(ApiKeyResponse), [.. Admin, NotFound]),
        new("DELETE", "/v1/admin/api-keys/{id}", "Revoke a gateway API key", ApiAuth.AdminKey, 204, null, [.. Admin, NotFound]),
        new("GET", "/v1/admin/applications", "List OAuth applications (authorization code clients)", ApiAuth.AdminKey, 200, new ListOf("applications", typeof(ApplicationResponse)), Admin),
        new("POST", "/v1/admin/applications", "Register an OAuth application (a confidential one's secret is shown once)", ApiAuth.AdminKey, 201, typeof(ApplicationResponse), AdminBody, typeof(ApplicationRequest)),
        new("GET", "/v1/admin/applications/{clientId}", "An OAuth application", ApiAuth.AdminKey, 200, typeof(ApplicationResponse), [.. Admin, NotFound]),
        new("PATCH", "/v1/admin/applications/{clientId}", "Change an OAuth application", ApiAuth.AdminKey, 200, typeof(ApplicationResponse),
            [.. AdminBody, NotFound, Problem.ClientRevoked], typeof(ApplicationRequest)),
        new("DELETE", "/v1/admin/applications/{clientId}", "Delete an OAuth application (its tokens stop working)", ApiAuth.AdminKey, 204, null, [.. Admin, NotFound]),
        new("POST", "/v1/admin/applications/{clientId}/secret", "Rotate an OAuth application's client secret", ApiAuth.AdminKey, 200, typeof(AppClientSecretResponse),
            [.. Admin, NotFound, Problem.PublicClient, Problem.ClientRevoked]),
        new("GET", "/v1/admin/audit", "The audit log", ApiAuth.AdminKey, 200,
            """{"events":[{"id":"01J...","event":"connection.created","connection_id":"conn_1","workspace_id":"ws_1","at":1767225600}]}""",
            [.. Admin, Problem.ValidationFailed]),
        new("GET", "/v1/admin/clients", "List App Clients (client credentials)", ApiAuth.AdminKey, 200, new ListOf("clients", typeof(AppClientResponse)), Admin),
        new("POST", "/v1/admin/clients", "Create an App Client (its secret is shown once)", ApiAuth.AdminKey, 201, typeof(AppClientResponse), AdminBody, typeof(AppClientRequest)),
        new("GET", "/v1/admin/clients/{clientId}", "An App Client", ApiAuth.AdminKey, 200, typeof(AppClientResponse), [.. Admin, NotFound]),
        new("PATCH", "/v1/admin/clients/{clientId}", "Change an App Client", ApiAuth.AdminKey, 200, typeof(AppClientResponse),
            [.. AdminBody, NotFound, Problem.ClientRevoked], typeof(AppClientRequest)),
        new("DELETE", "/v1/admin/clients/{clientId}", "Revoke an App Client", ApiAuth.AdminKey, 204, null, [.. Admin, NotFound]),
        new("POST", "/v1/admin/clients/{clientId}/secret", "Rotate an App Client's secret", ApiAuth.AdminKey, 200, typeof(AppClientSecretResponse),
            [.. Admin, NotFound, Problem.ClientRevoked]),
        new("GET", "/v1/admin/settings", "Deployment settings", ApiAuth.AdminKey, 200, """{"sign_up_enabled":true}""", Admin),
        new("PATCH", "/v1/admin/settings", "Change deployment settings", ApiAuth.AdminKey, 200, """{"sign_up_enabled":false}""", AdminBody, typeof(SettingsRequest)),
        new("GET", "/v1/admin/signing-keys", "The token signing keys (public parts and status)", ApiAuth.AdminKey, 200, new ListOf("keys", typeof(SigningKeyResponse)), Admin),
        new("POST", "/v1/admin/signing-keys/rotate", "Rotate the token signing key (the old one keeps verifying)", ApiAuth.AdminKey, 200, new ListOf("keys", typeof(SigningKeyResponse)), Admin),
        new("GET", "/v1/admin/users", "List user accounts", ApiAuth.AdminKey, 200, new ListOf("users", typeof(UserResponse)), Admin),
        new("POST", "/v1/admin/users", "Create a user account", ApiAuth.AdminKey, 201, typeof(UserResponse), [.. AdminBody, Problem.UserExists], typeof(CreateUserRequest)),
        new("POST", "/v1/admin/users/{id}/admin", "Make a user a system administrator", ApiAuth.AdminKey, 200, typeof(UserResponse), [.. Admin, NotFound]),
        new("DELETE", "/v1/admin/users/{id}/admin", "Take the system administrator role from a user", ApiAuth.AdminKey, 200, typeof(UserResponse), [.. Admin, NotFound]),
        new("POST", "/v1/admin/users/{id}/disable", "Disable an account: no sign-in, its sessions end, every OAuth grant it gave is revoked", ApiAuth.AdminKey, 200, typeof(UserResponse), [.. Admin, NotFound],
            Description: "As Site management › Users and `users disable`. Enabling the account again restores no grant: its applications need a new authorization."),
        new("POST", "/v1/admin/users/{id}/enable", "Enable a disabled account, or lift a sign-in lockout", ApiAuth.AdminKey, 200, typeof(UserResponse), [.. Admin, NotFound]),
        new("POST", "/v1/admin/users/{id}/reset-password", "Replace the password with a temporary one, shown once; ends the sessions and revokes the account's OAuth grants", ApiAuth.AdminKey, 200,
            typeof(PasswordResetResponse), [.. Admin, NotFound, Problem.PasswordResetFailed],
            Description: "The answer carries `temporary_password` (Nexus keeps only its hash; `Cache-Control: no-store`). Its owner signs in with it and must choose their own password before anything else."),
        new("GET", "/v1/admin/webhooks", "List webhooks", ApiAuth.AdminKey, 200, new ListOf("webhooks", typeof(WebhookResponse)), Admin),
        new("POST", "/v1/admin/webhooks", "Create a webhook (its signing secret is shown once)", ApiAuth.AdminKey, 201, typeof(WebhookResponse), AdminBody, typeof(WebhookRequest)),
        new("PATCH", "/v1/admin/webhooks/{id}", "Change a webhook's URL or events, or pause or resume it", ApiAuth.AdminKey, 200, typeof(WebhookResponse), [.. AdminBody, NotFound], typeof(WebhookUpdate),
            Description: "Absent members are kept. `\"disabled\": true` pauses it (`disabled_at` keeps when it was first paused): events are not queued for it meanwhile, deliveries already queued wait with their retry schedules untouched, and a test or a resend is `webhook_paused`; `false` resumes it and the deliveries that waited go out. As Site management › Webhooks and `webhooks pause|resume`."),
        new("POST", "/v1/admin/webhooks/{id}/secret", "Give a webhook a new signing secret (shown once); the replaced one goes on signing for overlap_seconds", ApiAuth.AdminKey, 200, typeof(WebhookResponse),
            [.. AdminBody, NotFound], typeof(WebhookSecretRotation),
            Description: "The body is optional: `overlap_seconds` 0 to 604800 (default 86400, a day). Until `previous_secret_expires_at` each delivery's `webhook-signature` carries one signature per secret, space-separated (Standard Webhooks), so the receiver can switch secrets without missing a delivery; 0 stops the replaced secret at once (a leaked one). A second rotation within the overlap ends the first's. As `webhooks rotate-secret`."),
        new("DELETE", "/v1/admin/webhooks/{id}", "Delete a webhook", ApiAuth.AdminKey, 204, null, [.. Admin, NotFound]),
        new("GET", "/v1/admin/webhooks/{id}/deliveries", "A webhook's recent deliveries", ApiAuth.AdminKey, 200,
            """{"deliveries":[{"id":"msg_1","event":"connection.active","status":"delivered","attempts":1,"last_status_code":200,"created_at":1767225600,"delivered_at":1767225601}]}""",
            [.. Admin, NotFound]),
        new("POST", "/v1/admin/webhooks/{id}/test", "Send a test event to this webhook (to no other)", ApiAuth.AdminKey, 202, null, [.. Admin, NotFound, Problem.WebhookPaused]),
        new("POST", "/v1/admin/webhooks/{id}/deliveries/{deliveryId}/retry", "Send a delivery again: a failed one with a new retry schedule (its attempts keep counting), a pending one now", ApiAuth.AdminKey, 202,
            typeof(WebhookDeliveryResponse), [.. Admin, NotFound, Problem.DeliveryDelivered, Problem.WebhookPaused]),
        new("GET", "/v1/providers", "List providers", ApiAuth.AdminKey, 200, new ListOf("providers", typeof(ProviderResponse)), Admin),
        new("POST", "/v1/providers", "Register a provider (from the catalog or custom)", ApiAuth.AdminKey, 201, typeof(ProviderResponse),
            [.. AdminBody, Problem.ProviderExists, Problem.DiscoveryFailed], typeof(ProviderRequest)),
        new("GET", "/v1/providers/{name}", "A provider (its client secret is never returned)", ApiAuth.AdminKey, 200, typeof(ProviderResponse), [.. Admin, NotFound]),
        new("PATCH", "/v1/providers/{name}", "Change a provider", ApiAuth.AdminKey, 200, typeof(ProviderResponse),
            [.. AdminBody, NotFound, Problem.DiscoveryFailed], typeof(ProviderRequest)),
        new("DELETE", "/v1/providers/{name}", "Delete a provider no connection uses", ApiAuth.AdminKey, 204, null, [.. Admin, NotFound, Problem.ProviderInUse]),

    ];

    /// <summary>
    /// Routes the generator cannot see: the Bridge's accept every method (the generator wants one operation per
    /// method), and the MCP SDK maps a plain request delegate. The document transformer adds them from here
    /// (method "*": GET, POST, PUT, PATCH and DELETE).
    /// </summary>
    public static readonly ApiOperation[] ManualOperations =
    [
        // The MCP server.
        new("POST", "/mcp", "MCP Streamable HTTP endpoint (JSON-RPC 2.0; tools for connections and credentials)", ApiAuth.Bearer, 200,
            """{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"list_connections"}]}}""",
            [Problem.Unauthorized, Problem.InvalidToken, Problem.InsufficientScope, Problem.OriginNotAllowed, InvalidInput, Unavailable],
            """{"jsonrpc":"2.0","id":1,"method":"tools/list"}""",
            Description: "A Bearer access token for the MCP resource (RFC 8707 audience); a request without one gets 401 with `WWW-Authenticate: Bearer resource_metadata=…` (RFC 9728 §5.1)."),

        new("*", "/v1/bridge/{connectionId}/{path}", "Call the provider's API through Nexus with the connection's credentials", ApiAuth.GatewayKey, 200, null, BridgeErrors(),
            Description: "Any method. The request (path, query, body, headers except credentials) goes to the provider's API base URL with the connection's credential applied (Bearer token, API key, Basic or AWS SigV4); the provider's answer comes back unchanged. Errors before forwarding are problem details."),
        new("*", "/v1/bridge/{connectionId}", "Call the provider's API base URL through Nexus", ApiAuth.GatewayKey, 200, null, BridgeErrors()),
        new("*", "/v1/proxy/{path}", "The Bridge with a fixed base URL: the connection in the Nexus-Connection-Id header", ApiAuth.GatewayKey, 200, null,
            [.. BridgeErrors(), Problem.ConnectionIdMissing]),
    ];

    private static ApiError[] BridgeErrors() =>
        // 403: an MCP server's insufficient_scope, answered with a step-up consent (RemoteMcp.McpStepUp), or the
        // operation's round limit, or (a machine-to-machine server) the scope its machine client may not have; 502 when
        // that server's authorization server issued no token for another reason.
        [.. Gateway, Problem.BridgePathRefused, Problem.BadRequest, Problem.InsufficientScope, Problem.StepUpLimit, Problem.ScopeNotAllowed, Problem.TokenRequestFailed, NotFound, Problem.BridgeMethodRefused,
            Problem.ConnectionNotActive, Problem.NoApiBaseUrl, Problem.CredentialsUnusable, Problem.ProviderMissing, Problem.StepUpBusy, Problem.StepUpSendAgain, Problem.BridgeBodyTooLarge,
            Problem.UpstreamUnreachable, Problem.RedirectRefused, Problem.AwsAssumeRoleFailed, Problem.RefreshUnavailable, Problem.AwsStsThrottled,
            Problem.UpstreamTimeout];

    private static readonly Dictionary<string, ApiOperation> ByKey = Operations.Concat(ManualOperations).ToDictionary(o => o.Key);

    public static string Key(string method, string pattern) => $"{method.ToUpperInvariant()} /{pattern.Trim('/')}";

    public static ApiOperation? Find(string method, string pattern) => ByKey.GetValueOrDefault(Key(method, pattern));
}
