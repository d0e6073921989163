using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using Nexus.Server.ApiKeys;
using Nexus.Server.Connections;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Credentials;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Bridge;

/// <summary>
/// The Bridge: <c>/v1/bridge/{connection_id}/{path}</c>, or <c>/v1/proxy/{path}</c> with a Nexus-Connection-Id header
/// for agents that prefer a fixed base URL. Any gateway API key may use it, including bridge-only keys
/// (can_read_credentials=false), so an agent can call a provider's API without ever holding a secret.
/// </summary>
internal static class BridgeEndpoints
{
    public const string BridgePrefix = "/v1/bridge/";
    public const string ProxyPrefix = "/v1/proxy";
    public const string ConnectionHeader = "Nexus-Connection-Id";

    /// <summary>Issue 15: the provider's further resource (Entra: graph, sharepoint, …) whose token the request carries.</summary>
    public const string ResourceHeader = "Nexus-Resource";

    public static void MapBridgeRoutes(this IEndpointRouteBuilder app)
    {
        // ShortCircuit: routing runs these as soon as it matches them, past the rest of the pipeline. The Bridge
        // authenticates its callers itself (gateway API keys, never the dashboard's cookie), passes the provider's
        // answers through untouched (no status code pages), and handles its own errors (GuardAsync), so the
        // middleware it skips had nothing to do for it but cost every bridged request its time.
        app.Map("/v1/bridge/{connectionId}/{**path}", (HttpContext context, string connectionId) => GuardAsync(context, connectionId, BridgePrefix + connectionId)).WithTags("Bridge").ShortCircuit();
        app.Map("/v1/bridge/{connectionId}", (HttpContext context, string connectionId) => GuardAsync(context, connectionId, BridgePrefix + connectionId)).WithTags("Bridge").ShortCircuit();
        app.Map("/v1/proxy/{**path}", (HttpContext context) => GuardAsync(context, context.Request.Headers[ConnectionHeader].ToString(), ProxyPrefix)).WithTags("Bridge").ShortCircuit();
    }

