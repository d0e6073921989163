using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Clients;

/// <summary>Contract of the App Clients admin API.</summary>
internal sealed record AppClientRequest(string? Name, string[]? Scopes, string[]? GrantTypes, int? AccessTokenLifetimeSeconds);

internal sealed record AppClientResponse(
    string ClientId,
    string Name,
    IReadOnlyList<string> Scopes,
    IReadOnlyList<string> GrantTypes,
    int AccessTokenLifetimeSeconds,
    string Status,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset SecretRotatedAt,
    DateTimeOffset? RevokedAt,
    string? ClientSecret = null)
{
    public static AppClientResponse From(OAuthClient c, string? secret = null) => new(
        c.ClientId, c.Name, c.Scopes, c.GrantTypes, c.AccessTokenLifetimeSeconds, c.IsRevoked ? "revoked" : "active",
        c.CreatedAt, c.UpdatedAt, c.SecretRotatedAt, c.RevokedAt, secret);
}

internal sealed record AppClientSecretResponse(string ClientId, string ClientSecret, DateTimeOffset SecretRotatedAt);

/// <summary>
/// /v1/admin/clients: App Clients for the client credentials grant. The secret appears in exactly two
/// responses, creation and rotation, and is stored only as a keyed hash.
/// </summary>
/// <summary>GET /v1/admin/clients: every App Client, revoked ones included.</summary>
internal sealed record AppClientList(IEnumerable<AppClientResponse> Clients);

internal static class AppClientsAdminEndpoints
{
    public static void MapAppClientsAdmin(this RouteGroupBuilder admin)
    {
        var clients = admin.MapGroup("").WithTags("App Clients");
        clients.MapPost("/v1/admin/clients", CreateAsync);
        clients.MapGet("/v1/admin/clients", ListAsync);
        clients.MapGet("/v1/admin/clients/{clientId}", GetAsync);
        clients.MapPatch("/v1/admin/clients/{clientId}", UpdateAsync);
        clients.MapDelete("/v1/admin/clients/{clientId}", RevokeAsync);
        clients.MapPost("/v1/admin/clients/{clientId}/secret", RotateSecretAsync);
    }

    private static async Task<Results<Created<AppClientResponse>, ProblemHttpResult>> CreateAsync(HttpRequest request, AppClientService clients, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<AppClientRequest>(request, ct);
        return error is not null ? error : (await clients.CreateAsync(body!, ct)).ToResult("/v1/admin/clients", AppClientResponse.From);
    }

    private static async Task<Ok<AppClientList>> ListAsync(AppClientService clients, CancellationToken ct) =>
        TypedResults.Ok(new AppClientList((await clients.ListAsync(ct)).Select(c => AppClientResponse.From(c))));

    private static async Task<Results<Ok<AppClientResponse>, ProblemHttpResult>> GetAsync(string clientId, AppClientService clients, CancellationToken ct) =>
        await clients.FindAsync(clientId, ct) is { } client
            ? TypedResults.Ok(AppClientResponse.From(client))
            : Problems.TypedNotFound("App Client");

    private static async Task<Results<Ok<AppClientResponse>, ProblemHttpResult>> UpdateAsync(string clientId, HttpRequest request, AppClientService clients, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<AppClientRequest>(request, ct);
        return error is not null ? error : (await clients.UpdateAsync(clientId, body!, ct)).ToResult("App Client", "A revoked App Client cannot be changed.", c => AppClientResponse.From(c));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> RevokeAsync(string clientId, AppClientService clients, CancellationToken ct)
    {
        if (await clients.FindAsync(clientId, ct) is not { } client)
        {
            return Problems.TypedNotFound("App Client");
        }

        // Revoking twice is not an error: the outcome the caller asked for holds.
        await clients.RevokeAsync(client, ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<AppClientSecretResponse>, ProblemHttpResult>> RotateSecretAsync(string clientId, AppClientService clients, CancellationToken ct)
    {
        if (await clients.FindAsync(clientId, ct) is not { } client)
        {
            return Problems.TypedNotFound("App Client");
        }

        var rotated = await clients.RotateSecretAsync(client, ct);
        return rotated is not { } secret
            ? Problems.Typed(ProblemCatalog.ClientRevoked, title: "A revoked client cannot get a new secret.")
            : TypedResults.Ok(new AppClientSecretResponse(clientId, secret.Secret, secret.RotatedAt));
    }
}
