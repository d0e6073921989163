using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;

namespace Nexus.Scenario.Upstream;

/// <summary>
/// The scenario's OAuth 2.0 provider: /oauth/authorize consents at once and redirects with a code and the state
/// (RFC 6749 §4.1.2); /oauth/token exchanges the code (checking the client, redirect_uri and the PKCE verifier,
/// RFC 7636 §4.6) and refreshes (RFC 6749 §6) with rotating, single-use refresh tokens: a refresh token used twice
/// revokes its whole grant, as strict providers do. The control calls revoke every grant (the next refresh is
/// invalid_grant) or expire every access token (the next API call is 401, the next refresh works).
/// </summary>
internal sealed class OAuthProvider(ScenarioData.OAuthClient client, TimeProvider time)
{
    private readonly Lock gate = new();
    private readonly Dictionary<string, PendingCode> codes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Grant> refreshTokens = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AccessToken> accessTokens = new(StringComparer.Ordinal);
    private readonly List<Grant> grants = [];
    private long codeExchanges;
    private long refreshes;
    private long rejectedRefreshes;
    private long reusedRefreshTokens;

    private sealed record PendingCode(string RedirectUri, string? Challenge, string Scope);

    private sealed class Grant(string scope)
    {
        public string Scope { get; } = scope;

        public bool Revoked { get; set; }

        public string? CurrentRefreshToken { get; set; }
    }

    private sealed record AccessToken(Grant Grant, DateTimeOffset ExpiresAt);

    public IResult Authorize(HttpRequest request)
    {
        var q = request.Query;
        var redirectUri = q["redirect_uri"].ToString();
        if (q["response_type"] != "code" || q["client_id"] != client.ClientId || !Uri.TryCreate(redirectUri, UriKind.Absolute, out _))
        {
            return Results.BadRequest(new { error = "invalid_request", error_description = "response_type=code, the scenario's client_id and an absolute redirect_uri are required." });
        }

        var challenge = q["code_challenge"].ToString();
        if (challenge.Length > 0 && q["code_challenge_method"] != "S256")
        {
            return Redirect(redirectUri, q["state"], ("error", "invalid_request"), ("error_description", "only S256"));
        }

        var code = "scn-code-" + Random(16);
        lock (gate)
        {
            codes[code] = new PendingCode(redirectUri, challenge.Length > 0 ? challenge : null, q["scope"].ToString());
        }

        return Redirect(redirectUri, q["state"], ("code", code));
    }

    public async Task<IResult> TokenAsync(HttpRequest request)
    {
        if (!request.HasFormContentType)
        {
            return Error(400, "invalid_request", "The token request is form-encoded (RFC 6749 §4.1.3).");
        }

        var form = await request.ReadFormAsync();
        if (!Authenticated(request, form))
        {
            return Error(401, "invalid_client", "Unknown client or wrong secret.");
        }

        switch (form["grant_type"].ToString())
        {
            case "authorization_code":
                PendingCode? pending;
                lock (gate)
                {
                    codes.Remove(form["code"].ToString(), out pending);
                }

                if (pending is null || pending.RedirectUri != form["redirect_uri"])
                {
                    return Error(400, "invalid_grant", "Unknown or used code, or another redirect_uri.");
                }

                if (pending.Challenge is not null
                    && WebEncoders.Base64UrlEncode(SHA256.HashData(Encoding.ASCII.GetBytes(form["code_verifier"].ToString()))) != pending.Challenge)
                {
                    return Error(400, "invalid_grant", "The PKCE verifier does not match the challenge.");
                }

                lock (gate)
                {
                    codeExchanges++;
                    var grant = new Grant(pending.Scope);
                    grants.Add(grant);
                    return Issue(grant);
                }

            case "refresh_token":
                lock (gate)
                {
                    var presented = form["refresh_token"].ToString();
                    if (!refreshTokens.TryGetValue(presented, out var grant) || grant.Revoked)
                    {
                        rejectedRefreshes++;
                        return Error(400, "invalid_grant", "The refresh token is unknown or its grant was revoked.");
                    }

                    if (grant.CurrentRefreshToken != presented)
                    {
                        // A rotated-out refresh token came back: someone used it twice. Revoke the grant (RFC 9700 §4.14.2).
                        reusedRefreshTokens++;
                        rejectedRefreshes++;
                        grant.Revoked = true;
                        return Error(400, "invalid_grant", "The refresh token was already used; the grant is revoked.");
                    }

                    refreshes++;
                    return Issue(grant);
                }

            default:
                return Error(400, "unsupported_grant_type", "authorization_code or refresh_token.");
        }
    }

