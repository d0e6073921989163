using Microsoft.AspNetCore.WebUtilities;
using Nexus.Server.Audit;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections;

/// <summary>
/// GET /auth/callback: where providers send the user's browser after consent (the redirect_uri of every
/// provider registration is BASE_URL/auth/callback). Verifies the signed, single-use state, exchanges the code,
/// stores the tokens encrypted and sends the browser to the connection's return_url with connection_id and status.
/// A state that does not verify never redirects: without a verified state there is no trustworthy return_url.
/// </summary>
internal static class CallbackEndpoint
{
    private const string Actor = "callback";

    public static void MapCallback(this IEndpointRouteBuilder app) =>
        app.MapGet("/auth/callback", HandleAsync).WithTags("Connections");

    private static async Task<IResult> HandleAsync(HttpContext context, StateSigner signer, ConnectionStore store, ProviderRegistry providers,
        ProviderClient client, AuditLog audit, ConnectionNotifier notifier, ConnectionService connections, PersonalConsent personal, NexusOptions options, TimeProvider time,
        ILoggerFactory loggers)
    {
        var ct = CancellationToken.None; // Once the state is consumed the exchange must finish, even if the browser goes away.
        var query = context.Request.Query;
        // The authorization response parameters; RFC 6749 §3.1 forbids repeating them, so a repeated one is refused.
        if (query.Any(q => q.Value.Count > 1))
        {
            return Invalid(ProblemCatalog.InvalidCallback, "A callback parameter is repeated.");
        }

        string? Get(string name) => query[name] is { Count: 1 } v && !string.IsNullOrEmpty(v[0]) ? v[0] : null;
        context.Response.Headers.CacheControl = "no-store";
        // The callback URL carries the code and state; keep them out of the Referer sent to return_url.
        context.Response.Headers["Referrer-Policy"] = "no-referrer";

        if (!signer.TryVerify(Get("state"), out var claims))
        {
            return Invalid(ProblemCatalog.InvalidState, "The state parameter is missing, malformed or was not issued by this Nexus.");
        }

        var connection = await store.FindAsync(claims.ConnectionId, ct);
        if (connection is null)
        {
            return Invalid(ProblemCatalog.InvalidState, "The connection this state belongs to no longer exists.");
        }

        // A connection in a Nexus account's own workspace is completed only by that person (PersonalConsent), checked
        // before anything is consumed or exchanged: the rightful person's browser can still complete it.
        switch (await personal.CheckAsync(context, connection, ct))
        {
            case (PersonalConsent.Verdict.SignInFirst or PersonalConsent.Verdict.PasswordChangeFirst) and var verdict:
                return PersonalConsent.DetourUrl(context, verdict) is { } detour
                    ? Results.Redirect(detour)
                    : Invalid(ProblemCatalog.ConsentSignInRequired, PersonalConsent.SignInAndStartAgainMessage);
            case PersonalConsent.Verdict.AnotherPerson:
                return Invalid(ProblemCatalog.ConsentForAnotherAccount, PersonalConsent.AnotherPersonMessage);
        }

        var now = time.GetUtcNow();
        // A reconnect (POST /v1/connections/{id}/reconnect) of a connection that keeps its tokens meanwhile: whatever
        // goes wrong with the new consent leaves the connection as it was.
        var reconnecting = connection.ReconnectScopes is not null && connection.StateNonce == claims.Nonce;
        if (reconnecting && (claims.ExpiresAt <= now.ToUnixTimeSeconds() || connection.StateExpiresAt <= now.ToUnixTimeMilliseconds()))
        {
            await store.CancelReconnectAsync(connection.Id, claims.Nonce, ct);
            return Redirect(connection, ConnectionStatus.Failed, ConnectionStore.ExpiredError);
        }

        if (claims.ExpiresAt <= now.ToUnixTimeSeconds() || connection.StateExpiresAt <= now.ToUnixTimeMilliseconds())
        {
            // Verified but late: the connection is ours, so the app learns about it at its return_url.
            var current = await connections.ExpireAsync(connection, ct);
            if (current.Status != ConnectionStatus.Failed || current.Error != ConnectionStore.ExpiredError)
            {
                return Invalid(ProblemCatalog.StateAlreadyUsed, "This state has expired or was already used.");
            }

            return Redirect(connection, ConnectionStatus.Failed, ConnectionStore.ExpiredError);
        }

        // RFC 6749 §10.12 and RFC 9700 §4.7: the state is bound to this connection and used at most once.
        if (connection.StateNonce != claims.Nonce || !await store.ConsumeStateAsync(connection.Id, claims.Nonce, ct))
        {
            return Invalid(ProblemCatalog.StateAlreadyUsed, "This state was already used; start a new connection with POST /v1/request-connection.");
        }

        // RFC 9207 §2.4: an iss in the response must name the provider this request went to, and a provider whose
        // metadata says it sends iss must send it; otherwise the response may come from another provider (mix-up,
        // RFC 9700 §4.4), and its code must not be sent to this one's token endpoint. Checked for errors too.
        var provider = await providers.FindAsync(connection.ProviderName, ct);
        if (provider?.Config.Issuer is { } expectedIssuer && IssuerProblem(provider.Config.AuthorizationResponseIss, expectedIssuer, Get("iss")) is { } issuerProblem)
        {
            return await FailAsync(reconnecting, connection, claims.Nonce, "issuer_mismatch", issuerProblem, store, audit);
        }

        // RFC 6749 §4.1.2.1: the provider reports a refusal (access_denied, …) in the error parameter.
        if (Get("error") is { } providerError)
        {
            // An error made only of characters §5.2 does not allow (quotes, backslashes, non-ASCII) leaves nothing to pass
            // on as a code: the callback was unusable, said as such rather than as an empty error.
            return await FailAsync(reconnecting, connection, claims.Nonce, ProviderClient.Sanitize(providerError) is { Length: > 0 } sanitized ? sanitized : "invalid_callback",
                Get("error_description") is { } d ? ProviderClient.Sanitize(d) : null, store, audit);
        }

        if (Get("code") is not { Length: <= 4096 } code)
        {
            return await FailAsync(reconnecting, connection, claims.Nonce, "invalid_callback", "The provider sent neither a code nor an error.", store, audit);
        }

        if (provider is null)
        {
            return await FailAsync(reconnecting, connection, claims.Nonce, "provider_missing", "The provider was deleted while the user was at the consent screen.", store, audit);
        }

        // The connection's own values ({shop}, {subdomain}, …) in the token URL (issue 17).
        var applied = ConnectionValues.Apply(provider, connection.Values);
        var verifier = connection.PkceVerifier is { } v ? store.Decrypt(ConnectionStore.PkceVerifierColumn, connection.Id, v) : null;
        var result = await client.ExchangeCodeAsync(applied, code, options.Issuer + GatewayEndpoints.CallbackPath, verifier, ct);
        if (!result.Succeeded && result.Error == OAuthErrorCatalog.InvalidClient.Error
            && context.RequestServices.GetServices<IProviderModeHandler>().FirstOrDefault(h => h.AuthMode == provider.AuthMode) is { } handler)
        {
            // E.g. RemoteMcp: a dynamic registration the authorization server no longer knows is made anew for the next consent.
            await handler.ClientRejectedAsync(provider, ct);
        }

        if (!result.Succeeded)
        {
            return await FailAsync(reconnecting, connection, claims.Nonce, result.Error ?? "token_request_failed", result.ErrorDescription, store, audit);
        }

        // Values only the provider knows, now that there is a token (Salesforce's instance_url, Mailchimp's dc).
        var (values, captured, valuesError) = await connections.CaptureAfterConsentAsync(provider, connection, result, ct);
        if (values is null)
        {
            // Tokens the connection cannot use are not kept at the provider either.
            // During a reconnect the old tokens keep working, so a revocation that ends the whole grant is not sent.
            await client.RevokeAsync(applied, result.AccessToken, result.RefreshToken, ct, grantContinues: reconnecting);
            return await FailAsync(reconnecting, connection, claims.Nonce, "connection_config_unavailable", valuesError, store, audit);
        }

        applied = ConnectionValues.Apply(provider, values);
        // Stored with the tokens, in the same conditional write: a consent superseded meanwhile changes neither.
        var newValues = captured ? values : null;

        // A provider may omit refresh_token (Google on a repeated consent, GitHub OAuth apps): the connection is
        // still active; it simply cannot be refreshed.
        long? expiresAt = result.ExpiresIn is { } seconds ? now.AddSeconds(seconds).ToUnixTimeMilliseconds() : null;
        var steppingUp = SteppingUp(reconnecting, connection);
        string? stepUpRevocation = null;
        bool stored;
        if (reconnecting)
        {
            stored = await connections.CompleteReconnectAsync(provider, connection, result, expiresAt, newValues, ct);
        }
        else if (steppingUp)
        {
            stepUpRevocation = await connections.CompleteConsentAsync(provider, connection, result, expiresAt, newValues, ct);
            stored = stepUpRevocation is not null;
        }
        else
        {
            stored = await store.ActivateAsync(connection.Id, provider,
                store.Encrypt(ConnectionStore.AccessTokenColumn, connection.Id, result.AccessToken!),
                result.RefreshToken is null ? null : store.Encrypt(ConnectionStore.RefreshTokenColumn, connection.Id, result.RefreshToken),
                result.TokenType, expiresAt, ct, claims.Nonce, newValues);
        }

        // Each write above is conditional on this callback's state still being the connection's (RFC 6749 §10.12: the
        // state binds the response to the request it answers). A reconnect or step-up that began during the code
        // exchange replaced it: the tokens this consent obtained are not the ones the connection now waits for.
        if (!stored && await store.FindAsync(connection.Id, ct) is { } latest)
        {
            // When a newer consent began, or the connection keeps tokens of its own, the person's grant lives on, so a
            // revocation that would end the whole grant is not sent; tokens of a connection that ended are revoked outright.
            var superseded = await client.RevokeAsync(applied, result.AccessToken, result.RefreshToken, ct,
                grantContinues: latest.StateNonce is not null || latest.AccessToken is not null);
            return await SupersededAsync(connection, latest, superseded, null, audit);
        }

        if (!stored)
        {
            // Disconnected (DELETE /v1/connections/{id}) while the provider was issuing these tokens: the disconnect
            // revoked what the connection held, and these must not stay usable at the provider either. Nothing says
            // the connection became active; the browser is told that it no longer exists (GET /v1/connections/{id}
            // answers 404 not_found).
            var revocation = await client.RevokeAsync(applied, result.AccessToken, result.RefreshToken, ct);
            loggers.CreateLogger(typeof(CallbackEndpoint)).LogInformation(
                "Connection {ConnectionId} was deleted during its code exchange; the new tokens were revoked at the provider ({Revocation})", connection.Id, revocation);
            return Redirect(connection, ConnectionStatus.Failed, ProblemCatalog.NotFound.Code);
        }

        // RFC 6749 §5.1: "scope" in the response says what was granted when it differs from the request.
        if (result.Fields.GetValueOrDefault("scope") is { } granted)
        {
            await store.SetGrantedScopesAsync(connection.Id, string.Join(' ', granted.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries)), ct);
        }

