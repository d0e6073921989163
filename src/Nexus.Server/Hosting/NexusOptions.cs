using System.ComponentModel.DataAnnotations;

namespace Nexus.Server.Hosting;

/// <summary>
/// Deployment settings. Every property can come from appsettings.json (section "Nexus"), from
/// <c>Nexus__Property</c> environment variables, or, for the names the product documents use, from the
/// plain variables BASE_URL, API_KEY, SUPERUSER_EMAIL, SETUP_TOKEN, DATABASE_URL, ENCRYPTION_KEY,
/// PREVIOUS_ENCRYPTION_KEYS and ALLOWED_RETURN_URLS (marked [PlainVariable]).
/// </summary>
internal sealed class NexusOptions
{
    public const string Section = "Nexus";

    /// <summary>Public URL of this deployment; the token issuer and the base of every link Nexus hands out.</summary>
    [PlainVariable("BASE_URL")]
    [SettingRule("an absolute http(s) URL without query or fragment")]
    public string BaseUrl { get; set; } = "http://localhost:8090";

    /// <summary>Folder for the embedded SQLite database and the development encryption key.</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>Bootstrap key for the admin API (sent as X-API-Key). Unset disables the admin API.</summary>
    [PlainVariable("API_KEY")]
    [SettingRule("at least 16 characters")]
    public string? ApiKey { get; set; }

    /// <summary>
    /// Optional: the only account allowed to use the setup token at /setup. It grants nothing by itself; the
    /// administrator is whoever the operator makes one (setup token, API_KEY, or <c>users promote</c>).
    /// </summary>
    [PlainVariable("SUPERUSER_EMAIL")]
    public string? SuperuserEmail { get; set; }

    /// <summary>
    /// Optional one-time token for /setup while no administrator exists (at least 16 characters). Unset: Nexus
    /// generates one at start and writes it to standard output.
    /// </summary>
    [PlainVariable("SETUP_TOKEN")]
    [SettingRule("at least 16 characters")]
    public string? SetupToken { get; set; }

    /// <summary>How long an instance may trust its cached copy of an account's session stamp and role.</summary>
    [Range(0, 60)]
    public int SessionCheckSeconds { get; set; } = 5;

    /// <summary>
    /// How long a dashboard session lasts at most after its sign-in, however often it is used (its cookie otherwise
    /// slides 12 hours past each use); then the person signs in again (OWASP ASVS 3.3: an absolute timeout).
    /// </summary>
    [Range(1, 8_760)]
    public int SessionMaxHours { get; set; } = 720;

    /// <summary>Failed sign-ins allowed per source address within the window, across all accounts.</summary>
    public int FailedSignInLimit { get; set; } = 20;

    /// <summary>The window of <see cref="FailedSignInLimit"/>. Each account also locks for 15 minutes after 5 failures.</summary>
    public int FailedSignInWindowSeconds { get; set; } = 900;

    /// <summary>PostgreSQL URL (postgres://user:pass@host:port/db) or Npgsql connection string; unset means SQLite. Nexus adds Max Auto Prepare=64 and No Reset On Close=true unless they are set (docs/deployment.md).</summary>
    [PlainVariable("DATABASE_URL")]
    [SettingRule("postgres://user:password@host:5432/database or an Npgsql connection string (Host=…;Database=…)")]
    public string? DatabaseUrl { get; set; }

    /// <summary>Active AES-256 key: 32 random bytes in base64 (<c>openssl rand -base64 32</c>).</summary>
    [PlainVariable("ENCRYPTION_KEY")]
    [SettingRule("32 bytes in base64; required in Production")]
    public string? EncryptionKey { get; set; }

    /// <summary>Comma-separated older keys that can still decrypt until <c>keys reencrypt</c> has run.</summary>
    [PlainVariable("PREVIOUS_ENCRYPTION_KEYS")]
    [SettingRule("comma-separated, each 32 bytes in base64")]
    public string? PreviousEncryptionKeys { get; set; }

    /// <summary>The <c>aud</c> of access tokens Nexus issues for its own API. Defaults to <see cref="BaseUrl"/>.</summary>
    [SettingRule("not BASE_URL/mcp (the MCP server's resource)")]
    public string? AccessTokenAudience { get; set; }

    /// <summary>JWS algorithm for access tokens: ES256 (fast, default) or RS256.</summary>
    [AllowedValues("ES256", "RS256")]
    public string AccessTokenSigningAlgorithm { get; set; } = "ES256";

