using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using Nexus.Sdk.Aws;
using Nexus.Server.ApiKeys;
using Nexus.Server.Audit;
using Nexus.Server.Credentials;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Connections;

/// <summary>
/// Credentials for api_key, basic_auth and aws_sigv4 providers. request-connection hands out an auth_url to a Nexus
/// page that renders the provider's credential_schema as a form (secret fields masked); the user's entry is checked
/// against the schema, optionally verified with a cheap call to the provider, stored encrypted, and the browser goes
/// back to return_url exactly as after an OAuth consent. Servers can do the same with
/// POST /v1/connections/{id}/credentials. The values live in the connection's access_token column as JSON, with
/// token_type "credential" marking the difference.
/// </summary>
internal static class CredentialCapture
{
    public const string FormPath = "/connect/credentials";
    public const string TokenType = "credential";

    public static void MapCredentialCapture(this IEndpointRouteBuilder app)
    {
        app.MapGet("/connect/credentials", FormAsync).ExcludeFromDescription();
        app.MapPost("/connect/credentials", SubmitFormAsync).ExcludeFromDescription().RequireProtectedForm();
        app.MapGatewayGroup().MapPost("/v1/connections/{connectionId}/credentials", SubmitApiAsync).WithTags("Connections");
    }

    public static string AuthUrl(NexusOptions options, string state) => $"{options.Issuer}{FormPath}?state={Uri.EscapeDataString(state)}";

    /// <summary>The pending credential connection a state stands for, or why there is none.</summary>
    private static async Task<(Connection? Connection, Provider? Provider, string? Error)> ResolveAsync(string? state, StateSigner signer, ConnectionStore store,
        ProviderRegistry providers, TimeProvider time, CancellationToken ct)
    {
        var (connection, provider, error) = await ConnectionLinks.ResolveAsync(state, signer, store, providers, time, acceptReconnect: false, ct);
        return connection is null ? (null, null, error) : AuthModes.IsOAuth(provider!.AuthMode) ? (null, null, "This connection does not take credentials.") : (connection, provider, null);
    }

    private static async Task<IResult> FormAsync(HttpContext context, string? state, StateSigner signer, ConnectionStore store, ProviderRegistry providers, TimeProvider time,
        PersonalConsent personal)
    {
        var (connection, provider, error) = await ResolveAsync(state, signer, store, providers, time, context.RequestAborted);
        return connection is null ? Error(context, "Cannot connect", error!)
            : await personal.GatePageAsync(context, connection, context.RequestAborted) ?? Form(context, state!, provider!, null, null);
    }

    private static IResult Form(HttpContext context, string state, Provider provider, Dictionary<string, string[]>? errors, string? message, int status = 200)
    {
        context.Response.Headers["Referrer-Policy"] = "no-referrer";
        var fields = CredentialSchemas.Fields(provider.Config.CredentialSchema!);
        var inputs = string.Concat(fields.Select(f =>
        {
            var error = errors is not null && errors.TryGetValue(f.Name, out var messages) ? $"<p class=\"error\" id=\"{E(f.Name)}-error\">{E(string.Join(" ", messages))}</p>" : "";
            var described = string.Join(' ', new[] { f.Description is null ? null : f.Name + "-help", error.Length > 0 ? f.Name + "-error" : null }.Where(d => d is not null));
            return $"""
                <label for="{E(f.Name)}">{E(f.Title)}{(f.Required ? "" : " <span class=\"muted\">(optional)</span>")}</label>
                <input id="{E(f.Name)}" name="{E(f.Name)}" type="{(f.Secret ? "password" : "text")}" autocomplete="off" spellcheck="false"{(f.Required ? " required" : "")}{(f.Pattern is null ? "" : $" pattern=\"{E(f.Pattern.TrimStart('^').TrimEnd('$'))}\"")}{(described.Length > 0 ? $" aria-describedby=\"{E(described)}\"" : "")}>
                {(f.Description is null ? "" : $"<p class=\"muted\" id=\"{E(f.Name)}-help\">{E(f.Description)}</p>")}{error}
                """;
        }));
        var alert = message is null ? "" : $"<p class=\"error\" role=\"alert\">{E(message)}</p>";
        return Page(context, "Connect " + provider.DisplayName, $"""
            <section class="card narrow"><h1>Connect {E(provider.DisplayName)}</h1>
            <p>Enter your {E(provider.DisplayName)} credentials. Nexus stores them encrypted; the application that sent you here never sees them.</p>{alert}
            <form method="post" action="{FormPath}">{AntiforgeryField(context)}<input type="hidden" name="state" value="{E(state)}">{inputs}
            <div class="actions"><button type="submit">Connect</button></div></form></section>
            """, status);
    }

