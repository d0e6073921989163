using Nexus.Server.Hosting;
using System.Globalization;
using System.Buffers;
using System.Buffers.Text;
using System.Text;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.Vault;

namespace Nexus.Server.AuthorizationServer;

/// <summary>The outcome of client authentication: a client, or an RFC 6749 error to send.</summary>
internal readonly record struct ClientAuthentication(OAuthClient? Client, int Status, OAuthError? Error, string? Description, TimeSpan? RetryAfter = null)
{
    public static ClientAuthentication Success(OAuthClient client) => new(client, 200, null, null);

    public static ClientAuthentication Fail(OAuthError error, string description, TimeSpan? retryAfter = null, int? status = null) =>
        new(null, status ?? error.Status, error, description, retryAfter);

    /// <summary>RFC 6749 §5.2: the error response, with the Basic challenge for 401 and Retry-After when throttled.</summary>
    public Task WriteFailureAsync(HttpContext context)
    {
        if (RetryAfter is { } wait)
        {
            context.Response.Headers.RetryAfter = ClientAuthenticator.RetryAfterSeconds(wait);
        }

        return OAuthResponses.ErrorAsync(context, Error!, Description!, Status is 401 or 429 ? "Basic realm=\"nexus\"" : null, Status);
    }
}

/// <summary>
/// Authenticates confidential clients at the token endpoint (RFC 6749 §2.3.1): HTTP Basic preferred,
/// client_id/client_secret in the body as the fallback, never both.
/// </summary>
internal sealed class ClientAuthenticator(ClientRegistry registry, SecretHasher hasher, FailedAuthenticationLimiter limiter, Grants.RevocationList revocations)
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // Verified against when the client is unknown so that response time does not reveal which ids exist.
    private const string MalformedBasic = "The Basic credentials are malformed: send base64(urlencode(client_id) ':' urlencode(client_secret)).";

    private static readonly string DecoyHash = "h1$" + Convert.ToBase64String(new byte[32]);

    public async ValueTask<ClientAuthentication> AuthenticateAsync(HttpContext context, OAuthForm form, CancellationToken ct)
    {
        string? clientId;
        string? clientSecret;
        var authorization = context.Request.Headers.Authorization;
        if (authorization.Count > 1)
        {
            return ClientAuthentication.Fail(OAuthErrorCatalog.InvalidRequest, "The Authorization header is repeated.");
        }

        if (authorization.Count == 1 && authorization[0]!.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            if (!TryParseBasic(authorization[0]!, out clientId, out clientSecret))
            {
                if (clientId.Length > 0)
                {
                    // Well-formed Basic credentials around a NUL: nobody sends that by mistake.
                    OAuthInvalidInput.CountAsFailedAuthentication(context);
                    return ClientAuthentication.Fail(OAuthErrorCatalog.InvalidRequest, OAuthForm.InvalidCharacters);
                }

                // RFC 6749 §5.2: a client that tried to authenticate with the Authorization header and failed gets 401
                // invalid_client with a Basic challenge; counted like a wrong secret.
                limiter.RecordFailure(FixedWindowCounter.AddressKey(context), clientId);
                return ClientAuthentication.Fail(OAuthErrorCatalog.InvalidClient, MalformedBasic);
            }

            // RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
            if (form.Has("client_secret") || (form["client_id"] is { } bodyId && bodyId != clientId))
            {
                return ClientAuthentication.Fail(OAuthErrorCatalog.InvalidRequest, "Client credentials were sent both in the Authorization header and in the body; use one.");
            }

            if (clientSecret.Length == 0)
            {
                // A public client with an empty password only identifies itself (below); anyone else sent no secret.
                // An empty password is a missing secret (RFC 6749 §3.1: a parameter without a value is omitted), as
                // client_secret= in the body is: 400 invalid_request, "missing credentials" in the product's contract.
                return await PublicClientAsync(clientId, ct) is { } identified
                    ? ClientAuthentication.Success(identified)
                    : ClientAuthentication.Fail(OAuthErrorCatalog.InvalidRequest, "The client secret is missing: the Basic password is empty.");
            }
        }
        else
        {
            clientId = form["client_id"];
            clientSecret = form["client_secret"];
            if (clientId is not null && string.IsNullOrEmpty(clientSecret) && await PublicClientAsync(clientId, ct) is { } publicClient)
            {
                // RFC 6749 §2.3 / OAuth 2.1 §2.4: a public client only identifies itself; PKCE protects its code.
                return ClientAuthentication.Success(publicClient);
            }

            if (clientId is null || clientSecret is null)
            {
                return ClientAuthentication.Fail(OAuthErrorCatalog.InvalidRequest,
                    "Client credentials are missing: send HTTP Basic (client_id:client_secret) or client_id and client_secret in the body.");
            }
        }

        var address = FixedWindowCounter.AddressKey(context);
        if (limiter.RetryAfter(address, clientId) is { } wait)
        {
            return ClientAuthentication.Fail(OAuthErrorCatalog.InvalidClient, "Too many failed client authentications; try again later.", wait, StatusCodes.Status429TooManyRequests);
        }

        // The registry's copy may be up to ClientCacheSeconds old; a deletion on another instance reaches the revocation
        // list sooner (at once on PostgreSQL), so a deleted client gets no new token or refresh here meanwhile. Without a
        // current list (Nexus__Revocation__PollSeconds 0: the database on every check) the client is read from the database.
        var client = clientId.Length > 200 ? null : await FindClientAsync(clientId, ct);
        var valid = hasher.Verify(clientSecret, client?.SecretHash ?? DecoyHash);
        if (client is null || client.IsRevoked || revocations.IsClientRevoked(client.ClientId) || !valid)
        {
            limiter.RecordFailure(address, clientId);
            // One answer for unknown, revoked and wrong-secret, so the endpoint is not a client-id oracle.
            return ClientAuthentication.Fail(OAuthErrorCatalog.InvalidClient, "Client authentication failed: unknown client, revoked client or wrong secret.");
        }

        return ClientAuthentication.Success(client);
    }

    /// <summary>
    /// The public client <paramref name="clientId"/> names, or null. RFC 6749 §2.3 / OAuth 2.1 §2.4: a public client has
    /// no secret, so it only identifies itself, whether by client_id in the body or (as some MCP clients do for a client
    /// ID metadata document client, following the first method the metadata lists) by HTTP Basic or client_secret_post
    /// with an empty secret; nothing is authenticated either way, and PKCE protects its code. A confidential client
    /// that sends an empty secret gets no such leniency.
    /// </summary>
    private async ValueTask<OAuthClient?> PublicClientAsync(string clientId, CancellationToken ct) =>
        clientId.Length <= 2000 && await FindClientAsync(clientId, ct) is { IsPublic: true, IsRevoked: false } client && !revocations.IsClientRevoked(clientId) ? client : null;

    /// <summary>The cached client while the revocation list is current (it refuses a deleted one sooner); the database's otherwise.</summary>
    private async ValueTask<OAuthClient?> FindClientAsync(string clientId, CancellationToken ct) =>
        revocations.IsCurrent ? await registry.FindCachedAsync(clientId, ct) : await registry.FindAsync(clientId, ct);

    /// <summary>False when the header is malformed (an empty secret is well formed); then <paramref name="clientId"/> is non-empty only when the parts held a NUL character.</summary>
    /// <remarks>Parsed by hand (the caller has seen the "Basic " scheme): every token request passes here.</remarks>
    private static bool TryParseBasic(string header, out string clientId, out string clientSecret)
    {
        clientId = clientSecret = "";
        // RFC 7617 §2: credentials = "Basic" 1*SP token68 (surrounding whitespace tolerated, as by the framework's parser).
        var token68 = header.AsSpan("Basic ".Length).Trim(" \t");
        if (token68.IsEmpty || token68.Length > 8192)
        {
            return false;
        }

        var rented = ArrayPool<byte>.Shared.Rent(Base64.GetMaxDecodedFromUtf8Length(token68.Length));
        string decoded;
        try
        {
            if (!Convert.TryFromBase64Chars(token68, rented, out var length))
            {
                return false;
            }

            decoded = StrictUtf8.GetString(rented, 0, length);
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }

        var colon = decoded.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            return false;
        }

        // RFC 6749 §2.3.1: both parts are form-urlencoded before being joined, so decode each one.
        var id = OAuthForm.DecodeComponent(decoded.AsSpan(0, colon));
        var secret = OAuthForm.DecodeComponent(decoded.AsSpan(colon + 1));
        if (id is null || secret is null || id.Length == 0)
        {
            return false;
        }

        if (!Hosting.InputText.IsClean(id) || !Hosting.InputText.IsClean(secret))
        {
            clientId = "\0";
            return false;
        }

        clientId = id;
        clientSecret = secret;
        return true;
    }

    public static string RetryAfterSeconds(TimeSpan wait) => Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
}