    /// <summary>
    /// Upper bound for any client's access token lifetime. Lowering it also ends the tokens already issued for longer
    /// (they are refused once this Nexus runs with the lower bound).
    /// </summary>
    [Range(60, 604_800)]
    public int MaxAccessTokenLifetimeSeconds { get; set; } = 86_400;

    /// <summary>
    /// How long a retired signing key stays in the JWKS, counted from when the last instance stopped signing with it
    /// (the rotation plus <see cref="SigningKeyRefreshSeconds"/>, how late another instance reads it). It must outlive
    /// every token it signed, so it may not be shorter than <see cref="MaxAccessTokenLifetimeSeconds"/>.
    /// </summary>
    [SettingRule("at least Nexus__MaxAccessTokenLifetimeSeconds")]
    public int SigningKeyOverlapSeconds { get; set; } = 86_400;

    /// <summary>How often each instance re-reads signing keys, so a rotation on one instance reaches the others.</summary>
    [Range(1, int.MaxValue)]
    public int SigningKeyRefreshSeconds { get; set; } = 30;

    /// <summary>How long a client record is cached in memory; bounds how late another instance sees a changed secret, scope or lifetime. A deleted client is refused sooner, as soon as the revocation list has read the deletion (2 × Nexus__Revocation__PollSeconds at worst, at once on PostgreSQL; with PollSeconds 0, at once: the client is then read from the database).</summary>
    [Range(0, int.MaxValue)]
    public int ClientCacheSeconds { get; set; } = 5;

    /// <summary>Failed client authentications allowed per client and address within the window.</summary>
    [Range(1, int.MaxValue)]
    public int FailedClientAuthenticationLimit { get; set; } = 10;

    /// <summary>The window of <see cref="FailedClientAuthenticationLimit"/>.</summary>
    [Range(1, int.MaxValue)]
    public int FailedClientAuthenticationWindowSeconds { get; set; } = 60;

    /// <summary>
    /// What an App Client gets for a grant type the server implements but the client may not use. "seed" (default)
    /// answers 501 unsupported_grant_type as the Nexus Authentication document specifies; "rfc" answers 400
    /// unauthorized_client as RFC 6749 §5.2 specifies. OAuth applications always get unauthorized_client.
    /// </summary>
    [AllowedValues("seed", "rfc")]
    public string UnauthorizedGrantResponse { get; set; } = "seed";

    /// <summary>Lifetime of refresh tokens issued to OAuth applications; every rotation starts a new one.</summary>
    [Range(1, 365)]
    public int RefreshTokenLifetimeDays { get; set; } = 30;

    /// <summary>Cap for the "expiration" (minutes) the documented /api/v1/oauth/exchange route accepts.</summary>
    [Range(1, 10_080)]
    public int MaxExchangeExpirationMinutes { get; set; } = 1440;

    /// <summary>Optional sign-in through an upstream OpenID Connect provider (Okta, Entra ID, …).</summary>
    public UpstreamOidcOptions Upstream { get; set; } = new();

    /// <summary>The Bridge proxy.</summary>
    public BridgeOptions Bridge { get; set; } = new();

    /// <summary>The refresh engine: when provider tokens are refreshed, and how failures are retried.</summary>
    public RefreshOptions Refresh { get; set; } = new();

    /// <summary>How this instance learns of revocations made by other instances (AuthorizationServer/Grants/RevocationList).</summary>
    public RevocationOptions Revocation { get; set; } = new();

    /// <summary>What is removed from the database once it is no longer needed (Data/Retention), and when.</summary>
    public RetentionOptions Retention { get; set; } = new();

    /// <summary>
    /// Comma-separated origins (https://app.example.com) or URL prefixes (https://app.example.com/oauth/) that a
    /// connection's return_url may point to. The BASE_URL origin is always allowed.
    /// </summary>
    [PlainVariable("ALLOWED_RETURN_URLS")]
    [SettingRule("comma-separated absolute http(s) origins or URL prefixes, without query or fragment")]
    public string? AllowedReturnUrls { get; set; }

    /// <summary>
    /// Whether provider endpoints may be plain http on a loopback address (127.0.0.1, localhost, ::1), for tests
    /// and local fakes. Unset means: allowed in the Development and Test environments, refused elsewhere.
    /// Non-loopback endpoints must be https either way.
    /// </summary>
    public bool? AllowInsecureUpstreams { get; set; }

