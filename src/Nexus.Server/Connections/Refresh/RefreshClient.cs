using System.Net;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections.Refresh;

/// <summary>What a failed refresh means for the connection.</summary>
internal enum RefreshFailureKind
{
    /// <summary>The provider refused the grant (invalid_grant or its equivalent): only the user can fix it; never retried automatically.</summary>
    Rejected,

    /// <summary>Network error, timeout, 5xx, 429 or a garbled answer: retried with backoff while the connection stays active.</summary>
    Transient,

    /// <summary>
    /// The provider rejected Nexus's client (invalid_client, unauthorized_client): an administrator must fix the
    /// registration, after which refreshes work again without the user, so it is retried like a transient failure.
    /// </summary>
    Misconfigured,
}

/// <summary>The outcome of one refresh request. Holds tokens on success; never logged or serialized.</summary>
internal sealed record RefreshAttempt(TokenExchangeResult? Tokens, RefreshFailureKind Kind, string Error, string? Description, TimeSpan? RetryAfter)
{
    public bool Succeeded => Tokens is not null;

    public static RefreshAttempt Success(TokenExchangeResult tokens) => new(tokens, RefreshFailureKind.Transient, "", null, null);

    public static RefreshAttempt Failure(RefreshFailureKind kind, string error, string? description, TimeSpan? retryAfter = null) =>
        new(null, kind, error, description, retryAfter);

    public override string ToString() => Succeeded ? "RefreshAttempt(succeeded)" : $"RefreshAttempt({Kind}, {Error})";
}

/// <summary>
/// The refresh request of RFC 6749 §6 (grant_type=refresh_token, the client authenticated as at the code exchange,
/// scope omitted so the provider keeps the granted one), and the classification of its failures.
/// </summary>
internal sealed class RefreshClient(IHttpClientFactory httpFactory, ProviderClient providerClient, UpstreamPolicy policy, TimeProvider time, ILogger<RefreshClient> logger)
{
    private const int MaxResponseBytes = 64 * 1024;

    /// <summary>Error codes that say "try again later" even though some providers send them with HTTP 200 or 400.</summary>
    private static readonly HashSet<string> TransientErrors = new(StringComparer.OrdinalIgnoreCase)
    {
        OAuthErrorCatalog.TemporarilyUnavailable.Error, "server_error", "slow_down", // RFC 6749 §4.1.2.1, RFC 8628 §3.5
        "ratelimited", "rate_limited", "service_unavailable", "request_timeout", "internal_error", // Slack and others, with HTTP 200
    };

    /// <summary>Error codes that blame Nexus's client registration, not the user's grant.</summary>
    private static readonly HashSet<string> ClientErrors = new(StringComparer.OrdinalIgnoreCase)
    {
        OAuthErrorCatalog.InvalidClient.Error, OAuthErrorCatalog.UnauthorizedClient.Error, // RFC 6749 §5.2
        "invalid_client_id", "bad_client_secret", // Slack
    };

    /// <summary>
    /// Classifies a failed token response (RFC 6749 §5.2). Everything that is not clearly transient or clearly the
    /// deployment's fault is a rejection of the grant: invalid_grant, and the equivalents providers invent
    /// (Slack's invalid_refresh_token, GitHub's bad_refresh_token with HTTP 200, HubSpot's BAD_REFRESH_TOKEN, …).
    /// </summary>
    public static RefreshFailureKind Classify(int? httpStatus, string? error)
    {
        if (httpStatus is null or >= 500 or 429 or 408)
        {
            return RefreshFailureKind.Transient;
        }

        if (error is not null && TransientErrors.Contains(error))
        {
            return RefreshFailureKind.Transient;
        }

        // RFC 6749 §5.2: invalid_client may come as 401 with a WWW-Authenticate challenge and no body worth reading.
        if ((error is not null && ClientErrors.Contains(error)) || (httpStatus == 401 && error is null))
        {
            return RefreshFailureKind.Misconfigured;
        }

        // A 2xx without tokens and without an error code is a garbled answer (a captive portal, a proxy page).
        if (httpStatus is >= 200 and < 300 && error is null)
        {
            return RefreshFailureKind.Transient;
        }

        return RefreshFailureKind.Rejected;
    }

