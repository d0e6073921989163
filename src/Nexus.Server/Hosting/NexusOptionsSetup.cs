using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace Nexus.Server.Hosting;

/// <summary>Lets the plain variable names from the product documents override the "Nexus" section.</summary>
internal sealed class NexusOptionsSetup(IConfiguration configuration) : IConfigureOptions<NexusOptions>
{
    public void Configure(NexusOptions options)
    {
        configuration.GetSection(NexusOptions.Section).Bind(options);
        options.BaseUrl = configuration["BASE_URL"] ?? options.BaseUrl;
        options.ApiKey = configuration["API_KEY"] ?? options.ApiKey;
        options.SuperuserEmail = configuration["SUPERUSER_EMAIL"] ?? options.SuperuserEmail;
        options.SetupToken = configuration["SETUP_TOKEN"] ?? options.SetupToken;
        options.DatabaseUrl = configuration["DATABASE_URL"] ?? options.DatabaseUrl;
        options.EncryptionKey = configuration["ENCRYPTION_KEY"] ?? options.EncryptionKey;
        options.PreviousEncryptionKeys = configuration["PREVIOUS_ENCRYPTION_KEYS"] ?? options.PreviousEncryptionKeys;
        options.AllowedReturnUrls = configuration["ALLOWED_RETURN_URLS"] ?? options.AllowedReturnUrls;
    }
}