    /// <summary>
    /// Comma-separated CIDR ranges or addresses (10.0.0.0/8, 192.168.1.20, fd00::/8) that outbound calls to
    /// admin-set URLs (providers, discovery, STS, the Bridge, webhooks) may reach although they are private,
    /// link-local or loopback. Unset: only public addresses, plus loopback where <see cref="AllowInsecureUpstreams"/>.
    /// </summary>
    [SettingRule("comma-separated IP addresses or CIDR ranges")]
    public string? AllowedUpstreamNetworks { get; set; }

    /// <summary>
    /// Comma-separated addresses or CIDR ranges of the reverse proxies whose X-Forwarded-For and X-Forwarded-Proto
    /// Nexus believes. Unset: none (forwarded headers are ignored).
    /// </summary>
    [SettingRule("comma-separated IP addresses or CIDR ranges")]
    public string? TrustedProxies { get; set; }

    /// <summary>max-age of the Strict-Transport-Security header sent when BASE_URL is https; 0 sends none.</summary>
    [Range(0, int.MaxValue)]
    public int HstsMaxAgeSeconds { get; set; } = 31_536_000;

    /// <summary>
    /// How long startup waits for the database's first answer before it gives up with one line that names the
    /// database (a PostgreSQL that accepts connections but never answers would otherwise hang startup).
    /// </summary>
    public int StartupDatabaseTimeoutSeconds { get; set; } = 10;

    /// <summary>Timeout of each call to a provider (token exchange, revocation, discovery).</summary>
    [Range(1, 120)]
    public int UpstreamTimeoutSeconds { get; set; } = 10;

    /// <summary>How long a gateway API key is cached; bounds how late another instance sees a revocation.</summary>
    [Range(0, int.MaxValue)]
    public int ApiKeyCacheSeconds { get; set; } = 5;

    /// <summary>
    /// How long a connection row (ciphertext only) is cached for GET /v1/token, the Bridge and the MCP tools; bounds how
    /// late another instance sees a deletion or status change. Changes made on the same instance take effect at once.
    /// A row is kept from its second read within that time on, so a job that reads each connection once fills no cache.
    /// </summary>
    [Range(0, int.MaxValue)]
    public int ConnectionCacheSeconds { get; set; } = 5;

    /// <summary>How long a user has to complete consent: the lifetime of the signed state and of a pending connection.</summary>
    [Range(60, 86_400)]
    public int PendingConnectionSeconds { get; set; } = 600;

    /// <summary>
    /// At most one token_read audit event per connection and API key in this many seconds (the event counts the
    /// reads it stands for); 0 records every read.
    /// </summary>
    [Range(0, int.MaxValue)]
    public int AuditTokenReadIntervalSeconds { get; set; } = 60;

    /// <summary>Self-registration of OAuth clients: dynamic client registration and client ID metadata documents.</summary>
    public ClientRegistrationOptions Registration { get; set; } = new();

    /// <summary>MCP: the server at /mcp (browser origins) and Nexus as the client of remote MCP servers (RemoteMcp: providers registered with auth_mode mcp_oauth2).</summary>
    public McpOptions Mcp { get; set; } = new();

    public string Issuer => BaseUrl.TrimEnd('/');

    /// <summary>
    /// The path of BASE_URL ("/nexus" for https://example.com/nexus; "" at the root): the prefix under which clients
    /// reach Nexus when a reverse proxy publishes it under a path and strips that path before forwarding. Every
    /// absolute URL Nexus hands out starts with <see cref="Issuer"/> and so carries it; a path Nexus hands out for
    /// the caller to resolve (the Bridge's rewritten Location) must carry it too.
    /// </summary>
    public string PublicPathBase => Uri.TryCreate(BaseUrl, UriKind.Absolute, out var uri) ? uri.AbsolutePath.TrimEnd('/') : "";

    public string Audience => string.IsNullOrWhiteSpace(AccessTokenAudience) ? Issuer : AccessTokenAudience;

    /// <summary>Path of the MCP endpoint, relative to BASE_URL.</summary>
    public const string McpPath = "/mcp";

    /// <summary>
    /// The resource identifier of Nexus's MCP server (RFC 8707, RFC 9728): <c>BASE_URL/mcp</c>. Access tokens issued
    /// for it carry it as their <c>aud</c>; /mcp accepts only those, and Nexus's REST API refuses them.
    /// </summary>
    public string McpResource => Issuer + McpPath;
}

