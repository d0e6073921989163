using System.Runtime.CompilerServices;
using Nexus.Server.Connections;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Credentials;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Bridge;

/// <summary>
/// Forwarding a request to a connection's provider, whoever decided the caller may use it: the Bridge's routes
/// (<see cref="BridgeEndpoints"/>, by gateway API key) and the MCP <c>call_api</c> tool (by the person its token
/// speaks for) both call this, so refresh before use, the 409 of a connection that is not active, the per-connection
/// base URL, AWS role credentials, further resources and step-up are one code path.
/// </summary>
internal static class BridgeConnection
{
    // One parsed Uri per provider row (the registry hands out the same row until it changes), not one per request.
    private static readonly ConditionalWeakTable<Provider, StrongBox<Uri?>> ApiBases = new();

    private static Uri? ApiBaseOf(Provider provider) => ApiBases.GetValue(provider, static p => new StrongBox<Uri?>(
        p.Config.ApiBaseUrl is { } apiBase && !apiBase.Contains('{', StringComparison.Ordinal) && Uri.TryCreate(apiBase, UriKind.Absolute, out var uri) ? uri : null)).Value;

    /// <summary>
    /// Sends the request on <paramref name="context"/> to the connection's provider with its credential, and writes the
    /// answer (or a problem) to the context's response. The caller has already decided that it may use the connection:
    /// the gateway routes (<see cref="BridgeEndpoints"/>) by API key, the MCP <c>call_api</c> tool by the person the token speaks for.
    /// </summary>
    /// <param name="stepUp">
    /// Whether an MCP server's 403 insufficient_scope starts a step-up (a new consent round for the person, or a new
    /// client_credentials grant); false passes the 403 on as it came, for a caller that would not show the step-up's
    /// link (listing a person's MCP servers: a round started there would only replace the link they were given).
    /// </param>
    public static async Task ForwardAsync(HttpContext context, Connection connection, string rawPath, bool stepUp = true)
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
        if (context.Request.Headers[BridgeEndpoints.ResourceHeader] is { Count: > 0 } resourceHeader && provider is not null)
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
        var stepUps = stepUp && provider!.AuthMode == AuthModes.McpOAuth2 ? services.GetRequiredService<RemoteMcp.McpStepUp>() : null;
        var target = new BridgeTarget(apiBaseUri, credential, refresh is null ? null : async token =>
            await refresh.RefreshAsync(connection.Id, ((UpstreamCredential.Bearer)credential).AccessToken, token) is { } fresh ? ((UpstreamCredential.Bearer)credential) with { AccessToken = fresh } : null,
            stepUps is null ? null : (scope, canResend, token) => stepUps.StartAsync(connection, provider!, scope, canResend, token));

        await services.GetRequiredService<BridgeForwarder>().ForwardAsync(context, target, rawPath);
    }

    /// <summary>
    /// A request with the <see cref="BridgeEndpoints.ResourceHeader"/>: sent with that resource's token (minted from the connection's
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