        await audit.RecordAsync(AuditEvents.Activated, Actor, connection.WorkspaceId, connection.Id,
            new
            {
                provider = provider.Name, refresh_token = result.RefreshToken is not null, expires_at = expiresAt / 1000, reconnect = reconnecting ? true : (bool?)null,
                step_up = steppingUp ? true : (bool?)null, provider_revocation = stepUpRevocation,
            }, ct);
        await notifier.ActivatedAsync(connection.Id, connection.WorkspaceId, provider.Name, expiresAt, reconnecting ? "reconnected" : "connected");
        if (await client.FetchAccountAsync(applied, result.AccessToken!, ct) is { } account)
        {
            await store.SetAccountAsync(connection.Id, account, ct);
        }

        await ConnectionReplacement.CompleteAsync(connection, store, connections, ct);

        return Redirect(connection, ConnectionStatus.Active, null);
    }

    /// <summary>
    /// Whether the callback completes a step-up consent (RemoteMcp.McpStepUp): a connection with tokens whose state is not
    /// a reconnect's. It began while the connection was active; a refresh the provider rejected since made it
    /// attention_required, which the consent's new tokens repair and whose failure leaves it so.
    /// </summary>
    private static bool SteppingUp(bool reconnecting, Connection connection) =>
        !reconnecting && connection.Status is ConnectionStatus.Active or ConnectionStatus.AttentionRequired;

    /// <summary>Why the authorization response's iss is not acceptable (RFC 9207 §2.4), or null when it is.</summary>
    internal static string? IssuerProblem(bool required, string expected, string? iss)
    {
        if (iss is null)
        {
            return required ? "The provider announces that it sends iss with every authorization response (RFC 9207), but this one had none." : null;
        }

        // Simple string comparison (RFC 9207 §2.4), tolerating only the trailing slash the registration also tolerates.
        return string.Equals(iss.TrimEnd('/'), expected.TrimEnd('/'), StringComparison.Ordinal)
            ? null
            : "The authorization response names another issuer (iss) than this provider's; it may come from a different provider (mix-up attack, RFC 9207).";
    }

    private static async Task<IResult> FailAsync(bool reconnecting, Connection connection, string nonce, string error, string? description, ConnectionStore store, AuditLog audit)
    {
        var stepUp = SteppingUp(reconnecting, connection);
        // The old tokens stay after a reconnect (the connection keeps its status; only this attempt failed) and after a
        // step-up consent (RemoteMcp; the connection keeps the tokens and scopes it had). Each write only while this
        // callback's state is still the connection's, as for a success.
        var written = reconnecting ? await store.CancelReconnectAsync(connection.Id, nonce, CancellationToken.None)
            : stepUp ? await store.EndStepUpAsync(connection.Id, nonce, CancellationToken.None)
            : await store.FailAsync(connection.Id, error, description, CancellationToken.None, nonce);
        if (!written && await store.FindAsync(connection.Id, CancellationToken.None) is { } current)
        {
            // A newer consent began meanwhile: this attempt's failure is not the connection's.
            return await SupersededAsync(connection, current, null, error, audit);
        }

        if (stepUp)
        {
            await audit.RecordAsync(AuditEvents.Failed, Actor, connection.WorkspaceId, connection.Id,
                new { provider = connection.ProviderName, error, error_description = description, step_up = true });
            return Redirect(connection, connection.Status, error);
        }

        await audit.RecordAsync(AuditEvents.Failed, Actor, connection.WorkspaceId, connection.Id,
            new { provider = connection.ProviderName, error, error_description = description, reconnect = reconnecting ? true : (bool?)null });
        return Redirect(connection, ConnectionStatus.Failed, error);
    }

    /// <summary>
    /// This callback's state stopped being the connection's while its code was exchanged, and nothing of its consent
    /// was stored. Either a newer consent for the same connection began (a reconnect or a step-up): the browser is told
    /// the connection's status with <c>error=superseded</c>, the newer consent's link being the one to complete. Or the
    /// state ended without a successor (a consent window closed long before this callback finished, ExpireStaleAsync):
    /// the connection's own failure, else <c>expired</c>.
    /// </summary>
    /// <param name="attemptError">This attempt's own error, when it failed anyway (kept in the audit log).</param>
    private static async Task<IResult> SupersededAsync(Connection connection, Connection current, string? revocation, string? attemptError, AuditLog audit)
    {
        // An ended state keeps its expiry (ExpireStaleAsync clears only the nonce); a newer consent set its own, also
        // when it has completed or ended since.
        var newer = current.StateNonce is not null || current.StateExpiresAt != connection.StateExpiresAt;
        var error = newer ? SupersededError : current.Status == ConnectionStatus.Failed && current.Error is { } failure ? failure : ConnectionStore.ExpiredError;
        await audit.RecordAsync(AuditEvents.Failed, Actor, connection.WorkspaceId, connection.Id,
            new
            {
                provider = connection.ProviderName, error,
                error_description = newer
                    ? "A newer consent for this connection began before this one completed; nothing of this one was stored."
                    : "This consent's state ended (" + error + ") while its code was being exchanged; nothing of this consent was stored.",
                attempt_error = attemptError, provider_revocation = revocation,
            });
        return Redirect(connection, current.Status, error);
    }

    /// <summary>The return_url's error when a newer consent replaced the one a callback completes (<see cref="SupersededAsync"/>).</summary>
    internal const string SupersededError = "superseded";

    private static Microsoft.AspNetCore.Http.HttpResults.RedirectHttpResult Redirect(Connection connection, string status, string? error)
    {
        var parameters = new List<KeyValuePair<string, string?>> { new("connection_id", connection.Id), new("status", status) };
        if (error is not null)
        {
            parameters.Add(new("error", error));
        }

        return TypedResults.Redirect(QueryHelpers.AddQueryString(connection.ReturnUrl, parameters));
    }

    private static IResult Invalid(ProblemType type, string detail) => Problems.Create(type, detail);
}