/// <summary>How OAuth clients may register themselves (MCP assistants do), with no admin step.</summary>
internal sealed class ClientRegistrationOptions
{
    /// <summary>
    /// Dynamic client registration (RFC 7591) at /oauth2/register: "open" (anyone may register, rate-limited per
    /// address), "token" (an initial access token is required) or "off".
    /// </summary>
    [AllowedValues("open", "token", "off")]
    public string Mode { get; set; } = "open";

    /// <summary>The initial access token (RFC 7591 §3) required when <see cref="Mode"/> is "token"; at least 16 characters.</summary>
    [SettingRule("at least 16 characters; required when Mode is token")]
    public string? InitialAccessToken { get; set; }

    /// <summary>Registrations accepted per client address per hour.</summary>
    [Range(1, 100_000)]
    public int LimitPerHour { get; set; } = 20;

    /// <summary>Whether an https client_id with a path is accepted as a client ID metadata document and fetched.</summary>
    public bool MetadataDocuments { get; set; } = true;

    /// <summary>Largest metadata document Nexus reads.</summary>
    [Range(512, 65_536)]
    public int MaxMetadataDocumentBytes { get; set; } = 5120;

    /// <summary>Time limit of a metadata document fetch.</summary>
    [Range(1, 30)]
    public int MetadataDocumentTimeoutSeconds { get; set; } = 5;

    /// <summary>Upper bound of how long a fetched document is used (its Cache-Control may ask for less).</summary>
    [Range(0, 604_800)]
    public int MaxMetadataDocumentCacheSeconds { get; set; } = 86_400;
}

/// <summary>An upstream OpenID Connect provider people may sign in with; users are matched by verified email.</summary>
internal sealed class UpstreamOidcOptions
{
    /// <summary>The provider's issuer, e.g. https://example.okta.com or https://login.microsoftonline.com/{tenant}/v2.0.</summary>
    [SettingRule("an https URL (loopback http allowed); needs ClientId")]
    public string? Issuer { get; set; }

    /// <summary>The client id Nexus is registered with at the upstream provider (register BASE_URL/account/external/callback there).</summary>
    public string? ClientId { get; set; }

    /// <summary>The client secret of that registration.</summary>
    public string? ClientSecret { get; set; }

    /// <summary>What the sign-in button says: "Sign in with …".</summary>
    public string DisplayName { get; set; } = "your organization";

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Issuer) && !string.IsNullOrWhiteSpace(ClientId);
}

/// <summary>MCP settings (<c>Nexus:Mcp:…</c>, environment <c>Nexus__Mcp__…</c>): the server at /mcp and Nexus as a client of remote MCP servers.</summary>
internal sealed class McpOptions
{
    /// <summary>
    /// Comma-separated exact browser origins (<c>https://assistant.example.com</c>, <c>http://localhost:6274</c>) that may
    /// call /mcp besides BASE_URL's own; requests with any other Origin header are refused with 403 (DNS rebinding).
    /// Pages on these origins also get CORS answers from /mcp. Unset: only BASE_URL's origin.
    /// </summary>
    [SettingRule("comma-separated exact origins scheme://host[:port], no path or wildcard")]
    public string? AllowedOrigins { get; set; }

    /// <summary>
    /// MCP 2025-03-26 back-compatibility: when a server publishes no protected resource metadata, look for authorization
    /// server metadata at the MCP server's origin and fall back to /authorize, /token and /register there. Off by default.
    /// </summary>
    public bool AllowLegacyDiscovery { get; set; }

    /// <summary>
    /// The client ID metadata document URL Nexus presents as its client_id to authorization servers that support such
    /// documents; default BASE_URL/mcp-client-metadata.json (served by Nexus). Set it where the document is published elsewhere.
    /// </summary>
    [SettingRule("an https URL with a path")]
    public string? ClientMetadataDocumentUrl { get; set; }

    /// <summary>Largest metadata document (protected resource, authorization server, registration answer) Nexus reads.</summary>
    [Range(1024, 4 * 1024 * 1024)]
    public int MaxMetadataBytes { get; set; } = 256 * 1024;

    /// <summary>How long one metadata fetch may take.</summary>
    [Range(1, 60)]
    public int MetadataTimeoutSeconds { get; set; } = 10;
}

internal sealed class BridgeOptions
{
    /// <summary>
    /// How long the Bridge waits for a provider's response headers, and then for each next piece of its body. Each wait
    /// gets all of it: after a 401, the token refresh and the retried request's answer; after a step-up, its retry.
    /// </summary>
    [Range(1, 3600)]
    public int TimeoutSeconds { get; set; } = 30;

