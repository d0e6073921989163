using Nexus.Server.ApiKeys;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

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
        app.MapPost("/v1/request-connection", RequestConnectionAsync).WithTags("Connections").WithoutSession();
        app.MapGet("/v1/connections", ListAsync).WithTags("Connections").WithoutSession();
        app.MapGet("/v1/connections/{connectionId}", GetAsync).WithTags("Connections").WithoutSession();
        app.MapDelete("/v1/connections/{connectionId}", DeleteAsync).WithTags("Connections").WithoutSession();
        app.MapGet("/v1/token/{connectionId}", CredentialEndpoint.ReadAsync).WithTags("Connections").WithoutSession();
        app.MapCredentialCapture();
    }

    private static async Task<IResult> RequestConnectionAsync(HttpContext context, GatewayAuthenticator auth, ProviderRegistry providers, ConnectionService connections,
        ReturnUrlPolicy returnUrls)
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

        var (authUrl, id) = await connections.CreatePendingAsync(provider, body.WorkspaceId!, body.Scopes, body.ReturnUrl!, caller.Actor, ct);
        return TypedResults.Created($"/v1/connections/{id}", new RequestConnectionResponse(authUrl, id));
    }

    private static async Task<IResult> GetAsync(string connectionId, HttpContext context, GatewayAuthenticator auth, ConnectionStore store, ConnectionService connections)
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

        connection = await connections.ExpireIfStaleAsync(connection);
        return TypedResults.Ok(ConnectionResponse.From(connection));
    }

    private static async Task<IResult> ListAsync(HttpContext context, GatewayAuthenticator auth, ConnectionService connectionService)
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

        var connections = await connectionService.ListAsync(workspaces, status, limit, context.RequestAborted);
        return TypedResults.Ok(new { connections = connections.Select(ConnectionResponse.From) });
    }

    private static async Task<IResult> DeleteAsync(string connectionId, HttpContext context, GatewayAuthenticator auth, ConnectionStore store, ConnectionService connections)
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

        await connections.RevokeAsync(connection, caller.Actor, ct);
        return TypedResults.NoContent();
    }
}
