using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.AuthorizationServer.Applications;

/// <summary>Contract of the OAuth Applications admin API (fields of the Nexus OAuth 2.0 Integration Guide).</summary>
internal sealed record ApplicationRequest(
    string? Name,
    string[]? RedirectUris,
    string? Description,
    string? BaseUrl,
    string? OwnerEmail,
    string? Type,
    string[]? Scopes,
    string[]? PostLogoutRedirectUris,
    int? AccessTokenLifetimeSeconds);

internal sealed record ApplicationResponse(
    string ClientId,
    string Name,
    string Type,
    IReadOnlyList<string> RedirectUris,
    IReadOnlyList<string> PostLogoutRedirectUris,
    string? Description,
    string? BaseUrl,
    string? OwnerEmail,
    IReadOnlyList<string> Scopes,
    IReadOnlyList<string> GrantTypes,
    int AccessTokenLifetimeSeconds,
    string Status,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    string? ClientSecret = null,
    string Registration = ClientRegistrations.Admin)
{
    public static ApplicationResponse From(OAuthClient c, string? secret = null) => new(
        c.ClientId, c.Name, c.ClientType, c.RedirectUriList, c.PostLogoutRedirectUriList, c.Description, c.BaseUrl, c.OwnerEmail,
        c.Scopes, c.GrantTypes, c.AccessTokenLifetimeSeconds, c.IsRevoked ? "revoked" : "active", c.CreatedAt, c.UpdatedAt, secret, c.Registration);
}

/// <summary>
/// /v1/admin/applications: applications that use Nexus as their identity provider. Confidential applications get
/// a secret shown once and stored hashed; public ones get none and must use PKCE.
/// </summary>
internal static class ApplicationsAdminEndpoints
{
    public static readonly string[] DefaultScopes = ["openid", "profile", "email", "offline_access"];

    public static void MapApplicationsAdmin(this RouteGroupBuilder admin)
    {
        var apps = admin.MapGroup("/applications").WithTags("OAuth Applications");
        apps.MapPost("", CreateAsync);
        apps.MapGet("", async (ClientRegistry registry, CancellationToken ct) =>
            TypedResults.Ok(new { applications = (await registry.ListAsync(ClientKinds.Application, ct)).Select(c => ApplicationResponse.From(c)) }));
        apps.MapGet("/{clientId}", async (string clientId, ClientRegistry registry, CancellationToken ct) =>
            await FindAsync(registry, clientId, ct) is { } app ? TypedResults.Ok(ApplicationResponse.From(app)) : Problems.NotFound("Application"));
        apps.MapPatch("/{clientId}", UpdateAsync);
        apps.MapDelete("/{clientId}", async (string clientId, ClientRegistry registry, CancellationToken ct) =>
        {
            if (await FindAsync(registry, clientId, ct) is not { } app)
            {
                return Problems.NotFound("Application");
            }

            await registry.RevokeAsync(app.ClientId, ct);
            return TypedResults.NoContent();
        });
        apps.MapPost("/{clientId}/secret", async (string clientId, ClientRegistry registry, SecretHasher hasher, TimeProvider time, CancellationToken ct) =>
        {
            var app = await FindAsync(registry, clientId, ct);
            if (app is null)
            {
                return Problems.NotFound("Application");
            }

            if (app.IsPublic)
            {
                return Problems.Create(ProblemCatalog.PublicClient);
            }

            var secret = await AppClientsAdminEndpoints.RotateAsync(app, registry, hasher, ct);
            return secret is null
                ? Problems.Create(ProblemCatalog.ClientRevoked, title: "A deleted application cannot get a new secret.")
                : TypedResults.Ok(new { client_id = app.ClientId, client_secret = secret, secret_rotated_at = time.GetUtcNow() });
        });
    }

    /// <summary>
    /// Finds an application by the client id in a route. A metadata-document client's id is a URL, sent percent-encoded
    /// in one path segment; routing leaves %2F encoded, so the id is decoded here (Nexus's own ids contain no %).
    /// </summary>
    public static async Task<OAuthClient?> FindAsync(ClientRegistry registry, string clientId, CancellationToken ct) =>
        await registry.FindAsync(Uri.UnescapeDataString(clientId), ct) is { Kind: ClientKinds.Application } app ? app : null;