    /// <summary>RFC 7009: revokes the grant of the token given; always 200.</summary>
    public async Task<IResult> RevokeAsync(HttpRequest request)
    {
        var form = request.HasFormContentType ? await request.ReadFormAsync() : null;
        var token = form?["token"].ToString() ?? "";
        lock (gate)
        {
            if (refreshTokens.TryGetValue(token, out var grant) || (accessTokens.TryGetValue(token, out var access) && (grant = access.Grant) is not null))
            {
                grant.Revoked = true;
            }
        }

        return Results.Ok();
    }

    public int RevokeAllGrants()
    {
        lock (gate)
        {
            var count = 0;
            foreach (var grant in grants.Where(g => !g.Revoked))
            {
                grant.Revoked = true;
                count++;
            }

            return count;
        }
    }

    public int ExpireAccessTokens()
    {
        lock (gate)
        {
            var count = accessTokens.Count;
            accessTokens.Clear();
            return count;
        }
    }

    public object Stats()
    {
        lock (gate)
        {
            return new
            {
                code_exchanges = codeExchanges,
                refreshes,
                rejected_refreshes = rejectedRefreshes,
                reused_refresh_tokens = reusedRefreshTokens,
                grants = grants.Count,
                revoked_grants = grants.Count(g => g.Revoked),
            };
        }
    }

    /// <summary>Null when the bearer token is one this provider issued, unexpired, of a grant not revoked; otherwise why not.</summary>
    public string? CheckAccessToken(string token)
    {
        lock (gate)
        {
            if (!accessTokens.TryGetValue(token, out var access))
            {
                return "unknown or expired access token";
            }

            return access.Grant.Revoked ? "the grant was revoked" : access.ExpiresAt <= time.GetUtcNow() ? "the access token expired" : null;
        }
    }

    // Called under the lock.
    private IResult Issue(Grant grant)
    {
        var access = "scn-at-" + Random(24);
        var refresh = "scn-rt-" + Random(24);
        accessTokens[access] = new AccessToken(grant, time.GetUtcNow().AddSeconds(client.AccessTokenLifetimeSeconds));
        refreshTokens[refresh] = grant;
        grant.CurrentRefreshToken = refresh;
        return Results.Json(new Dictionary<string, object>
        {
            ["access_token"] = access,
            ["token_type"] = "Bearer",
            ["expires_in"] = client.AccessTokenLifetimeSeconds,
            ["refresh_token"] = refresh,
            ["scope"] = grant.Scope,
        });
    }

    private bool Authenticated(HttpRequest request, IFormCollection form)
    {
        string? id = form["client_id"], secret = form["client_secret"];
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                // RFC 6749 §2.3.1: client id and secret are form-encoded before Basic encoding.
                var pair = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
                var colon = pair.IndexOf(':', StringComparison.Ordinal);
                if (colon < 0)
                {
                    return false;
                }

                id = Uri.UnescapeDataString(pair[..colon].Replace('+', ' '));
                secret = Uri.UnescapeDataString(pair[(colon + 1)..].Replace('+', ' '));
            }
            catch (FormatException)
            {
                return false;
            }
        }

        return id == client.ClientId && secret is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(client.ClientSecret));
    }

    private static IResult Redirect(string redirectUri, string? state, params (string Name, string Value)[] parameters)
    {
        var values = parameters.ToDictionary(p => p.Name, p => (string?)p.Value);
        if (!string.IsNullOrEmpty(state))
        {
            values["state"] = state;
        }

        return Results.Redirect(QueryHelpers.AddQueryString(redirectUri, values));
    }

    private static IResult Error(int status, string error, string description) =>
        Results.Json(new { error, error_description = description }, statusCode: status);

    private static string Random(int bytes) => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(bytes));
}
