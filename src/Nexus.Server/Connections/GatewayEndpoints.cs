using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Nexus.Server.ApiKeys;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using Nexus.Server.Vault;

namespace Nexus.Server.Connections;

/// <summary>Contract of POST /v1/request-connection.</summary>
internal sealed record RequestConnectionRequest(string? WorkspaceId, string? ProviderName, string[]? Scopes, string? ReturnUrl,
    Dictionary<string, string?>? ConnectionConfig = null);

/// <summary>Contract of POST /v1/connections/{id}/reconnect: both optional (the connection's scopes and return_url by default).</summary>
internal sealed record ReconnectRequest(string[]? Scopes, string? ReturnUrl);

/// <summary>The last thing that went wrong with a connection, in plain words; never a secret.</summary>
internal sealed record ConnectionErrorResponse(string Code, string Message);

internal sealed record RequestConnectionResponse(string AuthUrl, string ConnectionId);

/// <summary>POST /v1/request-connection for a machine-to-machine MCP server: no auth_url, the connection is active.</summary>
internal sealed record MachineConnectionResponse(string? AuthUrl, string ConnectionId, string Status);

/// <summary>GET /v1/connections: one page, and the cursor of the next (null on the last page).</summary>
internal sealed record ConnectionList(IEnumerable<ConnectionResponse> Connections, string? NextCursor);

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
    /// <summary>The per-connection values of the provider's URLs ({shop}, {instance}, {dc}); absent when there are none.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, string>? ConnectionConfig { get; init; }

    /// <summary>The scopes the provider granted (its token response's scope), else the requested ones once active.</summary>
    public IReadOnlyList<string>? GrantedScopes { get; init; }

    /// <summary>When a refresh last succeeded.</summary>
    public long? LastRefreshedAt { get; init; }

    /// <summary>When Nexus next refreshes (or retries) the token; null when nothing is scheduled.</summary>
    public long? NextRefreshAt { get; init; }

    /// <summary>Transient refresh failures in a row (0 when healthy).</summary>
    public long ConsecutiveFailures { get; init; }

    /// <summary>The last error: a failing refresh's, or why the connection stopped; null when none.</summary>
    public ConnectionErrorResponse? LastError { get; init; }

    /// <summary>True while a reconnect waits for the person's consent (the current tokens still work meanwhile).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool Reconnecting { get; init; }

    /// <summary>
    /// expires_at: while pending, when the consent window closes; when active, when the stored access token
    /// expires (absent when the provider's tokens do not expire).
    /// </summary>
    public static ConnectionResponse From(Connection c) => new(
        c.Id, c.Status, c.ProviderName, c.WorkspaceId, c.ScopeList, c.CreatedAt / 1000, c.UpdatedAt / 1000,
        c.Status == ConnectionStatus.Pending ? c.StateExpiresAt / 1000 : c.TokenExpiresAt / 1000, c.Error, c.ErrorDescription)
    {
        ConnectionConfig = c.ConnectionConfig is null ? null : c.Values,
        GrantedScopes = c.GrantedScopes is { } granted ? granted.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            : c.Status is ConnectionStatus.Active or ConnectionStatus.AttentionRequired ? c.ScopeList : null,
        LastRefreshedAt = c.LastRefreshedAt / 1000,
        // 0 means "not scheduled yet" (the background refresher computes it on its next pass).
        NextRefreshAt = c.Status == ConnectionStatus.Active && c.NextRefreshAt is > 0 ? c.NextRefreshAt / 1000 : null,
        ConsecutiveFailures = c.RefreshFailures,
        LastError = c.RefreshError is { } code ? new ConnectionErrorResponse(code, c.RefreshErrorDescription ?? "Refreshing the token failed; Nexus retries.")
            : c.Status is ConnectionStatus.AttentionRequired or ConnectionStatus.Failed && c.Error is { } error
                ? new ConnectionErrorResponse(error, c.ErrorDescription ?? (c.Status == ConnectionStatus.Failed ? "The connection failed." : "The user must connect again."))
                : null,
        Reconnecting = c.ReconnectScopes is not null,
    };
}

