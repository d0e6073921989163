namespace Nexus.Server.Hosting;

/// <summary>
/// The authorization policies route groups require (issue 13, item 2): who may call a route is declared on its group,
/// not checked by a line in each handler. The components that own the credentials register them: ApiKeys the two
/// API-key policies (and the ApiKey authentication scheme), Accounts the session policies. A refusal keeps the
/// endpoint's own format: a 401 problem on the API, the sign-in redirect or the 403 page in the browser.
/// </summary>
internal static class NexusPolicies
{
    /// <summary>/v1/admin, /v1/providers: the deployment's API_KEY (claim <see cref="AdminClaim"/>).</summary>
    public const string AdminApiKey = "AdminApiKey";

    /// <summary>The gateway (/v1 connections, credentials, refresh): API_KEY or a key from POST /v1/admin/api-keys.</summary>
    public const string GatewayApiKey = "GatewayApiKey";

    /// <summary>/admin: a signed-in system administrator (session cookie).</summary>
    public const string SiteAdmin = "SiteAdmin";

    /// <summary>/dashboard: a signed-in person (session cookie) who owes no password change.</summary>
    public const string SignedIn = "SignedIn";

    /// <summary>/account/password: any signed-in session, one that still owes a password change included.</summary>
    public const string Session = "Session";

    /// <summary>Set on the bootstrap API_KEY's identity.</summary>
    public const string AdminClaim = "nexus:admin";

    /// <summary>One per workspace a gateway key may act for; "*" for every workspace.</summary>
    public const string WorkspaceClaim = "nexus:workspace";

    /// <summary>"true" when the key may read credentials (GET /v1/token), "false" for a Bridge-only key.</summary>
    public const string CanReadCredentialsClaim = "nexus:can_read_credentials";
}