    private static async Task<IResult> CreateAsync(HttpRequest request, ClientRegistry registry, SecretHasher hasher, NexusOptions options, TimeProvider time, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<ApplicationRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var (app, secret, errors) = await CreateApplicationAsync(body!, registry, hasher, options, time, ct);
        return app is null
            ? Problems.Validation(errors)
            : TypedResults.Created($"/v1/admin/applications/{app.ClientId}", ApplicationResponse.From(app, secret));
    }

    /// <summary>Validates and registers an application; shared by the admin API and the dashboard.</summary>
    public static async Task<(OAuthClient? App, string? Secret, Dictionary<string, string[]> Errors)> CreateApplicationAsync(
        ApplicationRequest body, ClientRegistry registry, SecretHasher hasher, NexusOptions options, TimeProvider time, CancellationToken ct)
    {
        var errors = Validate(body, options, creating: true);
        if (errors.Count > 0)
        {
            return (null, null, errors);
        }

        var now = time.GetUtcNow();
        var type = body.Type ?? ClientTypes.Confidential;
        var secret = type == ClientTypes.Confidential ? SecretGenerator.Secret("nxs_") : null;
        var app = new OAuthClient(
            SecretGenerator.Id("nxc_"), ClientKinds.Application, body.Name!.Trim(), secret is null ? null : hasher.Hash(secret),
            (body.Scopes ?? DefaultScopes).Distinct(StringComparer.Ordinal).ToArray(), [GrantTypes.AuthorizationCode, GrantTypes.RefreshToken],
            body.AccessTokenLifetimeSeconds ?? Math.Min(3600, options.MaxAccessTokenLifetimeSeconds), now, now, now, null,
            type, body.RedirectUris!.Distinct(StringComparer.Ordinal).ToArray(), (body.PostLogoutRedirectUris ?? []).Distinct(StringComparer.Ordinal).ToArray(),
            Clean(body.Description), Clean(body.BaseUrl), Clean(body.OwnerEmail));
        await registry.CreateAsync(app, ct);
        return (app, secret, errors);
    }

    private static async Task<IResult> UpdateAsync(string clientId, HttpRequest request, ClientRegistry registry, NexusOptions options, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<ApplicationRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var errors = Validate(body!, options, creating: false);
        if (body!.Type is not null)
        {
            errors["type"] = ["The type of an application cannot change; register a new one."];
        }

        if (errors.Count > 0)
        {
            return Problems.Validation(errors);
        }

        var app = await FindAsync(registry, clientId, ct);
        if (app is null)
        {
            return Problems.NotFound("Application");
        }

        var updated = app with
        {
            Name = body.Name?.Trim() ?? app.Name,
            RedirectUris = body.RedirectUris?.Distinct(StringComparer.Ordinal).ToArray() ?? app.RedirectUris,
            PostLogoutRedirectUris = body.PostLogoutRedirectUris?.Distinct(StringComparer.Ordinal).ToArray() ?? app.PostLogoutRedirectUris,
            Description = body.Description is null ? app.Description : Clean(body.Description),
            BaseUrl = body.BaseUrl is null ? app.BaseUrl : Clean(body.BaseUrl),
            OwnerEmail = body.OwnerEmail is null ? app.OwnerEmail : Clean(body.OwnerEmail),
            Scopes = body.Scopes?.Distinct(StringComparer.Ordinal).ToArray() ?? app.Scopes,
            AccessTokenLifetimeSeconds = body.AccessTokenLifetimeSeconds ?? app.AccessTokenLifetimeSeconds,
        };
        if (app.IsRevoked || !await registry.UpdateAsync(updated, ct))
        {
            return Problems.Create(ProblemCatalog.ClientRevoked, title: "A deleted application cannot be changed.");
        }

        return TypedResults.Ok(ApplicationResponse.From((await registry.FindAsync(app.ClientId, ct))!));
    }

    private static string? Clean(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static Dictionary<string, string[]> Validate(ApplicationRequest body, NexusOptions options, bool creating)
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

        if (body.AccessTokenLifetimeSeconds is { } lifetime && (lifetime < 60 || lifetime > options.MaxAccessTokenLifetimeSeconds))
        {
            errors["access_token_lifetime_seconds"] = [$"Choose between 60 and {options.MaxAccessTokenLifetimeSeconds} seconds."];
        }

        return errors;
    }
}
