using System.Text.Json;
using Nexus.Server.ApiKeys;
using Nexus.Server.Audit;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Vault;

namespace Nexus.Server.Connections;

/// <summary>Contract of POST /v1/request-connection.</summary>
internal sealed record RequestConnectionRequest(string? WorkspaceId, string? ProviderName, string[]? Scopes, string? ReturnUrl);

internal sealed record RequestConnectionResponse(string AuthUrl, string ConnectionId);

/// <summary>A connection as the gateway shows it. Times are Unix seconds, like the credentials' expires_at.</summary>
internal sealed record ConnectionResponse(
    string ConnectionId,
    string Status,
    string Provider,
    string WorkspaceId,
    IReadOnlyList<string> Scopes,
    long CreatedAt,
    long UpdatedAt,
    long? ExpiresAt,
    string? Error,
    string? ErrorDescription)
{
    /// <summary>
    /// expires_at: while pending, when the consent window closes; when active, when the stored access token
    /// expires (absent when the provider's tokens do not expire).
    /// </summary>
    public static ConnectionResponse From(Connection c) => new(
        c.Id, c.Status, c.ProviderName, c.WorkspaceId, c.ScopeList, c.CreatedAt / 1000, c.UpdatedAt / 1000,
        c.Status == ConnectionStatus.Pending ? c.StateExpiresAt / 1000 : c.TokenExpiresAt / 1000, c.Error, c.ErrorDescription);
}

/// <summary>
/// The gateway API apps and agents call with X-API-Key. A key bound to other workspaces gets 404 for a
/// connection outside them, exactly as for a connection that does not exist, so ids cannot be probed.
/// </summary>
internal static class GatewayEndpoints
{
    public const string CallbackPath = "/auth/callback";
    private const int MaxScopes = 100;

    public static void MapGateway(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/request-connection", RequestConnectionAsync).WithTags("Connections");
        app.MapGet("/v1/connections", ListAsync).WithTags("Connections");
        app.MapGet("/v1/connections/{connectionId}", GetAsync).WithTags("Connections");
        app.MapDelete("/v1/connections/{connectionId}", DeleteAsync).WithTags("Connections");
        app.MapGet("/v1/token/{connectionId}", CredentialEndpoint.ReadAsync).WithTags("Connections");
        app.MapCredentialCapture();
    }

    private static async Task<IResult> RequestConnectionAsync(HttpContext context, GatewayAuthenticator auth, ProviderRegistry providers, ConnectionStore store,
        StateSigner signer, ReturnUrlPolicy returnUrls, AuditLog audit, NexusOptions options, TimeProvider time)
    {
        var ct = context.RequestAborted;
        var (caller, authError) = await auth.AuthenticateAsync(context);
        if (caller is null)
        {
            return authError!;
        }

        var (body, error) = await JsonBody.ReadAsync<RequestConnectionRequest>(context.Request, ct);
        if (error is not null)
        {
            return error;
        }

        var errors = new Dictionary<string, string[]>();
        if (!WorkspaceIds.IsValid(body!.WorkspaceId))
        {
            errors["workspace_id"] = ["workspace_id is required: 1 to 200 letters, digits or _ . : @ + -."];
        }

        if (string.IsNullOrWhiteSpace(body.ProviderName))
        {
            errors["provider_name"] = ["provider_name is required: the name of a provider registered with POST /v1/providers."];
        }

        if (body.Scopes is not null && (body.Scopes.Length > MaxScopes || body.Scopes.Any(s => s is null || !ScopeSyntax.IsValidToken(s))))
        {
            errors["scopes"] = [$"At most {MaxScopes} scopes, each 1 to 200 printable ASCII characters without spaces, quotes or backslashes (RFC 6749 §3.3)."];
        }

        if (body.ReturnUrl is null)
        {
            errors["return_url"] = ["return_url is required: where Nexus sends the user's browser after consent."];
        }

        if (errors.Count > 0)
        {
            return Problems.Validation(errors);
        }

        if (returnUrls.Check(body.ReturnUrl) is { } notAllowed)
        {
            return Problems.Create(StatusCodes.Status400BadRequest, "return_url_not_allowed", "The return_url is not allowed.", notAllowed);
        }

        if (!caller.CanAccess(body.WorkspaceId!))
        {
            return Problems.Create(StatusCodes.Status403Forbidden, "workspace_not_allowed", "This API key may not act for that workspace.",
                "Use a key created for this workspace (POST /v1/admin/api-keys).");
        }

        var provider = ProviderNames.IsValid(body.ProviderName) ? await providers.FindAsync(body.ProviderName!, ct) : null;
        if (provider is null)
        {
            return Problems.Create(StatusCodes.Status400BadRequest, "unknown_provider", $"There is no provider named '{body.ProviderName}'.",
                "Register it first with POST /v1/providers; GET /v1/providers lists the registered ones.");
        }

        var (authUrl, id) = await CreatePendingAsync(provider, body.WorkspaceId!, body.Scopes, body.ReturnUrl!, caller.Actor, store, signer, audit, options, time, ct);
        return TypedResults.Created($"/v1/connections/{id}", new RequestConnectionResponse(authUrl, id));
    }

