namespace Nexus.Server.Hosting;

/// <summary>
/// One RFC 9457 problem type: its stable <c>code</c> (the <c>type</c> is <c>urn:nexus:problem:&lt;code&gt;</c>), the
/// HTTP status it is answered with and its default title. A call site may give a more precise title (the resource
/// that was not found, the reason a client is refused); the code and the status are the contract.
/// </summary>
internal sealed record ProblemType(string Code, int Status, string Title);

/// <summary>
/// Every problem <c>code</c> Nexus answers with, in one place (issue 13, item 4). Handlers build problems through
/// <see cref="Problems.Create(ProblemType, string?, IDictionary{string, object?}?, string?, int?)"/> with an entry of
/// this table, never with a literal; the API reference (ApiReference/ApiCatalog.cs) lists them per route from here, and
/// docs/errors.md is generated from <see cref="All"/> (tests/Nexus.Server.Tests/Hosting/ErrorCatalogTests.cs keeps both
/// honest).
/// </summary>
internal static class ProblemCatalog
{
    // Any endpoint: the request itself.
    public static readonly ProblemType ValidationFailed = new("validation_failed", 400, "The request has invalid fields.");
    public static readonly ProblemType BadRequest = new("bad_request", 400, "The request could not be read.");
    public static readonly ProblemType InvalidJson = new("invalid_json", 400, "The request body is not valid JSON for this endpoint.");
    public static readonly ProblemType InvalidInput = new("invalid_input", 400, "The request contains characters Nexus does not accept.");
    public static readonly ProblemType UnsupportedMediaType = new("unsupported_media_type", 415, "The request body must be JSON.");
    public static readonly ProblemType NotFound = new("not_found", 404, "The resource was not found.");

    // Any endpoint: Nexus itself.
    public static readonly ProblemType InternalError = new("internal_error", 500, "Nexus hit an unexpected error.");
    public static readonly ProblemType DatabaseUnavailable = new("database_unavailable", 503, "The database is temporarily unavailable.");

    // Authentication and authorization (API keys, Bearer tokens, origins).
    public static readonly ProblemType Unauthorized = new("unauthorized", 401, "A valid API key is required.");
    public static readonly ProblemType AdminApiDisabled = new("admin_api_disabled", 401, "The admin API is disabled.");
    public static readonly ProblemType InvalidToken = new("invalid_token", 401, "The access token is missing or not acceptable.");
    public static readonly ProblemType InsufficientScope = new("insufficient_scope", 403, "The access token lacks a scope this tool needs.");
    public static readonly ProblemType OriginNotAllowed = new("origin_not_allowed", 403, "This origin may not use the MCP endpoint.");
    public static readonly ProblemType WorkspaceNotAllowed = new("workspace_not_allowed", 403, "This API key may not act for that workspace.");
    public static readonly ProblemType CredentialsNotReadable = new("credentials_not_readable", 403, "This API key may not read credentials.");
    public static readonly ProblemType StepUpLimit = new("step_up_limit", 403, "The MCP server still asks for more scopes.");
    public static readonly ProblemType ScopeNotAllowed = new("scope_not_allowed", 403, "The machine client is not allowed the scope the MCP server asks for.");

    // The admin API.
    public static readonly ProblemType ClientRevoked = new("client_revoked", 409, "A revoked App Client cannot be changed.");
    public static readonly ProblemType PublicClient = new("public_client", 409, "Public applications have no secret.");
    public static readonly ProblemType UserExists = new("user_exists", 409, "An account with this email already exists.");
    public static readonly ProblemType PasswordResetFailed = new("password_reset_failed", 409, "The account changed while its password was being reset; reset it again.");
    public static readonly ProblemType ProviderExists = new("provider_exists", 409, "A provider with this name already exists.");
    public static readonly ProblemType ProviderInUse = new("provider_in_use", 409, "Connections still use this provider.");
    public static readonly ProblemType DeliveryDelivered = new("delivery_delivered", 409, "This webhook delivery was delivered; it is not sent twice.");
    public static readonly ProblemType WebhookPaused = new("webhook_paused", 409, "This webhook is paused; nothing is sent to it until it is resumed.");
    public static readonly ProblemType DiscoveryFailed = new("discovery_failed", 502, "OpenID Connect discovery failed.");
    public static readonly ProblemType McpDiscoveryFailed = new("mcp_discovery_failed", 502, "The MCP server could not be connected.");