/// <summary>What the gateway's routes on one connection take: its id from the route, the caller's key, and the services.</summary>
internal readonly record struct ConnectionRequest(string ConnectionId, Caller Caller, [property: FromServices] ConnectionStore Store, [property: FromServices] ConnectionService Connections, CancellationToken Ct);

/// <summary>
/// The gateway API apps and agents call with X-API-Key. A key bound to other workspaces gets 404 for a
/// connection outside them, exactly as for a connection that does not exist, so ids cannot be probed.
/// </summary>
internal static class GatewayEndpoints
{
    public const string CallbackPath = "/auth/callback";

    public static void MapGateway(this IEndpointRouteBuilder app)
    {
        // A gateway API key on every route of the group (NexusPolicies.GatewayApiKey); handlers take the Caller.
        var gateway = app.MapGatewayGroup().WithTags("Connections");
        gateway.MapPost("/v1/request-connection", RequestConnectionAsync);
        gateway.MapGet("/v1/connections", ListAsync);
        gateway.MapGet("/v1/connections/{connectionId}", GetAsync);
        gateway.MapDelete("/v1/connections/{connectionId}", DeleteAsync);
        gateway.MapPost("/v1/connections/{connectionId}/reconnect", ReconnectAsync);
        // The broker's hot path keeps a documented short-circuit (issue 13, item 2, like the Bridge): GET /v1/token is
        // a plain route without the GatewayApiKey policy, and CredentialEndpoint identifies the key itself with the same
        // GatewayAuthenticator and the same 401 as the policy's ApiKey scheme. Running the authentication and
        // authorization middleware for it halved its throughput (bench/token-read.sh, docs/benchmarks.md);
        // RouteSecurityTests and AuthorizationPolicyTests cover the route like every other.
        app.MapGet("/v1/token/{connectionId}", CredentialEndpoint.ReadAsync).WithTags("Connections").WithoutSession();
        app.MapCredentialCapture();
        app.MapConnectionValuesPage();
    }

    private static async Task<Results<Created<RequestConnectionResponse>, Created<MachineConnectionResponse>, ProblemHttpResult>> RequestConnectionAsync(HttpContext context, Caller caller, ProviderRegistry providers, ConnectionService connections,
        ReturnUrlPolicy returnUrls)
    {
        var ct = context.RequestAborted;
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

        if (body.Scopes is not null && !ScopeSyntax.IsValidList(body.Scopes))
        {
            errors["scopes"] = [ScopeSyntax.ListRule];
        }

        if (body.ReturnUrl is null)
        {
            errors["return_url"] = ["return_url is required: where Nexus sends the user's browser after consent."];
        }

        if (body.ConnectionConfig is { Count: > 20 })
        {
            errors["connection_config"] = ["At most 20 values."];
        }

        if (errors.Count > 0)
        {
            return Problems.TypedValidation(errors);
        }

        if (returnUrls.Check(body.ReturnUrl) is { } notAllowed)
        {
            return Problems.Typed(ProblemCatalog.ReturnUrlNotAllowed, notAllowed);
        }

        if (!caller.CanAccess(body.WorkspaceId!))
        {
            return Problems.Typed(ProblemCatalog.WorkspaceNotAllowed,
                "Use a key created for this workspace (POST /v1/admin/api-keys).");
        }

        var provider = ProviderNames.IsValid(body.ProviderName) ? await providers.FindAsync(body.ProviderName!, ct) : null;
        if (provider is null)
        {
            return Problems.Typed(ProblemCatalog.UnknownProvider,
                "Register it first with POST /v1/providers; GET /v1/providers lists the registered ones.", title: $"There is no provider named '{body.ProviderName}'.");
        }

        var (values, valueErrors) = connections.CheckValues(provider, body.ConnectionConfig, "connection_config");
        if (values is null)
        {
            return Problems.TypedValidation(valueErrors);
        }

        if (provider.Config.Mcp?.IsClientCredentials == true)
        {
            // A machine-to-machine MCP server: no consent, the connection is active at once (or the grant was refused).
            var (machineId, result) = await connections.CreateMachineAsync(provider, body.WorkspaceId!, body.Scopes, body.ReturnUrl!, caller.Actor, ct);
            return result.Succeeded
                ? TypedResults.Created($"/v1/connections/{machineId}", new MachineConnectionResponse(null, machineId, ConnectionStatus.Active))
                : Problems.Typed(ProblemCatalog.TokenRequestFailed, ProviderClient.Describe(result.Error, result.ErrorDescription),
                    new Dictionary<string, object?> { ["connection_id"] = machineId });
        }

        var (authUrl, id) = await connections.CreatePendingAsync(provider, body.WorkspaceId!, body.Scopes, body.ReturnUrl!, caller.Actor, ct, values);
        return TypedResults.Created($"/v1/connections/{id}", new RequestConnectionResponse(authUrl, id));
    }

