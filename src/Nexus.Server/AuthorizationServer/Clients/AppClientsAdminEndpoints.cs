using Nexus.Server.Hosting;
using Nexus.Server.Vault;

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
internal static class AppClientsAdminEndpoints
{
    public const int DefaultLifetimeSeconds = 3600;
    private const int MaxScopes = 100;

    public static void MapAppClientsAdmin(this RouteGroupBuilder admin)
    {
        var clients = admin.MapGroup("/clients").WithTags("App Clients");
        clients.MapPost("", CreateAsync);
        clients.MapGet("", ListAsync);
        clients.MapGet("/{clientId}", GetAsync);
        clients.MapPatch("/{clientId}", UpdateAsync);
        clients.MapDelete("/{clientId}", RevokeAsync);
        clients.MapPost("/{clientId}/secret", RotateSecretAsync);
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, ClientRegistry registry, SecretHasher hasher, NexusOptions options, TimeProvider time, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<AppClientRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var (client, secret, errors) = await CreateClientAsync(body!, registry, hasher, options, time, ct);
        return client is null
            ? Problems.Validation(errors)
            : TypedResults.Created($"/v1/admin/clients/{client.ClientId}", AppClientResponse.From(client, secret));
    }

    /// <summary>Validates and creates an App Client; shared by the admin API and the dashboard.</summary>
    public static async Task<(OAuthClient? Client, string? Secret, Dictionary<string, string[]> Errors)> CreateClientAsync(
        AppClientRequest body, ClientRegistry registry, SecretHasher hasher, NexusOptions options, TimeProvider time, CancellationToken ct)
    {
        var errors = Validate(body, options, creating: true);
        if (errors.Count > 0)
        {
            return (null, null, errors);
        }

        var now = time.GetUtcNow();
        var secret = SecretGenerator.Secret("nxs_");
        var client = new OAuthClient(
            SecretGenerator.Id("nxc_"), ClientKinds.AppClient, body.Name!.Trim(), hasher.Hash(secret),
            Distinct(body.Scopes ?? []), Distinct(body.GrantTypes ?? [GrantTypes.ClientCredentials]),
            body.AccessTokenLifetimeSeconds ?? Math.Min(DefaultLifetimeSeconds, options.MaxAccessTokenLifetimeSeconds),
            now, now, now, null);
        await registry.CreateAsync(client, ct);
        return (client, secret, errors);
    }

    private static async Task<IResult> ListAsync(ClientRegistry registry, CancellationToken ct)
    {
        var all = await registry.ListAsync(ClientKinds.AppClient, ct);
        return TypedResults.Ok(new { clients = all.Select(c => AppClientResponse.From(c)) });
    }

    private static async Task<IResult> GetAsync(string clientId, ClientRegistry registry, CancellationToken ct) =>
        await FindAppClientAsync(registry, clientId, ct) is { } client
            ? TypedResults.Ok(AppClientResponse.From(client))
            : Problems.NotFound("App Client");

    private static async Task<IResult> UpdateAsync(string clientId, HttpRequest request, ClientRegistry registry, NexusOptions options, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<AppClientRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var errors = Validate(body!, options, creating: false);
        if (errors.Count > 0)
        {
            return Problems.Validation(errors);
        }

        var client = await FindAppClientAsync(registry, clientId, ct);
        if (client is null)
        {
            return Problems.NotFound("App Client");
        }

        if (client.IsRevoked)
        {
            return Problems.Create(ProblemCatalog.ClientRevoked);
        }

        var updated = client with
        {
            Name = body!.Name?.Trim() ?? client.Name,
            Scopes = body.Scopes is null ? client.Scopes : Distinct(body.Scopes),
            GrantTypes = body.GrantTypes is null ? client.GrantTypes : Distinct(body.GrantTypes),
            AccessTokenLifetimeSeconds = body.AccessTokenLifetimeSeconds ?? client.AccessTokenLifetimeSeconds,
        };
        if (!await registry.UpdateAsync(updated, ct))
        {
            return Problems.Create(ProblemCatalog.ClientRevoked);
        }

        return TypedResults.Ok(AppClientResponse.From((await registry.FindAsync(clientId, ct))!));
    }

    private static async Task<IResult> RevokeAsync(string clientId, ClientRegistry registry, CancellationToken ct)
    {
        if (await FindAppClientAsync(registry, clientId, ct) is null)
        {
            return Problems.NotFound("App Client");
        }

        // Revoking twice is not an error: the outcome the caller asked for holds.
        await registry.RevokeAsync(clientId, ct);
        return TypedResults.NoContent();
    }

    private static async Task<IResult> RotateSecretAsync(string clientId, ClientRegistry registry, SecretHasher hasher, TimeProvider time, CancellationToken ct)
    {
        var client = await FindAppClientAsync(registry, clientId, ct);
        if (client is null)
        {
            return Problems.NotFound("App Client");
        }

        var secret = await RotateAsync(client, registry, hasher, ct);
        return secret is null
            ? Problems.Create(ProblemCatalog.ClientRevoked, title: "A revoked client cannot get a new secret.")
            : TypedResults.Ok(new AppClientSecretResponse(clientId, secret, time.GetUtcNow()));
    }

    /// <summary>Gives a client a new secret (the old one stops working at once); null when the client is revoked or public.</summary>
    public static async Task<string?> RotateAsync(OAuthClient client, ClientRegistry registry, SecretHasher hasher, CancellationToken ct)
    {
        if (client.IsRevoked || client.IsPublic)
        {
            return null;
        }

        var secret = SecretGenerator.Secret("nxs_");
        return await registry.SetSecretHashAsync(client.ClientId, hasher.Hash(secret), ct) ? secret : null;
    }

    public static async Task<OAuthClient?> FindAppClientAsync(ClientRegistry registry, string clientId, CancellationToken ct) =>
        await registry.FindAsync(clientId, ct) is { Kind: ClientKinds.AppClient } client ? client : null;

    private static Dictionary<string, string[]> Validate(AppClientRequest body, NexusOptions options, bool creating)
    {
        var errors = new Dictionary<string, string[]>();
        if (creating || body.Name is not null)
        {
            if (string.IsNullOrWhiteSpace(body.Name) || body.Name.Trim().Length > 200)
            {
                errors["name"] = ["Give the App Client a name of 1 to 200 characters."];
            }
        }

        if (body.Scopes is not null)
        {
            if (body.Scopes.Length > MaxScopes)
            {
                errors["scopes"] = [$"At most {MaxScopes} scopes."];
            }
            else if (body.Scopes.Any(s => s is null || !ScopeSyntax.IsValidToken(s)))
            {
                errors["scopes"] = ["Each scope is 1 to 200 printable ASCII characters without spaces, quotes or backslashes (RFC 6749 §3.3)."];
            }
        }

        if (body.GrantTypes is not null)
        {
            if (body.GrantTypes.Length == 0 || body.GrantTypes.Any(g => g is null || !GrantTypes.ForAppClients.Contains(g)))
            {
                errors["grant_types"] = [$"App Clients support these grant types: {string.Join(", ", GrantTypes.ForAppClients)}. Register an OAuth application for user-facing flows."];
            }
        }

        if (body.AccessTokenLifetimeSeconds is { } lifetime && (lifetime < 60 || lifetime > options.MaxAccessTokenLifetimeSeconds))
        {
            errors["access_token_lifetime_seconds"] = [$"Choose between 60 and {options.MaxAccessTokenLifetimeSeconds} seconds."];
        }

        return errors;
    }

    private static string[] Distinct(IEnumerable<string> values) => values.Distinct(StringComparer.Ordinal).ToArray();
}