    /// <summary>
    /// Uses the refresh token once. Never throws for what the provider or the network does. <paramref name="scopes"/>:
    /// a token for another resource of the same grant (RFC 6749 §6 allows a narrower scope; Entra ID mints a token for
    /// whichever resource the scope names); null keeps the granted scope. A client_credentials connection (no refresh
    /// token) asks for a new token for <paramref name="scopes"/>, its own (ConnectionRefresher passes them), else the provider's.
    /// </summary>
    public async Task<RefreshAttempt> RefreshAsync(Provider provider, string? refreshToken, CancellationToken ct, IReadOnlyList<string>? scopes = null)
    {
        // RFC 6749 §6 refreshes at the token endpoint; a few providers name another URL (the catalog's refresh_url).
        var (field, url) = provider.Config.RefreshUrl is { } refreshUrl ? ("refresh_url", refreshUrl) : ("token_url", provider.Config.TokenUrl);
        if (policy.Check(url) is { } problem)
        {
            return RefreshAttempt.Failure(RefreshFailureKind.Misconfigured, "invalid_provider_configuration", $"{field} {problem}");
        }

        if (refreshToken is null || provider.Config.Mcp?.IsClientCredentials == true)
        {
            // RFC 6749 §4.4.3: a client_credentials grant has no refresh token; the client asks for a new token.
            var fresh = await providerClient.ClientCredentialsAsync(provider, scopes ?? provider.Scopes, ct);
            // ProviderClient classified the answer by its real HTTP status (Transient: unreachable, timeout, 5xx, 429,
            // 408, temporarily_unavailable): an outage of the authorization server is retried with backoff while the
            // connection stays active, as an ordinary refresh's is. Classifying it as a 400 made a 503 without an OAuth
            // error body a rejection, and the connection attention_required, never retried. Its Retry-After is kept too,
            // so the retry waits for it as an ordinary refresh's does (RFC 9110 §10.2.3, the failure policy's "never before").
            // Likewise a 401 without an OAuth error blames the client registration (Misconfigured: retried, logged as
            // the deployment's to fix), as it does for an ordinary refresh, not a grant the connection could lose.
            return fresh.Succeeded ? RefreshAttempt.Success(fresh)
                : RefreshAttempt.Failure(fresh.FailureKind ?? Classify(400, fresh.Error),
                    fresh.Error ?? "token_request_failed", fresh.ErrorDescription, fresh.RetryAfter);
        }

        var parameters = new List<KeyValuePair<string, string>>
        {
            new("grant_type", "refresh_token"),
            new("refresh_token", refreshToken),
        };
        if (scopes is not null)
        {
            parameters.Add(new("scope", string.Join(provider.Config.ScopeSeparator, scopes)));
        }

        if (provider.Config.Resource is { } resource)
        {
            // RFC 8707 §2.2: a refreshed token is for the same resource (MCP authorization: resource on every token request).
            parameters.Add(new("resource", resource));
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, url);
        providerClient.AddClientAuthentication(provider, request, parameters);
        request.Content = ProviderClient.Body(provider.Config.TokenRequestFormat, parameters);
        foreach (var (name, value) in provider.Config.TokenRequestHeaders)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        try
        {
            var http = httpFactory.CreateClient(UpstreamPolicy.HttpClientName);
            // One deadline for the whole answer, headers and body (HttpClient.Timeout alone bounds the headers): a provider
            // that sends its headers and then stalls would otherwise hold this refresh, the connection's lock and every
            // read waiting on it for ever, and one that sends them late and then stalls, past what the lock's waiters wait.
            using var deadline = new Deadline(http.Timeout, time, ct);
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            var status = (int)response.StatusCode;
            var retryAfter = RetryAfter(response, time.GetUtcNow());
            var body = await response.Content.ReadLimitedAsync(MaxResponseBytes, deadline.Token);
            if (body is null)
            {
                return RefreshAttempt.Failure(RefreshFailureKind.Transient, "invalid_token_response", "The provider's token response is too large.", retryAfter);
            }

            var result = body.Length == 0
                ? new TokenExchangeResult(null, null, null, null, null, null)
                : ProviderClient.Parse(body, response.Content.Headers.ContentType?.MediaType);
            if (response.IsSuccessStatusCode && result.Succeeded)
            {
                return RefreshAttempt.Success(result);
            }

            var kind = Classify(status, result.Error);
            var error = result.Error ?? (response.IsSuccessStatusCode ? "invalid_token_response" : $"http_{status}");
            var description = result.ErrorDescription ?? (response.IsSuccessStatusCode
                ? "The provider answered without an access_token."
                : $"The provider's token endpoint answered HTTP {status}.");
            return RefreshAttempt.Failure(kind, error, description, retryAfter);
        }
        catch (HttpRequestException e)
        {
            logger.LogInformation("Refresh with provider {Provider} failed: {Error}", provider.Name, e.HttpRequestError);
            return RefreshAttempt.Failure(RefreshFailureKind.Transient, "provider_unreachable", $"The provider's token endpoint could not be reached ({e.HttpRequestError}).");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            logger.LogInformation("Refresh with provider {Provider} timed out", provider.Name);
            return RefreshAttempt.Failure(RefreshFailureKind.Transient, "provider_timeout", "The provider's token endpoint did not answer within Nexus:UpstreamTimeoutSeconds.");
        }
    }

    /// <summary>RFC 9110 §10.2.3: delta-seconds or an HTTP date.</summary>
    internal static TimeSpan? RetryAfter(HttpResponseMessage response, DateTimeOffset now)
    {
        if (response.StatusCode is not (HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable) || response.Headers.RetryAfter is not { } header)
        {
            return null;
        }

        if (header.Delta is { } delta)
        {
            return delta;
        }

        return header.Date is { } date ? date - now : null;
    }
}
