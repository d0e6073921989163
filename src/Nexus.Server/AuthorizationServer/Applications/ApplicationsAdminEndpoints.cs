using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.Hosting;

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
/// <summary>GET /v1/admin/applications: every OAuth application, revoked ones included.</summary>
internal sealed record ApplicationList(IEnumerable<ApplicationResponse> Applications);

internal static class ApplicationsAdminEndpoints
{
    public static void MapApplicationsAdmin(this RouteGroupBuilder admin)
    {
        var apps = admin.MapGroup("").WithTags("OAuth Applications");
        apps.MapPost("/v1/admin/applications", CreateAsync);
        apps.MapGet("/v1/admin/applications", async (ApplicationService applications, CancellationToken ct) =>
            TypedResults.Ok(new ApplicationList((await applications.ListAsync(ct)).Select(c => ApplicationResponse.From(c)))));
        apps.MapGet("/v1/admin/applications/{clientId}", GetAsync);
        apps.MapPatch("/v1/admin/applications/{clientId}", UpdateAsync);
        apps.MapDelete("/v1/admin/applications/{clientId}", RevokeAsync);
        apps.MapPost("/v1/admin/applications/{clientId}/secret", RotateSecretAsync);
    }

    private static async Task<Results<Created<ApplicationResponse>, ProblemHttpResult>> CreateAsync(HttpRequest request, ApplicationService applications, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<ApplicationRequest>(request, ct);
        return error is not null ? error : (await applications.CreateAsync(body!, ct)).ToResult("/v1/admin/applications", ApplicationResponse.From);
    }

    /// <summary>A metadata-document client's id is a URL, percent-encoded in the path: read as sent (Hosting/RawRouteValue).</summary>
    private static string Id(HttpContext context, string clientId) => RawRouteValue.Get(context, "clientId", clientId);

    private static async Task<Results<Ok<ApplicationResponse>, ProblemHttpResult>> GetAsync(HttpContext context, string clientId, ApplicationService applications, CancellationToken ct) =>
        await applications.FindAsync(Id(context, clientId), ct) is { } app ? TypedResults.Ok(ApplicationResponse.From(app)) : Problems.TypedNotFound("Application");

    private static async Task<Results<Ok<ApplicationResponse>, ProblemHttpResult>> UpdateAsync(HttpContext context, string clientId, HttpRequest request, ApplicationService applications, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<ApplicationRequest>(request, ct);
        return error is not null ? error : (await applications.UpdateAsync(Id(context, clientId), body!, ct)).ToResult("Application", "A deleted application cannot be changed.", c => ApplicationResponse.From(c));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> RevokeAsync(HttpContext context, string clientId, ApplicationService applications, CancellationToken ct)
    {
        if (await applications.FindAsync(Id(context, clientId), ct) is not { } app)
        {
            return Problems.TypedNotFound("Application");
        }

        await applications.RevokeAsync(app, ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<AppClientSecretResponse>, ProblemHttpResult>> RotateSecretAsync(HttpContext context, string clientId, ApplicationService applications, CancellationToken ct)
    {
        if (await applications.FindAsync(Id(context, clientId), ct) is not { } app)
        {
            return Problems.TypedNotFound("Application");
        }

        if (app.IsPublic)
        {
            return Problems.Typed(ProblemCatalog.PublicClient);
        }

        var rotated = await applications.RotateSecretAsync(app, ct);
        return rotated is not { } secret
            ? Problems.Typed(ProblemCatalog.ClientRevoked, title: "A deleted application cannot get a new secret.")
            : TypedResults.Ok(new AppClientSecretResponse(app.ClientId, secret.Secret, secret.RotatedAt));
    }
}