/// <summary>Fails startup with messages that say what to change, instead of failing later on a request.</summary>
internal sealed class NexusOptionsValidator : IValidateOptions<NexusOptions>
{
    public ValidateOptionsResult Validate(string? name, NexusOptions o)
    {
        var errors = new List<string>();
        if (!Uri.TryCreate(o.BaseUrl, UriKind.Absolute, out var baseUri) || (baseUri.Scheme != "http" && baseUri.Scheme != "https")
            || !string.IsNullOrEmpty(baseUri.Query) || !string.IsNullOrEmpty(baseUri.Fragment))
        {
            errors.Add($"BASE_URL must be an absolute http(s) URL without query or fragment, such as http://localhost:8090 (got '{o.BaseUrl}').");
        }

        if (!string.IsNullOrEmpty(o.EncryptionKey) && !IsAes256Key(o.EncryptionKey))
        {
            errors.Add("ENCRYPTION_KEY must be 32 random bytes in base64. Generate one with: openssl rand -base64 32");
        }

        foreach (var previous in (o.PreviousEncryptionKeys ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!IsAes256Key(previous))
            {
                errors.Add("PREVIOUS_ENCRYPTION_KEYS must be a comma-separated list of base64 keys of 32 bytes each (the values ENCRYPTION_KEY had before).");
                break;
            }
        }

        if (o.ApiKey is { Length: > 0 and < 16 })
        {
            errors.Add("API_KEY is too short to be safe: use at least 16 characters, e.g. the output of: openssl rand -base64 32");
        }

        if (o.SetupToken is { Length: > 0 } setupToken && setupToken.Trim().Length < 16)
        {
            errors.Add("SETUP_TOKEN is too short to be safe: use at least 16 characters, e.g. the output of: openssl rand -base64 32");
        }

        if (o.SessionCheckSeconds is < 0 or > 60)
        {
            errors.Add("Nexus:SessionCheckSeconds must be between 0 and 60.");
        }

        if (o.SessionMaxHours is < 1 or > 8_760)
        {
            errors.Add($"Nexus:SessionMaxHours must be between 1 and 8760: how long a dashboard session lasts at most after its sign-in (default 720; got {o.SessionMaxHours}).");
        }

        if (o.AccessTokenSigningAlgorithm is not ("ES256" or "RS256"))
        {
            errors.Add($"Nexus:AccessTokenSigningAlgorithm must be ES256 or RS256 (got '{o.AccessTokenSigningAlgorithm}').");
        }

        if (o.MaxAccessTokenLifetimeSeconds is < 60 or > 604_800)
        {
            errors.Add("Nexus:MaxAccessTokenLifetimeSeconds must be between 60 and 604800 (one week).");
        }

        if (o.SigningKeyOverlapSeconds < o.MaxAccessTokenLifetimeSeconds)
        {
            errors.Add("Nexus:SigningKeyOverlapSeconds must be at least Nexus:MaxAccessTokenLifetimeSeconds, or tokens signed by a retired key would stop verifying before they expire.");
        }

        if (o.SigningKeyRefreshSeconds < 1 || o.ClientCacheSeconds < 0 || o.FailedClientAuthenticationLimit < 1 || o.FailedClientAuthenticationWindowSeconds < 1)
        {
            errors.Add("Nexus:SigningKeyRefreshSeconds, FailedClientAuthenticationLimit and FailedClientAuthenticationWindowSeconds must be positive; ClientCacheSeconds may not be negative.");
        }

        if (o.RefreshTokenLifetimeDays is < 1 or > 365 || o.MaxExchangeExpirationMinutes is < 1 or > 10_080)
        {
            errors.Add("Nexus:RefreshTokenLifetimeDays must be 1 to 365 and Nexus:MaxExchangeExpirationMinutes 1 to 10080 (one week).");
        }

        if (!string.IsNullOrWhiteSpace(o.Upstream.Issuer) && (!Uri.TryCreate(o.Upstream.Issuer, UriKind.Absolute, out var upstream) || string.IsNullOrWhiteSpace(o.Upstream.ClientId)
            || (upstream.Scheme != "https" && !upstream.IsLoopback)))
        {
            errors.Add("Nexus:Upstream needs Issuer (an https URL) and ClientId (and usually ClientSecret) to enable sign-in through an upstream OpenID Connect provider.");
        }

        if (o.Bridge.TimeoutSeconds is < 1 or > 3600 || o.Bridge.MaxRequestBodyBytes < 1)
        {
            errors.Add("Nexus:Bridge:TimeoutSeconds must be 1 to 3600 and Nexus:Bridge:MaxRequestBodyBytes positive.");
        }

        ValidateRefresh(o.Refresh, errors);

        if (o.Retention.IntervalMinutes is < 0 or > 10_080)
        {
            errors.Add($"Nexus:Retention:IntervalMinutes must be between 0 and 10080: how often expired tokens and old records are removed (default 60; 0 never; got {o.Retention.IntervalMinutes}).");
        }

        if (o.Retention.WebhookDeliveryDays is < 0 or > 36_500 || o.Retention.AuditDays is < 0 or > 36_500 || o.Retention.AbandonedConnectionDays is < 0 or > 36_500)
        {
            errors.Add("Nexus:Retention:WebhookDeliveryDays, Nexus:Retention:AuditDays and Nexus:Retention:AbandonedConnectionDays must be between 0 and 36500 days (0 keeps everything).");
        }

        if (o.Revocation.PollSeconds is < 0 or > 300)
        {
            errors.Add($"Nexus:Revocation:PollSeconds must be between 0 and 300: how often each instance reads revocations made by the others (default 1; 0 asks the database on every check; got {o.Revocation.PollSeconds}).");
        }

        _ = BrowserOrigins.Parse(o.Mcp.AllowedOrigins, out var badOrigin);
        if (badOrigin is not null)
        {
            errors.Add($"Nexus:Mcp:AllowedOrigins must be a comma-separated list of exact http(s) origins (scheme://host[:port], no path, query or wildcard), such as https://assistant.example.com,http://localhost:6274 (got '{badOrigin}').");
        }

        _ = TransportSecurity.ParseNetworks(o.TrustedProxies, out var badProxy);
        if (badProxy is not null)
        {
            errors.Add($"Nexus:TrustedProxies must be a comma-separated list of IP addresses or CIDR ranges, such as 10.0.0.5,10.1.0.0/16 (got '{badProxy}').");
        }

        _ = TransportSecurity.ParseNetworks(o.AllowedUpstreamNetworks, out var badNetwork);
        if (badNetwork is not null)
        {
            errors.Add($"Nexus:AllowedUpstreamNetworks must be a comma-separated list of IP addresses or CIDR ranges, such as 10.20.0.0/16,fd00::/8 (got '{badNetwork}').");
        }

        if (o.HstsMaxAgeSeconds < 0)
        {
            errors.Add("Nexus:HstsMaxAgeSeconds may not be negative (0 sends no Strict-Transport-Security header).");
        }

        if (o.UpstreamTimeoutSeconds is < 1 or > 120)
        {
            errors.Add("Nexus:UpstreamTimeoutSeconds must be between 1 and 120.");
        }

        if (o.ApiKeyCacheSeconds < 0 || o.ConnectionCacheSeconds < 0 || o.AuditTokenReadIntervalSeconds < 0)
        {
            errors.Add("Nexus:ApiKeyCacheSeconds, ConnectionCacheSeconds and AuditTokenReadIntervalSeconds may not be negative.");
        }

        if (o.PendingConnectionSeconds is < 60 or > 86_400)
        {
            errors.Add("Nexus:PendingConnectionSeconds must be between 60 and 86400 (one day).");
        }

        if (o.UnauthorizedGrantResponse is not ("seed" or "rfc"))
        {
            errors.Add($"Nexus:UnauthorizedGrantResponse must be 'seed' (501 unsupported_grant_type) or 'rfc' (400 unauthorized_client), got '{o.UnauthorizedGrantResponse}'.");
        }

        if (string.Equals(o.Audience, o.McpResource, StringComparison.Ordinal))
        {
            errors.Add($"Nexus:AccessTokenAudience may not be {o.McpResource}: that is the MCP server's resource, and tokens for it must not work on Nexus's REST API.");
        }

        var registration = o.Registration;
        if (registration.Mode is not ("open" or "token" or "off"))
        {
            errors.Add($"Nexus:Registration:Mode must be 'open', 'token' (an initial access token is required) or 'off' (got '{registration.Mode}').");
        }
        else if (registration.Mode == "token" && registration.InitialAccessToken is not { Length: >= 16 })
        {
            errors.Add("Nexus:Registration:Mode is 'token', so Nexus:Registration:InitialAccessToken must be set to at least 16 characters, e.g. the output of: openssl rand -base64 32");
        }

        if (registration.LimitPerHour is < 1 or > 100_000 || registration.MaxMetadataDocumentBytes is < 512 or > 65_536
            || registration.MetadataDocumentTimeoutSeconds is < 1 or > 30 || registration.MaxMetadataDocumentCacheSeconds is < 0 or > 604_800)
        {
            errors.Add("Nexus:Registration: LimitPerHour must be 1 to 100000, MaxMetadataDocumentBytes 512 to 65536, MetadataDocumentTimeoutSeconds 1 to 30 and MaxMetadataDocumentCacheSeconds 0 to 604800.");
        }

        if (o.Mcp.MaxMetadataBytes is < 1024 or > 4 * 1024 * 1024 || o.Mcp.MetadataTimeoutSeconds is < 1 or > 60)
        {
            errors.Add("Nexus:Mcp: MaxMetadataBytes must be 1024 to 4194304 and MetadataTimeoutSeconds 1 to 60.");
        }

        if (o.Mcp.ClientMetadataDocumentUrl is { Length: > 0 } documentUrl
            && (!Uri.TryCreate(documentUrl, UriKind.Absolute, out var document) || document.Scheme != Uri.UriSchemeHttps || document.AbsolutePath.Length <= 1 || document.Fragment.Length > 0))
        {
            errors.Add("Nexus:Mcp:ClientMetadataDocumentUrl must be an https URL with a path (draft-ietf-oauth-client-id-metadata-document §3).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void ValidateRefresh(RefreshOptions r, List<string> errors)
    {
        if (r.MarginSeconds is < 0 or > 86_400)
        {
            errors.Add($"Nexus:Refresh:MarginSeconds must be between 0 and 86400: how many seconds before expiry a token is refreshed (default 300, got {r.MarginSeconds}).");
        }

        if (r.IntervalSeconds is < 1 or > 3600)
        {
            errors.Add($"Nexus:Refresh:IntervalSeconds must be between 1 and 3600: how often the background refresher looks for due connections (default 5, got {r.IntervalSeconds}).");
        }

        if (r.KeepAliveSeconds != 0 && r.KeepAliveSeconds is < 60 or > 31_536_000)
        {
            errors.Add($"Nexus:Refresh:KeepAliveSeconds must be 0 (off) or between 60 and 31536000 (one year): how often an idle refresh token is used to keep it alive (default 86400, got {r.KeepAliveSeconds}).");
        }

        if (r.BatchSize is < 1 or > 10_000 || r.Concurrency is < 1 or > 256)
        {
            errors.Add($"Nexus:Refresh:BatchSize must be 1 to 10000 and Nexus:Refresh:Concurrency 1 to 256 (defaults 200 and 16; got {r.BatchSize} and {r.Concurrency}).");
        }

        if (r.RetryDelaySeconds is < 1 or > 3600 || r.MaxRetryDelaySeconds < r.RetryDelaySeconds || r.MaxRetryDelaySeconds > 86_400)
        {
            errors.Add($"Nexus:Refresh:RetryDelaySeconds must be 1 to 3600 and Nexus:Refresh:MaxRetryDelaySeconds between it and 86400 (defaults 2 and 600; got {r.RetryDelaySeconds} and {r.MaxRetryDelaySeconds}).");
        }
    }

    internal static bool IsAes256Key(string value)
    {
        Span<byte> buffer = stackalloc byte[64];
        var ok = Convert.TryFromBase64String(value.Trim(), buffer, out var written) && written == 32;
        CryptographicOperations.ZeroMemory(buffer);
        return ok;
    }
}