    private static async Task<IResult> SubmitFormAsync(HttpContext context, StateSigner signer, ConnectionStore store, ProviderRegistry providers,
        IHttpClientFactory http, AwsRoleCredentials roles, AuditLog audit, ConnectionService connections, TimeProvider time, PersonalConsent personal)
    {
        var ct = context.RequestAborted;
        var form = ProtectedForm.Of(context);

        var state = form["state"].ToString();
        var (connection, provider, error) = await ResolveAsync(state, signer, store, providers, time, ct);
        if (connection is null)
        {
            return Error(context, "Cannot connect", error!);
        }

        if (await personal.GatePageAsync(context, connection, ct) is { } refused)
        {
            return refused;
        }

        var input = form.Where(f => f.Key != "state" && f.Key != ProtectedForm.FieldName).ToDictionary(f => f.Key, f => JsonSerializer.SerializeToElement(f.Value.ToString()));
        var (values, errors) = CredentialSchemas.Validate(provider!.Config.CredentialSchema!, input);
        if (values is null)
        {
            return Form(context, state, provider, errors, "Check the highlighted fields.", 400);
        }

        var stored = UpstreamCredentials.From(provider, values);
        if (stored.Problem is { } unusable)
        {
            return unusable.Field is { } field
                ? Form(context, state, provider, new Dictionary<string, string[]> { [field] = [unusable.Detail] }, "Check the highlighted fields.", 400)
                : Form(context, state, provider, null, unusable.Detail, 409);
        }

        if (await VerifyAsync(connection.Id, ConnectionValues.Apply(provider, connection.Values), stored, http, roles, time, ct) is { } rejected)
        {
            // The state stays unused: the person can correct the entry and try again.
            return Form(context, state, provider, null, rejected, 400);
        }

        var nonce = signer.TryVerify(state, out var claims) ? claims.Nonce : "";
        if (!await store.ConsumeStateAsync(connection.Id, nonce, ct))
        {
            return Error(context, "Cannot connect", "This link was already used. Start again from the application that sent you here.");
        }

        if (!await ActivateAsync(connection, provider, values, store, audit, "user", ct))
        {
            return Error(context, "Cannot connect", "This connection was removed while its credentials were being checked. Start again from the application that sent you here.");
        }

        await ConnectionReplacement.CompleteAsync(connection, store, connections, ct);
        var target = QueryHelpers.AddQueryString(connection.ReturnUrl, new Dictionary<string, string?> { ["connection_id"] = connection.Id, ["status"] = ConnectionStatus.Active });
        return Results.Redirect(target);
    }

