using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.AuthorizationServer.Clients;

/// <summary>App Clients (client credentials grant, RFC 6749 §4.4): created with a secret shown once and stored only as a keyed hash.</summary>
internal sealed class AppClientService(ClientRegistry registry, SecretHasher hasher, NexusOptions options, TimeProvider time)
    : ClientService(registry, hasher, options, time, ClientKinds.AppClient)
{
    public const int DefaultLifetimeSeconds = 3600;
    private const int MaxScopes = 100;

    /// <summary>Validates and creates an App Client; the secret is returned once.</summary>
    public Task<ClientCreation> CreateAsync(AppClientRequest body, CancellationToken ct) =>
        CreateAsync(Validate(body, creating: true), withSecret: true, (id, secretHash, now) => new OAuthClient(
            id, ClientKinds.AppClient, body.Name!.Trim(), secretHash,
            Distinct(body.Scopes ?? []), Distinct(body.GrantTypes ?? [GrantTypes.ClientCredentials]),
            body.AccessTokenLifetimeSeconds ?? Math.Min(DefaultLifetimeSeconds, Options.MaxAccessTokenLifetimeSeconds),
            now, now, now, null), ct);

    /// <summary>Applies a change (absent fields keep their value).</summary>
    public Task<ClientUpdate> UpdateAsync(string clientId, AppClientRequest body, CancellationToken ct) =>
        UpdateAsync(clientId, Validate(body, creating: false), client => client with
        {
            Name = body.Name?.Trim() ?? client.Name,
            Scopes = body.Scopes is null ? client.Scopes : Distinct(body.Scopes),
            GrantTypes = body.GrantTypes is null ? client.GrantTypes : Distinct(body.GrantTypes),
            AccessTokenLifetimeSeconds = body.AccessTokenLifetimeSeconds ?? client.AccessTokenLifetimeSeconds,
        }, ct);

    private Dictionary<string, string[]> Validate(AppClientRequest body, bool creating)
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

        CheckLifetime(body.AccessTokenLifetimeSeconds, errors);
        return errors;
    }
}
