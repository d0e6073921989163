using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Identity;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Nexus.Server.Hosting;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Accounts;

/// <summary>
/// Sign-in through an upstream OpenID Connect provider (OIDC Core §3.1, authorization code with PKCE). The
/// person is matched to a Nexus account by the provider's subject, or else by a verified email address whose account
/// has that address confirmed (or is the one signed in now); an unknown verified address gets a new account while
/// sign-up is open, and is refused while it is closed.
/// </summary>
internal sealed class UpstreamSignIn(NexusOptions options, IHttpClientFactory http, IDataProtectionProvider protection, TimeProvider time, ILogger<UpstreamSignIn> logger)
{
    public const string StartPath = "/account/external/start";
    public const string CallbackPath = "/account/external/callback";
    public const string HttpClientName = "upstream-oidc";
    private const string CookieName = "nexus.upstream";

    private readonly IDataProtector protector = protection.CreateProtector("nexus.upstream-oidc.v1");
    private (JsonElement Metadata, JsonWebKeySet Keys, DateTimeOffset FetchedAt)? cache;

    public bool IsConfigured => options.Upstream.IsConfigured;

    public string DisplayName => options.Upstream.DisplayName;

    private string RedirectUri => options.Issuer + CallbackPath;

    // Prompt and MaxAge: what the application asked of this sign-in (SignInDemand), sent to the upstream and checked
    // against its auth_time on the way back; StartedAt: when the sign-in left for the upstream (Unix seconds).
    private sealed record Pending(string State, string Nonce, string Verifier, string ReturnUrl, long ExpiresAt, string? Prompt = null, long? MaxAge = null, long StartedAt = 0);

    /// <summary>How far the upstream's clock may be from Nexus's when its auth_time is checked against a demand.</summary>
    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(1);

    private async Task<(JsonElement Metadata, JsonWebKeySet Keys)> DiscoverAsync(CancellationToken ct)
    {
        if (cache is { } c && time.GetUtcNow() - c.FetchedAt < TimeSpan.FromMinutes(15))
        {
            return (c.Metadata, c.Keys);
        }

        var client = http.CreateClient(HttpClientName);
        var metadata = JsonDocument.Parse(await client.GetStringAsync(options.Upstream.Issuer!.TrimEnd('/') + "/.well-known/openid-configuration", ct)).RootElement.Clone();
        // OIDC Discovery §3: the members sign-in uses, each an absolute URL (the issuer too).
        foreach (var member in new[] { "issuer", "authorization_endpoint", "token_endpoint", "jwks_uri" })
        {
            if (metadata.ValueKind != JsonValueKind.Object || !metadata.TryGetProperty(member, out var value) || value.ValueKind != JsonValueKind.String
                || !Uri.TryCreate(value.GetString(), UriKind.Absolute, out var url) || url.Scheme is not ("https" or "http"))
            {
                throw new UpstreamAnswerException($"The discovery document has no {member} URL.");
            }
        }

        // OIDC Discovery §4.3: the issuer in the document must be the one configured.
        if (metadata.GetProperty("issuer").GetString()!.TrimEnd('/') != options.Upstream.Issuer!.TrimEnd('/'))
        {
            throw new UpstreamAnswerException("The upstream provider's discovery document names a different issuer.");
        }

        JsonWebKeySet keys;
        try
        {
            keys = new JsonWebKeySet(await client.GetStringAsync(metadata.GetProperty("jwks_uri").GetString(), ct));
        }
        catch (ArgumentException e)
        {
            throw new UpstreamAnswerException("The upstream provider's keys (jwks_uri) are not a JSON Web Key Set.", e);
        }

        cache = (metadata, keys, time.GetUtcNow());
        return (metadata, keys);
    }

