using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.AuthorizationServer.Applications;

/// <summary>
/// OAuth applications that use Nexus as their identity provider (authorization code, OpenID Connect). Confidential
/// applications get a secret shown once and stored hashed; public ones get none and must use PKCE (RFC 7636).
/// </summary>
internal sealed class ApplicationService(ClientRegistry registry, SecretHasher hasher, NexusOptions options, TimeProvider time)
    : ClientService(registry, hasher, options, time, ClientKinds.Application)
{
    public static readonly string[] DefaultScopes = ["openid", "profile", "email", "offline_access"];

    /// <summary>Validates and registers an application; a confidential one's secret is returned once.</summary>
    public Task<ClientCreation> CreateAsync(ApplicationRequest body, CancellationToken ct)
    {
        var type = body.Type ?? ClientTypes.Confidential;
        return CreateAsync(Validate(body, creating: true), withSecret: type == ClientTypes.Confidential, (id, secretHash, now) => new OAuthClient(
            id, ClientKinds.Application, body.Name!.Trim(), secretHash,
            (body.Scopes ?? DefaultScopes).Distinct(StringComparer.Ordinal).ToArray(), [GrantTypes.AuthorizationCode, GrantTypes.RefreshToken],
            body.AccessTokenLifetimeSeconds ?? Math.Min(3600, Options.MaxAccessTokenLifetimeSeconds), now, now, now, null,
            type, body.RedirectUris!.Distinct(StringComparer.Ordinal).ToArray(), (body.PostLogoutRedirectUris ?? []).Distinct(StringComparer.Ordinal).ToArray(),
            Clean(body.Description), Clean(body.BaseUrl), Clean(body.OwnerEmail)), ct);
    }

    /// <summary>Applies a change (absent fields keep their value); the type of an application never changes.</summary>
    public Task<ClientUpdate> UpdateAsync(string clientId, ApplicationRequest body, CancellationToken ct)
    {
        var errors = Validate(body, creating: false);
        if (body.Type is not null)
        {
            errors["type"] = ["The type of an application cannot change; register a new one."];
        }

        return UpdateAsync(clientId, errors, app => app with
        {
            Name = body.Name?.Trim() ?? app.Name,
            RedirectUris = body.RedirectUris?.Distinct(StringComparer.Ordinal).ToArray() ?? app.RedirectUris,
            PostLogoutRedirectUris = body.PostLogoutRedirectUris?.Distinct(StringComparer.Ordinal).ToArray() ?? app.PostLogoutRedirectUris,
            Description = body.Description is null ? app.Description : Clean(body.Description),
            BaseUrl = body.BaseUrl is null ? app.BaseUrl : Clean(body.BaseUrl),
            OwnerEmail = body.OwnerEmail is null ? app.OwnerEmail : Clean(body.OwnerEmail),
            Scopes = body.Scopes?.Distinct(StringComparer.Ordinal).ToArray() ?? app.Scopes,
            AccessTokenLifetimeSeconds = body.AccessTokenLifetimeSeconds ?? app.AccessTokenLifetimeSeconds,
        }, ct);
    }

    private static string? Clean(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private Dictionary<string, string[]> Validate(ApplicationRequest body, bool creating)
    {
        var errors = new Dictionary<string, string[]>();
        if ((creating || body.Name is not null) && (string.IsNullOrWhiteSpace(body.Name) || body.Name.Trim().Length > 200))
        {
            errors["name"] = ["Give the application a name of 1 to 200 characters."];
        }

        if (creating && (body.RedirectUris is null || body.RedirectUris.Length == 0))
        {
            errors["redirect_uris"] = ["Register at least one redirect URI, e.g. https://yourapp.example/oauth/callback."];
        }
        else if (body.RedirectUris?.FirstOrDefault(u => RedirectUris.Problem(u) is not null) is { } bad)
        {
            errors["redirect_uris"] = [$"'{bad}': {RedirectUris.Problem(bad)}"];
        }

        if (body.PostLogoutRedirectUris?.FirstOrDefault(u => RedirectUris.Problem(u) is not null) is { } badLogout)
        {
            errors["post_logout_redirect_uris"] = [$"'{badLogout}': {RedirectUris.Problem(badLogout)}"];
        }

        if (body.Type is not null && body.Type is not (ClientTypes.Confidential or ClientTypes.Public))
        {
            errors["type"] = ["type is 'confidential' (a server that keeps a secret) or 'public' (SPA, mobile, CLI: PKCE, no secret)."];
        }

        if (body.BaseUrl is { Length: > 0 } && !Uri.TryCreate(body.BaseUrl, UriKind.Absolute, out _))
        {
            errors["base_url"] = ["base_url must be an absolute URL."];
        }

        if (body.OwnerEmail is { Length: > 0 } && !System.Net.Mail.MailAddress.TryCreate(body.OwnerEmail, out _))
        {
            errors["owner_email"] = ["owner_email must be an email address."];
        }

        if (body.Description is { Length: > 2000 })
        {
            errors["description"] = ["At most 2000 characters."];
        }

        if (body.Scopes is not null && (body.Scopes.Length > 100 || body.Scopes.Any(s => s is null || !ScopeSyntax.IsValidToken(s))))
        {
            errors["scopes"] = ["Each scope is 1 to 200 printable ASCII characters without spaces, quotes or backslashes (RFC 6749 §3.3)."];
        }

        CheckLifetime(body.AccessTokenLifetimeSeconds, errors);
        return errors;
    }
}
