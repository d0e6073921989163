using System.Text.Json;
using Nexus.Server.ApiKeys;
using Nexus.Server.Audit;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Hosting;

namespace Nexus.Server.Connections;

/// <summary>
/// GET /v1/token/{connection_id}: the credential an app or agent uses now. The hot path of the broker, so it
/// touches no database when warm (API key and connection row come from short-lived caches), decrypts one value
/// and writes the JSON straight into the response. Never returns a refresh token.
/// </summary>
internal static class CredentialEndpoint
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static async Task ReadAsync(string connectionId, HttpContext context, GatewayAuthenticator auth, ConnectionStore store, ConnectionRefresher refresher,
        AuditLog audit, ConnectionService connections, Providers.ProviderRegistry providers, Observability.NexusMetrics metrics)
    {
        try
        {
            // The short-circuit of the hot path (see GatewayEndpoints.MapGateway): the key is identified here, not by the
            // GatewayApiKey policy, with the same cached lookup and the same 401.
            var (caller, authError) = await auth.AuthenticateAsync(context);
            if (caller is null)
            {
                await authError!.ExecuteAsync(context);
                return;
            }

            await ReadCoreAsync(connectionId, context, caller, store, refresher, audit, connections, providers);
        }
        finally
        {
            metrics.CredentialRead(context.Response.StatusCode);
        }
    }

    private static async Task ReadCoreAsync(string connectionId, HttpContext context, Caller caller, ConnectionStore store, ConnectionRefresher refresher,
        AuditLog audit, ConnectionService connections, Providers.ProviderRegistry providers)
    {
        if (!caller.CanReadCredentials)
        {
            await Problems.Create(ProblemCatalog.CredentialsNotReadable,
                "It was created with can_read_credentials=false (a Bridge-only key). Use a key that may read credentials.").ExecuteAsync(context);
            return;
        }

        var connection = await store.FindCachedAsync(connectionId, context.RequestAborted);
        if (connection is null || !caller.CanAccess(connection.WorkspaceId))
        {
            await Problems.NotFound("Connection").ExecuteAsync(context);
            return;
        }

        // A token within its refresh margin is refreshed first (Connections/Refresh); a rejected refresh makes the
        // connection attention_required (the 409 below), an unreachable provider with an expired token a 503.
        var fresh = await refresher.EnsureFreshAsync(connection, context.RequestAborted);
        if (fresh.Problem is not null)
        {
            await fresh.Problem.ExecuteAsync(context);
            return;
        }

        connection = fresh.Connection!;
        if (connection.Status != ConnectionStatus.Active || connection.AccessToken is null)
        {
            connection = await connections.ExpireIfStaleAsync(connection);
            // 409: the connection exists but its state does not allow a credential; "status" says what to do
            // (pending: wait for consent; failed or attention_required: send the user through consent again).
            await ConnectionProblems.NotActive(connection).ExecuteAsync(context);
            return;
        }

        if (connection.TokenType == CredentialCapture.TokenType)
        {
            await CredentialCapture.WriteTokenResponseAsync(context, connection, providers);
            audit.TokenRead(caller.Actor, connection.WorkspaceId, connection.Id);
            return;
        }

        string accessToken;
        long? expiresAtMs;
        string? resourceName = null;
        if (context.Request.Query.TryGetValue("resource", out var resourceQuery))
        {
            // Issue 15: a token for one of the provider's further resources (Entra: Graph, SharePoint, Business
            // Central), minted from the connection's refresh token and cached per resource.
            resourceName = resourceQuery.Count == 1 ? resourceQuery[0] : null;
            if (string.IsNullOrEmpty(resourceName))
            {
                await Problems.Create(ProblemCatalog.UnknownResource, "Give one resource name: ?resource=NAME.", title: "Which resource?").ExecuteAsync(context);
                return;
            }

            var minted = await context.RequestServices.GetRequiredService<ResourceTokens>().GetAsync(connection, resourceName, force: false, context.RequestAborted);
            if (minted.Problem is not null)
            {
                await minted.Problem.ExecuteAsync(context);
                return;
            }

            (accessToken, expiresAtMs) = (minted.Token!.AccessToken, minted.Token.ExpiresAtMs);
        }
        else
        {
            // The connection's own token, decrypted only when it is the one asked for.
            (accessToken, expiresAtMs) = (store.Decrypt(ConnectionStore.AccessTokenColumn, connection.Id, connection.AccessToken), connection.TokenExpiresAt);
        }

        var response = context.Response;
        response.Headers.CacheControl = "no-store";
        response.ContentType = "application/json; charset=utf-8";
        await using (var json = new Utf8JsonWriter(response.BodyWriter, WriterOptions))
        {
            json.WriteStartObject();
            json.WriteStartObject("strategy"u8);
            json.WriteString("type"u8, "oauth2"u8);
            json.WriteEndObject();
            json.WriteStartObject("credentials"u8);
            json.WriteString("access_token"u8, accessToken);
            CredentialJson.WriteExpiresAt(json, expiresAtMs / 1000);
            json.WriteEndObject();
            CredentialJson.WriteExpiresAt(json, expiresAtMs / 1000);
            if (resourceName is not null)
            {
                json.WriteString("resource"u8, resourceName);
            }

            CredentialJson.WriteConnectionConfig(json, connection);
            json.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
        audit.TokenRead(caller.Actor, connection.WorkspaceId, connection.Id);
    }
}