    // Connections (the gateway).
    public static readonly ProblemType ReturnUrlNotAllowed = new("return_url_not_allowed", 400, "The return_url is not allowed.");
    public static readonly ProblemType UnknownProvider = new("unknown_provider", 400, "There is no provider with this name.");
    public static readonly ProblemType ConnectionNotActive = new("connection_not_active", 409, "The connection is not active.");
    public static readonly ProblemType ProviderMissing = new("provider_missing", 409, "The connection's provider is no longer registered.");
    public static readonly ProblemType StepUpBusy = new("step_up_busy", 409, "Another step-up of this connection is starting.");
    public static readonly ProblemType NotAnOAuthConnection = new("not_an_oauth_connection", 409, "This connection's provider takes credentials, not a consent.");
    public static readonly ProblemType NotACredentialConnection = new("not_a_credential_connection", 409, "This connection's provider uses OAuth; its tokens come from the consent flow.");
    public static readonly ProblemType ConnectionFailed = new("connection_failed", 409, "This connection failed; request a new one.");
    public static readonly ProblemType CredentialsUnusable = new("credentials_unusable", 409, "The connection's stored credentials cannot be used with its provider's settings.");
    public static readonly ProblemType CredentialsRejected = new("credentials_rejected", 422, "The provider did not accept these credentials.");
    public static readonly ProblemType RefreshNotSupported = new("refresh_not_supported", 409, "This connection cannot be refreshed.");
    public static readonly ProblemType TokenRequestFailed = new("token_request_failed", 502, "The MCP server's authorization server refused the client credentials.");
    public static readonly ProblemType UnknownResource = new("unknown_resource", 400, "The provider has no such resource.");
    public static readonly ProblemType ResourceUnavailable = new("resource_unavailable", 409, "This connection cannot obtain a token for the resource.");
    public static readonly ProblemType ResourceNotGranted = new("resource_not_granted", 409, "The provider refused a token for this resource.");
    public static readonly ProblemType RefreshUnavailable = new("refresh_unavailable", 503, "The access token has expired and the provider could not renew it yet.");

    // The providers' redirect back to Nexus (/auth/callback).
    public static readonly ProblemType InvalidCallback = new("invalid_callback", 400, "This connection callback cannot be accepted.");
    public static readonly ProblemType InvalidState = new("invalid_state", 400, "This connection callback cannot be accepted.");
    public static readonly ProblemType StateAlreadyUsed = new("state_already_used", 400, "This connection callback cannot be accepted.");
    public static readonly ProblemType ConsentForAnotherAccount = new("consent_for_another_account", 403, "This connection belongs to another Nexus account.");
    public static readonly ProblemType ConsentSignInRequired = new("consent_sign_in_required", 403, "Sign in to Nexus as the person who started this connection, then start again.");

    // The Bridge and AWS role credentials.
    public static readonly ProblemType ConnectionIdMissing = new("connection_id_missing", 400, "Which connection?");
    public static readonly ProblemType BridgePathRefused = new("bridge_path_refused", 400, "The Bridge refused this path.");
    public static readonly ProblemType BridgeMethodRefused = new("bridge_method_refused", 405, "The Bridge does not forward this method.");
    public static readonly ProblemType BridgeBodyTooLarge = new("bridge_body_too_large", 413, "The request body is larger than the Bridge forwards.");
    // 409 like step_up_busy, which answered this case before and whose clients already send the request again on it.
    public static readonly ProblemType StepUpSendAgain = new("step_up_send_again", 409, "The connection was given the wider scopes; send the request again.");
    public static readonly ProblemType NoApiBaseUrl = new("no_api_base_url", 409, "The provider has no usable API base URL for the Bridge.");
    public static readonly ProblemType UpstreamUnreachable = new("upstream_unreachable", 502, "The provider could not be reached.");
    public static readonly ProblemType RedirectRefused = new("redirect_refused", 502, "The provider redirected to another host (or named no single valid location); the Bridge does not follow it.");
    public static readonly ProblemType UpstreamTimeout = new("upstream_timeout", 504, "The provider did not answer in time.");
    public static readonly ProblemType AwsAssumeRoleFailed = new("aws_assume_role_failed", 502, "AWS STS did not issue credentials for the role.");
    public static readonly ProblemType AwsStsThrottled = new("aws_sts_throttled", 503, "AWS STS is throttling AssumeRole calls.");

    /// <summary>Every entry, in the order above (docs/errors.md lists them so).</summary>
    public static readonly IReadOnlyList<ProblemType> All = typeof(ProblemCatalog).GetFields()
        .Where(f => f.FieldType == typeof(ProblemType)).Select(f => (ProblemType)f.GetValue(null)!).ToList();
}