    /// <summary>Largest request body the Bridge forwards (streamed, never held in memory).</summary>
    [Range(1, long.MaxValue)]
    public long MaxRequestBodyBytes { get; set; } = 512L * 1024 * 1024;
}

/// <summary>
/// Data/Retention: rows that stop being needed are removed, so the database does not grow for ever. Protocol artifacts
/// (codes, refresh tokens, revoked token ids, grants) go a day after nothing could use them; the webhook delivery log
/// and the audit log are kept for as long as set here.
/// </summary>
internal sealed class RetentionOptions
{
    /// <summary>
    /// How often expired authorization codes, refresh tokens, revoked token ids and grants nothing can use any more
    /// (all kept a day past the longest access token's lifetime), and old records below, are removed; 0 never.
    /// </summary>
    [Range(0, 10_080)]
    public int IntervalMinutes { get; set; } = 60;

    /// <summary>Days a finished webhook delivery (delivered, or failed after its last attempt) stays in the delivery log; 0 keeps them all.</summary>
    [Range(0, 36_500)]
    public int WebhookDeliveryDays { get; set; } = 30;

    /// <summary>Days an audit event is kept; 0 (the default) keeps them all.</summary>
    [Range(0, 36_500)]
    public int AuditDays { get; set; }

    /// <summary>
    /// Days a connection that holds no token (still pending, or failed: the window closed, the person or the provider
    /// refused; not a failed one of a machine-to-machine MCP server) is kept after its consent window closed and its last
    /// change; then it is removed (its id answers 404). 0 keeps them all.
    /// </summary>
    [Range(0, 36_500)]
    public int AbandonedConnectionDays { get; set; } = 30;
}

/// <summary>
/// Revocation checks (introspection, userinfo, /api/v1/me, /mcp) answer from memory. A revocation made on this
/// instance takes effect here at once; one made on another instance within PollSeconds (at worst 2 × PollSeconds;
/// on PostgreSQL usually within milliseconds, through LISTEN/NOTIFY).
/// </summary>
internal sealed class RevocationOptions
{
    /// <summary>How often revocations are read from the database; 0 asks the database on every check instead.</summary>
    [Range(0, 300)]
    public int PollSeconds { get; set; } = 1;
}

/// <summary>
/// The refresh engine (Connections/Refresh). Tokens are refreshed on read when they are within the margin of their
/// expiry, and by a background worker shortly before that, so that reads rarely wait for a provider.
/// </summary>
internal sealed class RefreshOptions
{
    /// <summary>
    /// Refresh an access token this long before it expires (a provider registration may override it with
    /// refresh_margin_seconds). Capped at half the token's lifetime, so short-lived tokens are not refreshed on
    /// every read.
    /// </summary>
    [Range(0, 86_400)]
    public int MarginSeconds { get; set; } = 300;

    /// <summary>Whether this instance runs the background refresher (every instance may; they never collide).</summary>
    public bool BackgroundEnabled { get; set; } = true;

    /// <summary>How often the background refresher looks for connections to refresh.</summary>
    [Range(1, 3600)]
    public int IntervalSeconds { get; set; } = 5;

    /// <summary>
    /// Refresh a connection at least this often even when its access token does not expire soon, so that refresh
    /// tokens that expire when unused (Google after six months, Microsoft after 90 days) stay alive. 0 disables it.
    /// </summary>
    [SettingRule("0 (off) or 60 to 31536000")]
    public int KeepAliveSeconds { get; set; } = 86_400;

    /// <summary>How many due connections the background refresher takes per query.</summary>
    [Range(1, 10_000)]
    public int BatchSize { get; set; } = 200;

    /// <summary>How many refreshes one instance's background refresher runs at once.</summary>
    [Range(1, 256)]
    public int Concurrency { get; set; } = 16;

    /// <summary>First delay after a transient failure (network, timeout, 5xx, 429); it doubles with every failure, with jitter.</summary>
    [Range(1, 3600)]
    public int RetryDelaySeconds { get; set; } = 2;

    /// <summary>Upper bound of that delay (a provider's longer Retry-After is still honoured).</summary>
    [Range(1, 86_400)]
    [SettingRule("at least Nexus__Refresh__RetryDelaySeconds, at most 86400")]
    public int MaxRetryDelaySeconds { get; set; } = 600;
}