    /// <summary>Creates a pending connection and the URL that starts its consent (shared by the gateway and the dashboard).</summary>
    public static async Task<(string AuthUrl, string ConnectionId)> CreatePendingAsync(Provider provider, string workspaceId, string[]? requestedScopes, string returnUrl, string actor,
        ConnectionStore store, StateSigner signer, AuditLog audit, NexusOptions options, TimeProvider time, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var id = SecretGenerator.Ulid("conn_", now);
        var nonce = SecretGenerator.Base64Url(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var expiresAt = now.AddSeconds(options.PendingConnectionSeconds);
        var verifier = provider.AuthMode == AuthModes.OAuth2 && provider.Config.UsesPkce ? ProviderClient.NewCodeVerifier() : null;
        var scopes = requestedScopes is null ? provider.Scopes : requestedScopes.Distinct(StringComparer.Ordinal).ToArray();
        var connection = new Connection(id, workspaceId, provider.Name, ConnectionStatus.Pending, string.Join(' ', scopes), returnUrl, nonce,
            expiresAt.ToUnixTimeMilliseconds(), null, verifier is null ? null : store.Encrypt(ConnectionStore.PkceVerifierColumn, id, verifier),
            null, null, null, null, null, null, actor, now.ToUnixTimeMilliseconds(), now.ToUnixTimeMilliseconds());
        await store.InsertAsync(connection, ct);

        var state = signer.Create(id, nonce, expiresAt.ToUnixTimeSeconds());
        // OAuth providers get the user to their consent page; the other modes to Nexus's own credential form.
        var authUrl = provider.AuthMode == AuthModes.OAuth2
            ? ProviderClient.AuthorizationUrl(provider, options.Issuer + CallbackPath, scopes, state, verifier)
            : CredentialCapture.AuthUrl(options, state);
        await audit.RecordAsync(AuditEvents.Requested, actor, connection.WorkspaceId, id,
            new { provider = provider.Name, scopes, pkce = verifier is not null }, ct);
        return (authUrl, id);
    }

    private static async Task<IResult> GetAsync(string connectionId, HttpContext context, GatewayAuthenticator auth, ConnectionStore store, AuditLog audit, TimeProvider time)
    {
        var (caller, authError) = await auth.AuthenticateAsync(context);
        if (caller is null)
        {
            return authError!;
        }

        var connection = await store.FindAsync(connectionId, context.RequestAborted);
        if (connection is null || !caller.CanAccess(connection.WorkspaceId))
        {
            return Problems.NotFound("Connection");
        }

        connection = await ExpireIfStaleAsync(connection, store, audit, time);
        return TypedResults.Ok(ConnectionResponse.From(connection));
    }

    private static async Task<IResult> ListAsync(HttpContext context, GatewayAuthenticator auth, ConnectionStore store, AuditLog audit, TimeProvider time)
    {
        var (caller, authError) = await auth.AuthenticateAsync(context);
        if (caller is null)
        {
            return authError!;
        }

        var query = context.Request.Query;
        string? One(string name) => query[name].Count == 1 && query[name][0] is { Length: > 0 } v ? v : null;
        var workspaceId = One("workspace_id");
        var status = One("status");
        var limit = 100;
        if (One("limit") is { } l && (!int.TryParse(l, out limit) || limit is < 1 or > 1000))
        {
            return Problems.Validation(new Dictionary<string, string[]> { ["limit"] = ["limit is 1 to 1000."] });
        }

        if (status is not null and not (ConnectionStatus.Pending or ConnectionStatus.Active or ConnectionStatus.AttentionRequired or ConnectionStatus.Failed))
        {
            return Problems.Validation(new Dictionary<string, string[]> { ["status"] = ["status is pending, active, attention_required or failed."] });
        }

        IReadOnlyCollection<string>? workspaces;
        if (workspaceId is not null)
        {
            // Another workspace's connections are invisible, as if the workspace had none and did not exist.
            if (!caller.CanAccess(workspaceId))
            {
                return Problems.NotFound("Workspace");
            }

            workspaces = [workspaceId];
        }
        else
        {
            workspaces = caller.Workspaces?.ToArray();
        }

        // Stale pending rows are failed first, so that a status filter sees them as they are.
        foreach (var expired in await store.ExpireStaleAsync(null, null, context.RequestAborted))
        {
            await audit.RecordAsync(AuditEvents.Failed, "system", expired.WorkspaceId, expired.Id, new { error = ConnectionStore.ExpiredError });
        }

        var connections = await store.ListAsync(workspaces, status, limit, context.RequestAborted);
        return TypedResults.Ok(new { connections = connections.Select(ConnectionResponse.From) });
    }

    private static async Task<IResult> DeleteAsync(string connectionId, HttpContext context, GatewayAuthenticator auth, ConnectionStore store,
        ProviderRegistry providers, ProviderClient client, AuditLog audit, ConnectionNotifier notifier)
    {
        var ct = context.RequestAborted;
        var (caller, authError) = await auth.AuthenticateAsync(context);
        if (caller is null)
        {
            return authError!;
        }

        var connection = await store.FindAsync(connectionId, ct);
        if (connection is null || !caller.CanAccess(connection.WorkspaceId))
        {
            return Problems.NotFound("Connection");
        }

        await RevokeAsync(connection, caller.Actor, store, providers, client, audit, notifier, ct);
        return TypedResults.NoContent();
    }

    /// <summary>
    /// Revokes a connection's tokens at the provider where it can (best effort) and deletes the connection; the audit
    /// log keeps the record. Shared by DELETE /v1/connections/{id} and the dashboard's Revoke.
    /// </summary>
    public static async Task RevokeAsync(Connection connection, string actor, ConnectionStore store, ProviderRegistry providers, ProviderClient client, AuditLog audit,
        ConnectionNotifier notifier, CancellationToken ct)
    {
        var revocation = connection.TokenType == CredentialCapture.TokenType ? "credentials_deleted" : "no_tokens";
        if (connection.TokenType != CredentialCapture.TokenType && (connection.AccessToken is not null || connection.RefreshToken is not null))
        {
            var provider = await providers.FindAsync(connection.ProviderName, ct);
            revocation = provider is null
                ? "provider_missing"
                : await client.RevokeAsync(provider,
                    connection.AccessToken is { } a ? store.Decrypt(ConnectionStore.AccessTokenColumn, connection.Id, a) : null,
                    connection.RefreshToken is { } r ? store.Decrypt(ConnectionStore.RefreshTokenColumn, connection.Id, r) : null, ct);
        }

        // The tokens go with the row; the audit log keeps the record that the connection existed.
        if (await store.DeleteAsync(connection.Id, ct))
        {
            audit.ForgetConnection(connection.Id);
            await audit.RecordAsync(AuditEvents.Revoked, actor, connection.WorkspaceId, connection.Id,
                new { provider = connection.ProviderName, previous_status = connection.Status, provider_revocation = revocation }, ct);
            await notifier.RevokedAsync(connection.Id, connection.WorkspaceId, connection.ProviderName, connection.Status, revocation);
        }
    }

    /// <summary>Fails a pending connection whose consent window closed (lazily, on read) and records it.</summary>
    public static async Task<Connection> ExpireIfStaleAsync(Connection connection, ConnectionStore store, AuditLog audit, TimeProvider time)
    {
        if (!connection.IsStalePending(time.GetUtcNow().ToUnixTimeMilliseconds()))
        {
            return connection;
        }

        foreach (var expired in await store.ExpireStaleAsync(null, connection.Id, CancellationToken.None))
        {
            await audit.RecordAsync(AuditEvents.Failed, "system", expired.WorkspaceId, expired.Id, new { error = ConnectionStore.ExpiredError });
        }

        return await store.FindAsync(connection.Id, CancellationToken.None) ?? connection;
    }
}