    private static async Task<Results<Ok<ConnectionResponse>, ProblemHttpResult>> GetAsync([AsParameters] ConnectionRequest request)
    {
        var connection = await request.Store.FindAsync(request.ConnectionId, request.Ct);
        if (connection is null || !request.Caller.CanAccess(connection.WorkspaceId))
        {
            return Problems.TypedNotFound("Connection");
        }

        connection = await request.Connections.ExpireIfStaleAsync(connection);
        return TypedResults.Ok(ConnectionResponse.From(connection));
    }

    private static async Task<Results<Ok<ConnectionList>, ProblemHttpResult>> ListAsync(HttpContext context, Caller caller, ConnectionService connectionService)
    {
        var query = context.Request.Query;
        string? One(string name) => query[name].Count == 1 && query[name][0] is { Length: > 0 } v ? v : null;
        var workspaceId = One("workspace_id");
        var status = One("status");
        var providerName = One("provider");
        var limit = 100;
        if (One("limit") is { } l && (!int.TryParse(l, out limit) || limit is < 1 or > 1000))
        {
            return Problems.TypedValidation(new Dictionary<string, string[]> { ["limit"] = ["limit is 1 to 1000."] });
        }

        if (status is not null and not (ConnectionStatus.Pending or ConnectionStatus.Active or ConnectionStatus.AttentionRequired or ConnectionStatus.Failed))
        {
            return Problems.TypedValidation(new Dictionary<string, string[]> { ["status"] = ["status is pending, active, attention_required or failed."] });
        }

        if (providerName is not null && !ProviderNames.IsValid(providerName))
        {
            return Problems.TypedValidation(new Dictionary<string, string[]> { ["provider"] = ["provider is the name of a registered provider (lowercase letters, digits, '_' or '-')."] });
        }

        (long, string)? after = null;
        if (One("cursor") is { } cursor)
        {
            if (ConnectionCursor.Decode(cursor) is not { } position)
            {
                return Problems.TypedValidation(new Dictionary<string, string[]> { ["cursor"] = ["cursor is a next_cursor value from an earlier page of this list."] });
            }

            after = position;
        }

        IReadOnlyCollection<string>? workspaces;
        if (workspaceId is not null)
        {
            // Another workspace's connections are invisible, as if the workspace had none and did not exist.
            if (!caller.CanAccess(workspaceId))
            {
                return Problems.TypedNotFound("Workspace");
            }

            workspaces = [workspaceId];
        }
        else
        {
            workspaces = caller.Workspaces?.ToArray();
        }

        // One row more than asked tells whether there is a next page.
        var connections = await connectionService.ListAsync(workspaces, status, providerName, after, limit + 1, context.RequestAborted);
        var page = connections.Take(limit).ToList();
        var next = connections.Count > limit ? ConnectionCursor.Encode(page[^1].CreatedAt, page[^1].Id) : null;
        return TypedResults.Ok(new ConnectionList(page.Select(ConnectionResponse.From), next));
    }