    private static async Task<IResult> SubmitApiAsync(string connectionId, HttpContext context, Caller caller, ConnectionStore store, ProviderRegistry providers,
        IHttpClientFactory http, AwsRoleCredentials roles, AuditLog audit, TimeProvider time)
    {
        var ct = context.RequestAborted;
        var connection = await store.FindAsync(connectionId, ct);
        if (connection is null || !caller.CanAccess(connection.WorkspaceId))
        {
            return Problems.NotFound("Connection");
        }

        var provider = await providers.FindAsync(connection.ProviderName, ct);
        if (provider is null || AuthModes.IsOAuth(provider.AuthMode))
        {
            return Problems.Create(ProblemCatalog.NotACredentialConnection);
        }

        if (connection.Status is not (ConnectionStatus.Pending or ConnectionStatus.Active or ConnectionStatus.AttentionRequired))
        {
            return Problems.Create(ProblemCatalog.ConnectionFailed);
        }

        var (body, error) = await JsonBody.ReadAsync<Dictionary<string, JsonElement>>(context.Request, ct);
        if (error is not null)
        {
            return error;
        }

        var (values, errors) = CredentialSchemas.Validate(provider.Config.CredentialSchema!, body!);
        if (values is null)
        {
            return Problems.Validation(errors);
        }

        // Checked before anything is called with them: the schema may let through a region that would steer the
        // signed STS call elsewhere, and a schema that predates the per-mode field names may lack one.
        var stored = UpstreamCredentials.From(provider, values);
        if (stored.Problem is { } unusable)
        {
            return unusable.Field is { } field ? Problems.Validation(new Dictionary<string, string[]> { [field] = [unusable.Detail] }) : unusable.ToProblem();
        }

        if (await VerifyAsync(connection.Id, ConnectionValues.Apply(provider, connection.Values), stored, http, roles, time, ct) is { } rejected)
        {
            return Problems.Create(ProblemCatalog.CredentialsRejected, rejected);
        }

        // Deleted (DELETE /v1/connections/{id}) while the credentials were being checked: nothing was stored.
        if (!await ActivateAsync(connection, provider, values, store, audit, caller.Actor, ct) || await store.FindAsync(connection.Id, ct) is not { } activated)
        {
            return Problems.NotFound("Connection");
        }

        return TypedResults.Ok(ConnectionResponse.From(activated));
    }

    /// <summary>Stores the credentials and records it; false when the connection no longer exists.</summary>
    private static async Task<bool> ActivateAsync(Connection connection, Provider provider, Dictionary<string, string> values, ConnectionStore store, AuditLog audit, string actor,
        CancellationToken ct)
    {
        var json = JsonSerializer.Serialize(values);
        if (!await store.ActivateAsync(connection.Id, provider, store.Encrypt(ConnectionStore.AccessTokenColumn, connection.Id, json), null, TokenType, null, ct))
        {
            return false;
        }

        // The non-secret half of a credential tells people which account it is.
        if ((values.GetValueOrDefault("username") ?? values.GetValueOrDefault("access_key_id")) is { } account)
        {
            await store.SetAccountAsync(connection.Id, account, ct);
        }

        await audit.RecordAsync(AuditEvents.Activated, actor, connection.WorkspaceId, connection.Id,
            new { provider = connection.ProviderName, fields = values.Keys }, ct);
        return true;
    }

    /// <summary>
    /// The provider's check call (catalog "verify"), made through the same credential injection as the Bridge. An
    /// aws_sigv4 connection with a role assumes it first (whether or not there is a check call), so keys that cannot
    /// assume the role are refused before the connection is active; the credentials it gets are cached for the
    /// first reads.
    /// </summary>
    private static async Task<string?> VerifyAsync(string connectionId, Provider provider, StoredCredential stored, IHttpClientFactory http, AwsRoleCredentials roles,
        TimeProvider time, CancellationToken ct)
    {
        var credential = stored.Credential!;
        if (credential is UpstreamCredential.AwsSigV4)
        {
            // Whatever was cached for the credentials being replaced is dropped now.
            roles.Forget(connectionId);
        }

        if (stored.Role is { } role && credential is UpstreamCredential.AwsSigV4 longLived)
        {
            try
            {
                credential = longLived with { Credentials = (await roles.GetAsync(connectionId, role, longLived.Credentials, ct)).Credentials };
            }
            catch (AwsRoleException e)
            {
                // Whoever is submitting the keys may see what STS said of them (it names their IAM user); apps and
                // agents reading the connection later never do (AwsRoleException.StsMessage).
                return e.Type == ProblemCatalog.AwsAssumeRoleFailed
                    ? $"These credentials could not assume the role. {e.Detail}{(e.StsMessage is null ? "" : " STS said: " + e.StsMessage)}"
                    : $"{e.Title} {e.Detail}";
            }
        }

        if (provider.Config.Verify is not { } verify || provider.Config.ApiBaseUrl is null)
        {
            return null;
        }

        var uri = CredentialInjection.Target(new Uri(provider.Config.ApiBaseUrl.TrimEnd('/') + verify.Path), credential);
        using var request = new HttpRequestMessage(new HttpMethod(verify.Method), uri);
        await CredentialInjection.ApplyAsync(request, credential, SigV4Signer.EmptyPayloadHash, time.GetUtcNow(), ct);
        try
        {
            using var response = await http.CreateClient(UpstreamPolicy.HttpClientName).SendAsync(request, ct);
            return (int)response.StatusCode == verify.ExpectStatus ? null
                : response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden
                    ? $"{provider.DisplayName} rejected these credentials ({(int)response.StatusCode})."
                    : $"{provider.DisplayName} answered {(int)response.StatusCode} to the check; expected {verify.ExpectStatus}.";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return $"{provider.DisplayName} could not be reached to check the credentials.";
        }
    }