    public async Task<IResult> StartAsync(HttpContext context, string? returnUrl, SignInDemand demand = default)
    {
        if (!IsConfigured)
        {
            return Error(context, "Not available", "Sign-in through an upstream provider is not configured.", StatusCodes.Status404NotFound);
        }

        JsonElement metadata;
        try
        {
            (metadata, _) = await DiscoverAsync(context.RequestAborted);
        }
        catch (Exception e) when (IsUpstreamFailure(e, context.RequestAborted))
        {
            return Unavailable(context, e);
        }

        var started = time.GetUtcNow();
        var pending = new Pending(SecretToken(), SecretToken(), SecretToken(), LocalUrlOrDashboard(returnUrl), started.AddMinutes(10).ToUnixTimeSeconds(),
            demand.Prompt, demand.MaxAge, started.ToUnixTimeSeconds());
        context.Response.Cookies.Append(CookieName, protector.Protect(JsonSerializer.Serialize(pending)), new CookieOptions
        {
            HttpOnly = true,
            Secure = context.Request.IsHttps,
            // Lax: the cookie must come back on the provider's top-level redirect to the callback.
            SameSite = SameSiteMode.Lax,
            MaxAge = TimeSpan.FromMinutes(10),
            Path = CallbackPath,
        });
        var challenge = System.Buffers.Text.Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(pending.Verifier)));
        // RFC 6749 §3.1: the endpoint may carry a query of its own (Azure AD B2C's ?p=policy), which is kept.
        var endpoint = metadata.GetProperty("authorization_endpoint").GetString()!;
        var url = endpoint + (endpoint.Contains('?', StringComparison.Ordinal) ? "&" : "?") + string.Join('&', new Dictionary<string, string>
        {
            ["response_type"] = "code",
            ["client_id"] = options.Upstream.ClientId!,
            ["redirect_uri"] = RedirectUri,
            ["scope"] = "openid email profile",
            ["state"] = pending.State,
            ["nonce"] = pending.Nonce,
            ["code_challenge"] = challenge,
            ["code_challenge_method"] = "S256",
        }
        // OIDC Core §3.1.2.1: what the application asked of this sign-in (prompt=login or select_account, max_age),
        // asked of the upstream in turn; its ID token's auth_time then says when it authenticated the person.
        .Concat(demand.ToParameters())
        .Select(p => $"{p.Key}={Uri.EscapeDataString(p.Value)}"));
        return Results.Redirect(url);
    }

    public async Task<IResult> CallbackAsync(HttpContext context, UserManager<NexusUser> users, SignInManager<NexusUser> signIn, DeploymentSettings settings)
    {
        var ct = context.RequestAborted;
        var query = context.Request.Query;
        context.Response.Cookies.Delete(CookieName, new CookieOptions { Path = CallbackPath });
        Pending? pending = null;
        try
        {
            if (context.Request.Cookies[CookieName] is { } cookie)
            {
                pending = JsonSerializer.Deserialize<Pending>(protector.Unprotect(cookie));
            }
        }
        catch (CryptographicException)
        {
            pending = null;
        }

        if (pending is null || pending.ExpiresAt < time.GetUtcNow().ToUnixTimeSeconds()
            || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(query["state"].ToString()), Encoding.UTF8.GetBytes(pending.State)))
        {
            return Error(context, "Sign-in expired", "This sign-in attempt is no longer valid. Start again from the sign-in page.");
        }

        if (query["error"].Count > 0)
        {
            return Error(context, "Sign-in was not completed", $"{DisplayName} answered: {query["error"]}.");
        }

        TokenValidationResult validation;
        try
        {
            var (metadata, keys) = await DiscoverAsync(ct);
            using var request = new HttpRequestMessage(HttpMethod.Post, metadata.GetProperty("token_endpoint").GetString())
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string>
                {
                    ["grant_type"] = "authorization_code",
                    ["code"] = query["code"].ToString(),
                    ["redirect_uri"] = RedirectUri,
                    ["code_verifier"] = pending.Verifier,
                }),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(
                $"{Uri.EscapeDataString(options.Upstream.ClientId!)}:{Uri.EscapeDataString(options.Upstream.ClientSecret ?? "")}")));
            using var response = await http.CreateClient(HttpClientName).SendAsync(request, ct);
            if (!response.IsSuccessStatusCode)
            {
                return Error(context, "Sign-in failed", $"{DisplayName} did not accept the sign-in ({(int)response.StatusCode}).", StatusCodes.Status502BadGateway);
            }

            using var tokens = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            if (tokens.RootElement.ValueKind != JsonValueKind.Object || !tokens.RootElement.TryGetProperty("id_token", out var idToken) || idToken.ValueKind != JsonValueKind.String)
            {
                throw new UpstreamAnswerException("The token answer has no id_token.");
            }

            validation = await new JsonWebTokenHandler().ValidateTokenAsync(idToken.GetString(), new TokenValidationParameters
            {
                ValidIssuer = metadata.GetProperty("issuer").GetString(),
                ValidAudience = options.Upstream.ClientId,
                IssuerSigningKeys = keys.GetSigningKeys(),
                ValidAlgorithms = ["RS256", "ES256", "PS256"],
            });
        }
        catch (Exception e) when (IsUpstreamFailure(e, ct))
        {
            return Unavailable(context, e);
        }

        if (!validation.IsValid || Claim(validation.Claims, "nonce") as string != pending.Nonce)
        {
            return Error(context, "Sign-in failed", $"The identity token from {DisplayName} could not be verified.", StatusCodes.Status502BadGateway);
        }

        // OIDC Core §2: auth_time is when the person authenticated. The upstream's own single sign-on may have let them
        // through without asking anything now, so its auth_time (when it sent one, and not in the future) is when.
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        var upstreamAuthTime = Claim(validation.Claims, "auth_time") switch
        {
            long l when l >= 0 => l,
            int i when i >= 0 => i,
            double d when d is >= 0 and < long.MaxValue => (long)d,
            _ => (long?)null,
        };
        if (StaleFor(pending, upstreamAuthTime, now) is { } stale)
        {
            return Error(context, "Sign in again", stale, StatusCodes.Status401Unauthorized);
        }

        // OIDC Core §2: sub is REQUIRED; a token without it identifies nobody.
        if (Claim(validation.Claims, "sub") is not string { Length: > 0 } subject)
        {
            return Error(context, "Sign-in failed", $"The identity token from {DisplayName} names no subject.", StatusCodes.Status502BadGateway);
        }

        var email = Claim(validation.Claims, "email") as string;
        var verified = Claim(validation.Claims, "email_verified") is true or "true";
        var user = await users.FindByLoginAsync(options.Upstream.Issuer!, subject);
        if (user is null)
        {
            // Matching by email is only safe when the provider vouches for the address.
            if (email is null || !verified)
            {
                return Error(context, "Email not verified", $"{DisplayName} did not confirm an email address for this account, so it cannot be matched to a Nexus account.", StatusCodes.Status403Forbidden);
            }

            user = await users.FindByEmailAsync(email);
            if (user is not null && UserAdministration.IsDisabled(user, time.GetUtcNow()))
            {
                // Before anything is linked to it.
                return Disabled(context);
            }

            if (user is { EmailConfirmed: false })
            {
                // Account pre-hijacking: anyone may sign up with any address (sign-up confirms none), so an account whose
                // address was never confirmed may belong to someone who set it up, and kept its password, to wait for
                // the address's owner. The upstream proves the address, not that its owner made this account: link it
                // only for a person who is signed in to it now (they hold its password too), and confirm the address.
                if (UserAccounts.CurrentUserId(context) != user.Id)
                {
                    // Signing in with the password comes back here (a local path), and the upstream's answer then links the two.
                    var link = "/account/signin?returnUrl=" + Uri.EscapeDataString(StartPath + "?returnUrl=" + Uri.EscapeDataString(pending.ReturnUrl));
                    return Page(context, "Sign in with your password first", $"""
                        <section class="card"><h1>Sign in with your password first</h1>
                        <p role="alert">There is a Nexus account for the address {E(DisplayName)} confirmed, but that address was never confirmed for it.
                        If the account is yours, <a href="{E(link)}">sign in with its password</a>: {E(DisplayName)} is then linked to it, and either way in works.
                        If it is not yours, ask an administrator to remove it.</p></section>
                        """, StatusCodes.Status409Conflict);
                }

                user.EmailConfirmed = true;
                await users.UpdateAsync(user);
            }

            if (user is null && !await settings.IsSignUpEnabledAsync(ct))
            {
                // Closed sign-up closes every way in, this one included: only accounts an administrator created (or
                // that exist already) can be reached through the upstream provider.
                return Error(context, "No account", $"There is no Nexus account for the address {DisplayName} confirmed, and new accounts are not open. Ask an administrator to create yours, then sign in again.", StatusCodes.Status403Forbidden);
            }

            if (user is null)
            {
                (user, var errors, _) = await UserAccounts.CreateAsync(users, email, null, emailConfirmed: true);
                if (user is null)
                {
                    return Error(context, "Sign-in failed", string.Join(" ", errors));
                }
            }

            await users.AddLoginAsync(user, new UserLoginInfo(options.Upstream.Issuer!, subject, DisplayName));
        }

        // A disabled account is refused. A lockout after failed passwords is not: it stops password guessing, which the
        // upstream's sign-in is not, and anyone who knows the address could otherwise keep its owner out of single sign-on.
        if (UserAdministration.IsDisabled(user, time.GetUtcNow()))
        {
            return Disabled(context);
        }

        await signIn.SignInAsync(user, SignInTime.At(Math.Min(upstreamAuthTime ?? now, now)), PasswordChange.UpstreamMethod);
        return Results.Redirect(pending.ReturnUrl);
    }

    private static IResult Disabled(HttpContext context) => Error(context, "Account disabled", "This account is disabled. Ask an administrator.", StatusCodes.Status423Locked);

    private static object? Claim(IDictionary<string, object> claims, string name) => claims.TryGetValue(name, out var value) ? value : null;

    /// <summary>
    /// What the upstream can do that is no fault of the person's: be unreachable or slow (HttpClient's timeout, not the
    /// request's own cancellation), or answer discovery, JWKS or the token request with something of another shape (not
    /// JSON, a member missing or of another type, keys that do not parse, another issuer).
    /// </summary>
    private static bool IsUpstreamFailure(Exception e, CancellationToken ct) =>
        e is HttpRequestException or JsonException or UpstreamAnswerException || (e is OperationCanceledException && !ct.IsCancellationRequested);

    /// <summary>The upstream answered, with something sign-in cannot use (checked here, so that Nexus's own errors are not taken for it).</summary>
    private sealed class UpstreamAnswerException(string message, Exception? inner = null) : Exception(message, inner);

    /// <summary>A page that says the upstream cannot be used now (502), and the reason in the log, not on the page.</summary>
    private IResult Unavailable(HttpContext context, Exception e)
    {
        logger.LogWarning(e, "Sign-in through {Upstream} failed", DisplayName);
        return Error(context, "Sign-in unavailable",
            $"{DisplayName} could not be reached, or answered in a way Nexus cannot use. Try again later, or sign in with your Nexus password.", StatusCodes.Status502BadGateway);
    }

    /// <summary>
    /// Why the upstream's answer does not meet what the application asked of this sign-in (null when it does), so that
    /// an upstream that ignored the request cannot make Nexus vouch for an authentication it did not see. OIDC Core
    /// §3.1.2.1: with max_age the ID token MUST hold auth_time, and it must be no older than max_age; with prompt=login
    /// it must not be older than the moment the person left for the upstream. An answer without auth_time to a
    /// prompt=login alone is taken as the fresh authentication the upstream was asked for (the specification requires
    /// the provider to re-authenticate, not to send auth_time; Google, for one, sends it only when asked with max_age).
    /// </summary>
    private string? StaleFor(Pending pending, long? authTime, long now)
    {
        var skew = (long)ClockSkew.TotalSeconds;
        if (pending.MaxAge is { } maxAge && (authTime is not { } at || now - at > maxAge + skew))
        {
            return $"The application asked for a sign-in at most {maxAge} seconds old, and {DisplayName} did not say it signed you in since. Sign in again, or use your Nexus password.";
        }

        if (pending.Prompt?.Split(' ').Contains("login") == true && authTime is { } then && then < pending.StartedAt - skew)
        {
            return $"The application asked for a fresh sign-in, and {DisplayName} let you through on an earlier one. Sign in again, or use your Nexus password.";
        }

        return null;
    }

    private static string SecretToken() => System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
}

internal static class UpstreamSignInEndpoints
{
    public static void MapUpstreamSignIn(this IEndpointRouteBuilder app)
    {
        app.MapGet("/account/external/start", (HttpContext context, string? returnUrl, string? prompt, string? max_age, UpstreamSignIn upstream) =>
            upstream.StartAsync(context, returnUrl, SignInDemand.Parse(prompt, max_age))).ExcludeFromDescription();
        app.MapGet("/account/external/callback", (HttpContext context, UpstreamSignIn upstream, UserManager<NexusUser> users, SignInManager<NexusUser> signIn, DeploymentSettings settings) =>
            upstream.CallbackAsync(context, users, signIn, settings)).ExcludeFromDescription();
    }
}