    /// <summary>
    /// POST /v1/connections/{id}/reconnect: a new auth_url for the same connection id. The current tokens keep working
    /// until the person completes the new consent; then they are replaced and revoked at the provider. A
    /// machine-to-machine MCP server's connection has nobody to consent: it gets a new token at once, and the answer
    /// is its status without auth_url (or 502 token_request_failed), as POST /v1/request-connection answers.
    /// </summary>
    private static async Task<Results<Ok<RequestConnectionResponse>, Ok<MachineConnectionResponse>, ProblemHttpResult>> ReconnectAsync([AsParameters] ConnectionRequest request, HttpContext context, ReturnUrlPolicy returnUrls)
    {
        var (connectionId, caller, store, connections, ct) = request;
        ReconnectRequest body;
        if (context.Request.ContentLength is 0 || (context.Request.ContentLength is null && !context.Request.Headers.ContainsKey("Transfer-Encoding")))
        {
            body = new ReconnectRequest(null, null);
        }
        else
        {
            var (read, error) = await JsonBody.ReadAsync<ReconnectRequest>(context.Request, ct);
            if (error is not null)
            {
                return error;
            }

            body = read!;
        }

        if (body.Scopes is not null && !ScopeSyntax.IsValidList(body.Scopes))
        {
            return Problems.TypedValidation(new Dictionary<string, string[]>
            {
                ["scopes"] = [ScopeSyntax.ListRule],
            });
        }

        var connection = await store.FindAsync(connectionId, ct);
        if (connection is null || !caller.CanAccess(connection.WorkspaceId))
        {
            return Problems.TypedNotFound("Connection");
        }

        var returnUrl = body.ReturnUrl ?? connection.ReturnUrl;
        if (returnUrls.Check(returnUrl) is { } notAllowed)
        {
            return Problems.Typed(ProblemCatalog.ReturnUrlNotAllowed, notAllowed);
        }

        var started = await connections.ReconnectAsync(connection, body.Scopes, returnUrl, caller.Actor, ct);
        return started.Refusal switch
        {
            ReconnectRefusal.ProviderMissing => Problems.Typed(ProblemCatalog.ProviderMissing, title: "The provider of this connection no longer exists."),
            ReconnectRefusal.NotOAuth => Problems.Typed(ProblemCatalog.NotAnOAuthConnection,
                "Replace the credentials in place with POST /v1/connections/{id}/credentials."),
            ReconnectRefusal.Gone => Problems.TypedNotFound("Connection"),
            ReconnectRefusal.TokenRequestFailed => Problems.Typed(ProblemCatalog.TokenRequestFailed, ProviderClient.Describe(started.Error, started.ErrorDescription),
                new Dictionary<string, object?> { ["connection_id"] = connection.Id, ["connection_status"] = started.Status }),
            _ when started.AuthUrl is null => TypedResults.Ok(new MachineConnectionResponse(null, connection.Id, started.Status!)),
            _ => TypedResults.Ok(new RequestConnectionResponse(started.AuthUrl, connection.Id)),
        };
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync([AsParameters] ConnectionRequest request)
    {
        var (connectionId, caller, store, connections, ct) = request;
        var connection = await store.FindAsync(connectionId, ct);
        if (connection is null || !caller.CanAccess(connection.WorkspaceId))
        {
            return Problems.TypedNotFound("Connection");
        }

        await connections.RevokeAsync(connection, caller.Actor, ct);
        return TypedResults.NoContent();
    }
}

/// <summary>
/// The opaque cursor of GET /v1/connections: the position (created_at, id) of the last row of a page, base64url.
/// Not a secret and not signed: a made-up cursor only moves the caller within the rows it may see anyway.
/// </summary>
internal static class ConnectionCursor
{
    public static string Encode(long createdAt, string id) =>
        SecretGenerator.Base64Url(System.Text.Encoding.UTF8.GetBytes($"v1:{createdAt.ToString(System.Globalization.CultureInfo.InvariantCulture)}:{id}"));

    public static (long CreatedAt, string Id)? Decode(string cursor)
    {
        if (cursor.Length > 200)
        {
            return null;
        }

        try
        {
            var padded = cursor.Replace('-', '+').Replace('_', '/');
            padded += new string('=', (4 - (padded.Length % 4)) % 4);
            var parts = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(padded)).Split(':', 3);
            return parts.Length == 3 && parts[0] == "v1" && long.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var at)
                && parts[2].Length is > 0 and <= 100 ? (at, parts[2]) : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
