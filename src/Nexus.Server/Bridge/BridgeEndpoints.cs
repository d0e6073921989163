using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using Nexus.Server.ApiKeys;
using Nexus.Server.Connections;
using Nexus.Server.Hosting;

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

        await BridgeConnection.ForwardAsync(context, connection, rawPath[rawPrefix.Length..]);
    }
}

/// <summary>How the Bridge obtains a fresh access token after a provider answered 401.</summary>
internal interface IBridgeTokenRefresher
{
    /// <param name="rejected">The access token the provider refused: when the connection holds another one by now (a
    /// refresh made after that token was read), that one is the answer, and nothing is refreshed again.</param>
    Task<string?> RefreshAsync(string connectionId, string rejected, CancellationToken ct);
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