    /// <summary>GET /v1/token for a credential connection, shaped by strategy as the seed describes.</summary>
    public static async Task WriteTokenResponseAsync(HttpContext context, Connection connection, ProviderRegistry providers)
    {
        var provider = await providers.FindCachedAsync(connection.ProviderName, context.RequestAborted);
        if (provider is null)
        {
            await Problems.Create(ProblemCatalog.ProviderMissing).ExecuteAsync(context);
            return;
        }

        // Decoded once per cached row, as for the Bridge: a token read costs no decryption, parsing or hashing.
        var decoded = context.RequestServices.GetRequiredService<ConnectionCredentials>().For(connection, provider);
        var values = decoded.Values!;
        AssumedRole? assumed = null;
        string? roleArn = null;
        UpstreamCredential.AwsSigV4? aws = null;
        if (provider.AuthMode == AuthModes.AwsSigV4)
        {
            // The same resolution the Bridge signs with: the connection's region if it has one, else the provider's.
            aws = decoded.Stored.Credential as UpstreamCredential.AwsSigV4;
            if (aws is null)
            {
                await decoded.Stored.Problem!.ToProblem().ExecuteAsync(context);
                return;
            }

            if (decoded.Stored.Role is { } role)
            {
                // With a role, only the temporary credentials leave Nexus; the stored keys never do.
                // The role client comes from the request's services, so that reads of other strategies do not resolve it.
                var roles = context.RequestServices.GetRequiredService<AwsRoleCredentials>();
                try
                {
                    assumed = await roles.GetAsync(connection.Id, decoded.RoleKey!, role, aws.Credentials, context.RequestAborted);
                }
                catch (AwsRoleException e)
                {
                    await e.ToProblem().ExecuteAsync(context);
                    return;
                }

                roleArn = role.RoleArn;
            }
        }

        // Written straight into the response (no JSON tree per read): the hot path of credential connections.
        var response = context.Response;
        response.Headers.CacheControl = "no-store";
        response.ContentType = "application/json; charset=utf-8";
        long? expiresAt = assumed?.Expiration.ToUnixTimeSeconds();
        await using (var json = new Utf8JsonWriter(response.BodyWriter))
        {
            json.WriteStartObject();
            json.WriteStartObject("strategy"u8);
            json.WriteString("type"u8, provider.AuthMode);
            if (provider.AuthMode == AuthModes.ApiKey)
            {
                json.WriteString("in"u8, provider.Config.ApiKey?.In);
                json.WriteString("name"u8, provider.Config.ApiKey?.Name);
                json.WriteString("prefix"u8, provider.Config.ApiKey?.Prefix);
            }
            else if (aws is not null)
            {
                json.WriteString("region"u8, aws.Region);
                json.WriteString("service"u8, aws.Service);
                if (roleArn is not null)
                {
                    json.WriteString("role_arn"u8, roleArn);
                }
            }

            json.WriteEndObject();
            json.WriteStartObject("credentials"u8);
            if (assumed is not null)
            {
                json.WriteString("access_key_id"u8, assumed.Credentials.AccessKeyId);
                json.WriteString("secret_access_key"u8, assumed.Credentials.SecretAccessKey);
                json.WriteString("session_token"u8, assumed.Credentials.SessionToken);
                json.WriteNumber("expires_at"u8, expiresAt!.Value);
            }
            else
            {
                foreach (var (name, value) in values)
                {
                    json.WriteString(name, value);
                }
            }

            json.WriteEndObject();
            CredentialJson.WriteExpiresAt(json, expiresAt);
            CredentialJson.WriteConnectionConfig(json, connection);
            json.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
    }
}