    /// <summary>What UseExceptionHandler does for every other endpoint, which a short-circuited one never reaches.</summary>
    private static async Task GuardAsync(HttpContext context, string connectionId, string rawPrefix)
    {
        try
        {
            await ForwardAsync(context, connectionId, rawPrefix);
        }
        catch (Exception e) when ((e is OperationCanceledException or IOException) && context.RequestAborted.IsCancellationRequested)
        {
            // The caller hung up, which is what the exception says; as UseExceptionHandler would, let it go quietly.
        }
        catch (Exception e) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            // A provider's status and headers may already be on the response; they must not describe this error.
            context.Response.Clear();
            foreach (var handler in context.RequestServices.GetServices<IExceptionHandler>())
            {
                if (await handler.TryHandleAsync(context, e, context.RequestAborted))
                {
                    return;
                }
            }

            throw;
        }
    }

    // One parsed Uri per provider row (the registry hands out the same row until it changes), not one per request.
    private static readonly ConditionalWeakTable<Provider, StrongBox<Uri?>> ApiBases = new();

    private static Uri? ApiBaseOf(Provider provider) => ApiBases.GetValue(provider, static p => new StrongBox<Uri?>(
        p.Config.ApiBaseUrl is { } apiBase && !apiBase.Contains('{', StringComparison.Ordinal) && Uri.TryCreate(apiBase, UriKind.Absolute, out var uri) ? uri : null)).Value;

    private static async Task ForwardAsync(HttpContext context, string connectionId, string rawPrefix)
    {
        var services = context.RequestServices;
        var ct = context.RequestAborted;
        // The Bridge's short-circuit (issue 13, item 2): a plain request delegate on the hot path, so it identifies the
        // gateway key itself with the same GatewayAuthenticator (and the same 401) as the ApiKey scheme behind the
        // gateway policy; RouteSecurityTests covers its three routes like every other.
        var (caller, authError) = await services.GetRequiredService<GatewayAuthenticator>().AuthenticateAsync(context);
        if (caller is null)
        {
            await authError!.ExecuteAsync(context);
            return;
        }

        // The path after the prefix, exactly as the caller sent it (still percent-encoded), so that encoded
        // tricks are seen and refused rather than decoded into something else.
        var raw = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
        var query = raw.IndexOf('?', StringComparison.Ordinal);
        var rawPath = query < 0 ? raw : raw[..query];
        if (!rawPath.StartsWith(rawPrefix, StringComparison.Ordinal))
        {
            // Routing matched a normalised, case-insensitive form (/V1/BRIDGE/…, an encoded or dot-segmented
            // connection id, an absolute-form target): what the caller wrote cannot be split into prefix and path
            // with certainty, and guessing would send the request, credential and all, somewhere it did not ask for.
            await Problems.Create(ProblemCatalog.BridgePathRefused,
                $"Write the path as {rawPrefix}/… exactly: lower case, the connection id unencoded, no dot segments.").ExecuteAsync(context);
            return;
        }

        if (string.IsNullOrEmpty(connectionId))
        {
            await Problems.Create(ProblemCatalog.ConnectionIdMissing, $"Send the {ConnectionHeader} header, or use {BridgePrefix}{{connection_id}}/….").ExecuteAsync(context);
            return;
        }

        var store = services.GetRequiredService<ConnectionStore>();
        var connection = await store.FindCachedAsync(connectionId, ct);
        if (connection is null || !caller.CanAccess(connection.WorkspaceId))
        {
            await Problems.NotFound("Connection").ExecuteAsync(context);
            return;
        }

        await ForwardToConnectionAsync(context, connection, rawPath[rawPrefix.Length..]);
    }

    /// <summary>
    /// Sends the request on <paramref name="context"/> to the connection's provider with its credential, and writes the
    /// answer (or a problem) to the context's response. The caller has already decided that it may use the connection:
    /// the gateway routes above by API key, the MCP <c>call_api</c> tool by the person the token speaks for.
    /// </summary>
    public static async Task ForwardToConnectionAsync(HttpContext context, Connection connection, string rawPath)
    {
        var services = context.RequestServices;
        var ct = context.RequestAborted;
        if (connection.TokenType != CredentialCapture.TokenType)
        {
            // Same rule as GET /v1/token: a token inside its refresh margin is refreshed before it is used.
            var fresh = await services.GetRequiredService<Connections.Refresh.ConnectionRefresher>().EnsureFreshAsync(connection, ct);
            if (fresh.Problem is not null)
            {
                await fresh.Problem.ExecuteAsync(context);
                return;
            }

            connection = fresh.Connection!;
        }

        if (connection.Status != ConnectionStatus.Active || connection.AccessToken is null)
        {
            // The same 409 as GET /v1/token: status, connection_id, error and detail.
            connection = await services.GetRequiredService<ConnectionService>().ExpireIfStaleAsync(connection);
            await ConnectionProblems.NotActive(connection).ExecuteAsync(context);
            return;
        }

        var provider = await services.GetRequiredService<ProviderRegistry>().FindCachedAsync(connection.ProviderName, ct);
        if (context.Request.Headers[ResourceHeader] is { Count: > 0 } resourceHeader && provider is not null)
        {
            await ForwardForResourceAsync(context, connection, provider, resourceHeader.ToString(), rawPath);
            return;
        }

        // A base URL with per-connection values ({shop}, {instance}, {dc}) is the connection's own (issue 17); the
        // values were checked against the declared host when they were stored.
        var apiBaseUri = provider is null ? null
            : ConnectionValues.Declared(provider).Count == 0 ? ApiBaseOf(provider)
            : ConnectionValues.Apply(provider, connection.Values).Config.ApiBaseUrl is { } filled && !ConnectionValues.IsTemplated(filled)
                && Uri.TryCreate(filled, UriKind.Absolute, out var filledUri) ? filledUri : null;
        if (apiBaseUri is null)
        {
            await Problems.Create(ProblemCatalog.NoApiBaseUrl,
                provider is not null && ConnectionValues.Declared(provider).Count > 0
                    ? "This connection lacks a value its provider's api_base_url needs; reconnect it (POST /v1/connections/{id}/reconnect)."
                    : "Set api_base_url on the provider (PATCH /v1/providers/{name}).").ExecuteAsync(context);
            return;
        }

        var decoded = services.GetRequiredService<ConnectionCredentials>().For(connection, provider!);
        if (decoded.Stored.Credential is not { } credential)
        {
            await decoded.Stored.Problem!.ToProblem().ExecuteAsync(context);
            return;
        }

        if (decoded.Stored.Role is { } role && credential is UpstreamCredential.AwsSigV4 aws)
        {
            // An aws_sigv4 connection with a role signs with the role's temporary credentials (AwsRoleCredentials).
            try
            {
                var assumed = await services.GetRequiredService<AwsRoleCredentials>().GetAsync(connection.Id, decoded.RoleKey!, role, aws.Credentials, ct);
                credential = aws with { Credentials = assumed.Credentials };
            }
            catch (AwsRoleException e)
            {
                await e.ToProblem().ExecuteAsync(context);
                return;
            }
        }

        var refresh = credential is UpstreamCredential.Bearer ? services.GetService<IBridgeTokenRefresher>() : null;
        var stepUp = provider!.AuthMode == AuthModes.McpOAuth2 ? services.GetRequiredService<RemoteMcp.McpStepUp>() : null;
        var target = new BridgeTarget(apiBaseUri, credential, refresh is null ? null : async token =>
            await refresh.RefreshAsync(connection.Id, token) is { } fresh ? ((UpstreamCredential.Bearer)credential) with { AccessToken = fresh } : null,
            stepUp is null ? null : (scope, token) => stepUp.StartAsync(connection, provider, scope, token));

        await services.GetRequiredService<BridgeForwarder>().ForwardAsync(context, target, rawPath);
    }

    /// <summary>
    /// A request with the <see cref="ResourceHeader"/>: sent with that resource's token (minted from the connection's
    /// refresh token, issue 15) to the resource's base URL (or the provider's), and after a 401 with a newly minted one.
    /// </summary>
    private static async Task ForwardForResourceAsync(HttpContext context, Connection connection, Provider provider, string resourceName, string rawPath)
    {
        var services = context.RequestServices;
        var tokens = services.GetRequiredService<ResourceTokens>();
        var minted = await tokens.GetAsync(connection, resourceName, force: false, context.RequestAborted);
        if (minted.Problem is not null)
        {
            await minted.Problem.ExecuteAsync(context);
            return;
        }

        var baseUrl = minted.Resource!.ApiBaseUrl ?? ConnectionValues.Apply(provider, connection.Values).Config.ApiBaseUrl;
        if (baseUrl is null || ConnectionValues.IsTemplated(baseUrl) || !Uri.TryCreate(baseUrl, UriKind.Absolute, out var baseUri))
        {
            await Problems.Create(ProblemCatalog.NoApiBaseUrl, "Set api_base_url on the provider or the resource.",
                title: "The resource has no usable API base URL for the Bridge.").ExecuteAsync(context);
            return;
        }

        var target = new BridgeTarget(baseUri, new UpstreamCredential.Bearer(minted.Token!.AccessToken), async token =>
            (await tokens.GetAsync(connection, resourceName, force: true, token)).Token is { } fresh ? new UpstreamCredential.Bearer(fresh.AccessToken) : null, null);
        await services.GetRequiredService<BridgeForwarder>().ForwardAsync(context, target, rawPath);
    }
}

/// <summary>How the Bridge obtains a fresh access token after a provider answered 401.</summary>
internal interface IBridgeTokenRefresher
{
    Task<string?> RefreshAsync(string connectionId, CancellationToken ct);
}

internal static class BridgeExtensions
{
    public static WebApplicationBuilder AddBridge(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<BridgeForwarder>();
        builder.Services.AddSingleton<IBridgeTokenRefresher, RefreshingBridgeTokens>();
        return builder;
    }

    public static WebApplication MapBridge(this WebApplication app)
    {
        app.MapBridgeRoutes();
        return app;
    }
}
