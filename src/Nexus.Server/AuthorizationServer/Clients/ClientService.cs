using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.AuthorizationServer.Clients;

/// <summary>
/// What can be done to the clients of one kind, whoever asks: the admin API, the dashboard's Site management and the
/// CLI all call <see cref="AppClientService"/> and <see cref="Applications.ApplicationService"/> (issue 13: domain
/// services out of endpoint classes). Callers authorize first; this validates and does the work.
/// </summary>
internal abstract class ClientService(ClientRegistry registry, SecretHasher hasher, NexusOptions options, TimeProvider time, string kind)
{
    protected ClientRegistry Registry => registry;

    protected NexusOptions Options => options;

    public Task<IReadOnlyList<OAuthClient>> ListAsync(CancellationToken ct) => registry.ListAsync(kind, ct);

    /// <summary>The client of this kind with this id, or null.</summary>
    public async Task<OAuthClient?> FindAsync(string clientId, CancellationToken ct) =>
        await registry.FindAsync(clientId, ct) is { } client && client.Kind == kind ? client : null;

    /// <summary>Revokes the client (revoking twice is not an error: the outcome asked for holds) and returns it as stored now.</summary>
    public async Task<OAuthClient> RevokeAsync(OAuthClient client, CancellationToken ct)
    {
        await registry.RevokeAsync(client.ClientId, ct);
        return await registry.FindAsync(client.ClientId, ct) ?? client;
    }

    /// <summary>Gives a client a new secret (the old one stops working at once); null when the client is revoked or public.</summary>
    public async Task<(string Secret, DateTimeOffset RotatedAt)?> RotateSecretAsync(OAuthClient client, CancellationToken ct)
    {
        if (client.IsRevoked || client.IsPublic)
        {
            return null;
        }

        var secret = SecretGenerator.Secret("nxs_");
        return await registry.SetSecretHashAsync(client.ClientId, hasher.Hash(secret), ct) ? (secret, time.GetUtcNow()) : null;
    }

    /// <summary>Creates the client <paramref name="build"/> makes from a fresh id, the hash of a fresh secret (when it gets one) and the time, unless there are errors.</summary>
    protected async Task<ClientCreation> CreateAsync(Dictionary<string, string[]> errors, bool withSecret,
        Func<string, string?, DateTimeOffset, OAuthClient> build, CancellationToken ct)
    {
        if (errors.Count > 0)
        {
            return new(null, null, errors);
        }

        var secret = withSecret ? SecretGenerator.Secret("nxs_") : null;
        var client = build(SecretGenerator.Id("nxc_"), secret is null ? null : hasher.Hash(secret), time.GetUtcNow());
        await registry.CreateAsync(client, ct);
        return new(client, secret, errors);
    }

    /// <summary>Stores a change validated by the caller: NotFound when there is no such client, Revoked when it was revoked (before or meanwhile).</summary>
    protected async Task<ClientUpdate> UpdateAsync(string clientId, Dictionary<string, string[]> errors, Func<OAuthClient, OAuthClient> change, CancellationToken ct)
    {
        if (errors.Count > 0)
        {
            return new(ClientUpdateOutcome.Invalid, null, errors);
        }

        if (await FindAsync(clientId, ct) is not { } client)
        {
            return new(ClientUpdateOutcome.NotFound, null, errors);
        }

        if (client.IsRevoked || !await registry.UpdateAsync(change(client), ct))
        {
            return new(ClientUpdateOutcome.Revoked, client, errors);
        }

        return new(ClientUpdateOutcome.Updated, await registry.FindAsync(client.ClientId, ct), errors);
    }

    /// <summary>The access token lifetime a request may choose: 60 s to Nexus:MaxAccessTokenLifetimeSeconds.</summary>
    protected void CheckLifetime(int? lifetime, Dictionary<string, string[]> errors)
    {
        if (lifetime is { } seconds && (seconds < 60 || seconds > options.MaxAccessTokenLifetimeSeconds))
        {
            errors["access_token_lifetime_seconds"] = [$"Choose between 60 and {options.MaxAccessTokenLifetimeSeconds} seconds."];
        }
    }

    protected static string[] Distinct(IEnumerable<string> values) => values.Distinct(StringComparer.Ordinal).ToArray();
}

/// <summary>A client just created with its secret (shown once; null for a public application), or the field errors.</summary>
internal sealed record ClientCreation(OAuthClient? Client, string? Secret, Dictionary<string, string[]> Errors)
{
    /// <summary>The admin API's answer: 201 with the client at its URL under <paramref name="collection"/>, or 400 with the field errors.</summary>
    public Results<Created<T>, ProblemHttpResult> ToResult<T>(string collection, Func<OAuthClient, string?, T> response) =>
        Client is null ? Problems.TypedValidation(Errors) : TypedResults.Created($"{collection}/{Client.ClientId}", response(Client, Secret));
}

internal enum ClientUpdateOutcome
{
    Updated,
    Invalid,
    NotFound,
    Revoked,
}

/// <summary>The outcome of a change: the client as stored now when Updated, the field errors when Invalid.</summary>
internal sealed record ClientUpdate(ClientUpdateOutcome Outcome, OAuthClient? Client, Dictionary<string, string[]> Errors)
{
    /// <summary>The admin API's answer: 200 with the client, 400 with the field errors, 404, or 409 client_revoked.</summary>
    public Results<Ok<T>, ProblemHttpResult> ToResult<T>(string what, string revokedMessage, Func<OAuthClient, T> response) => Outcome switch
    {
        ClientUpdateOutcome.Invalid => Problems.TypedValidation(Errors),
        ClientUpdateOutcome.NotFound => Problems.TypedNotFound(what),
        ClientUpdateOutcome.Revoked => Problems.Typed(ProblemCatalog.ClientRevoked, title: revokedMessage),
        _ => TypedResults.Ok(response(Client!)),
    };
}
