using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Nexus.Server.Accounts;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Grants;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// GET /oauth2/authorize (RFC 6749 §3.1, §4.1.1), the same request POSTed by an application (OIDC Core §3.1.2.1,
/// <see cref="PostedRequests"/>), and the documented alias GET /api/oauth/authorize, which sends no response_type. Signs the user in if needed, asks for consent once per application and scope set, and
/// answers the client's redirect URI with a single-use code, state and iss (RFC 9207).
/// </summary>
internal static class AuthorizeEndpoint
{
    public const string Path = "/oauth2/authorize";
    public const string SeedPath = "/api/oauth/authorize";

    public static void MapAuthorizeEndpoint(this IEndpointRouteBuilder app)
    {
        app.MapGet("/oauth2/authorize", (HttpContext context, ClientRegistry clients) => AuthorizeAsync(context, clients, context.Request.Query, defaultResponseType: false)).WithTags("OAuth");
        app.MapGet("/api/oauth/authorize", (HttpContext context, ClientRegistry clients) => AuthorizeAsync(context, clients, context.Request.Query, defaultResponseType: true)).WithTags("OAuth");
        app.MapPost("/oauth2/authorize", ConsentAsync).WithTags("OAuth").AcceptRequestsByPost(Path).RequireProtectedForm();
    }

    private static async Task<IResult> AuthorizeAsync(HttpContext context, ClientRegistry clients, IEnumerable<KeyValuePair<string, StringValues>> parameters, bool defaultResponseType)
    {
        var services = context.RequestServices;
        var options = services.GetRequiredService<NexusOptions>();
        var (request, error) = await AuthorizationRequestValidator.ValidateAsync(parameters, clients, options, defaultResponseType, context.RequestAborted,
            services.GetRequiredService<ClientMetadataDocuments>(), FixedWindowCounter.AddressKey(context));
        if (request is null)
        {
            return await ErrorResultAsync(context, error!, options);
        }

        var prompts = request.Prompt?.Split(' ') ?? [];
        var userId = UserAccounts.CurrentUserId(context);
        if (userId is null || prompts.Contains("login") || prompts.Contains("select_account") || await TooOldAsync(context, request))
        {
            if (prompts.Contains("none"))
            {
                return await ErrorResultAsync(context, Failure(request, OAuthErrorCatalog.LoginRequired, "The user is not signed in."), options);
            }

            // Not signed out here: any site can send a person's browser to this GET (the session cookie is Lax), so
            // signing out would let it end their session at will, which RP-Initiated Logout asks them to confirm. The
            // sign-in page's successful sign-in replaces the session; leaving it keeps the one they had.
            // Come back to the same request once signed in, without the prompt that sent us to sign-in. The sign-in
            // page is told what the request asked (login, select_account, max_age): a sign-in through the upstream
            // provider asks it of the upstream in turn, whose single sign-on would otherwise let the person through unasked.
            var demand = SignInDemand.Parse(request.Prompt, request.MaxAge?.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return Results.Redirect($"{AccountEndpoints.SignInPath}?returnUrl={Uri.EscapeDataString(Back(request))}{demand.ToQuery()}");
        }

        if (PasswordChange.IsRequired(context.User))
        {
            // Signed in with a temporary password (Accounts/PasswordChange.cs): no code until the person chose their own.
            // OIDC Core §3.1.2.6: prompt=none cannot show that page, so it is interaction_required.
            if (prompts.Contains("none"))
            {
                return await ErrorResultAsync(context, Failure(request, OAuthErrorCatalog.InteractionRequired, "The user must change their password first."), options);
            }

            return Results.Redirect(PasswordChange.PageFor(Back(request)));
        }

        var grants = services.GetRequiredService<GrantStore>();
        var consented = await grants.GetConsentAsync(userId, request.Client.ClientId, context.RequestAborted);
        // RFC 6749 §4.1.1 / §10.2: the code needs the resource owner's authorization. Without a consent row for this
        // user and client there is none, even for an empty scope list (an application registered with no scopes), which
        // every consent would cover vacuously.
        // RFC 8252 §8.6: a public client redirecting to a loopback port or a private-use scheme cannot prove who it is (any
        // app on the device can listen there and send the person's browser here with the client's id), so a consent on
        // record does not stand in for the person: they are asked each time, as if nothing had been approved before.
        var assured = !request.Client.IsPublic || RedirectUris.ReachesOnlyItsClient(request.RedirectUri);
        // RFC 9700 §4.11.2 / §2.1: a client that registered itself chose its redirect URIs, and the consent page named
        // only the one of its request; a consent on record stands only for a redirect URI the person was shown, or such
        // a client would register a trusted-looking one beside its own and receive codes at the other with no one asked.
        var shown = consented is not null && (!request.Client.IsSelfRegistered || Consented(consented, request.Client, request.RedirectUri));
        if (assured && shown && request.Scopes.All(consented!.Scopes.Contains) && !prompts.Contains("consent"))
        {
            return await IssueCodeAsync(context, request, userId, options);
        }

        if (prompts.Contains("none"))
        {
            return await ErrorResultAsync(context, Failure(request, OAuthErrorCatalog.ConsentRequired, consented is null
                ? "The user has not authorized this application yet."
                : !assured ? "This application's redirect URI does not prove its identity (RFC 8252 §8.6), so the user is asked each time."
                : !shown ? "The user has not authorized this application to return to this redirect URI."
                : "The user has not authorized this application yet."), options);
        }

        return ConsentPage(context, request);
    }

    /// <summary>
    /// OIDC Core §3.1.2.1 max_age: "If the elapsed time is greater than this value, the OP MUST attempt to actively
    /// re-authenticate the End-User" (max_age=0 always does, as prompt=login). The time is when the person signed in
    /// (<see cref="SignInTime"/>), not when the session cookie was last renewed.
    /// </summary>
    private static async Task<bool> TooOldAsync(HttpContext context, AuthorizationRequest request)
    {
        if (request.MaxAge is not { } maxAge)
        {
            return false;
        }

        var signedIn = SignInTime.Of((await context.AuthenticateAsync(IdentityConstants.ApplicationScheme)).Properties);
        var now = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow().ToUnixTimeSeconds();
        return maxAge == 0 || signedIn is not { } at || now - at > maxAge;
    }

    /// <summary>
    /// The same request as a GET (a POSTed one too), without the prompt values or max_age that sent the person to sign
    /// in (they have just authenticated, which these asked for; kept, max_age=0 would send them back for ever). A
    /// prompt of consent stays (OIDC Core §3.1.2.1: the person is asked again, even with a consent on record).
    /// </summary>
    private static string Back(AuthorizationRequest request) =>
        Path + "?" + string.Join('&', request.Parameters.Where(p => p.Key != "max_age")
            .Select(p => p.Key == "prompt" ? new(p.Key, string.Join(' ', p.Value.Split(' ').Where(v => v == "consent"))) : p)
            .Where(p => !(p.Key == "prompt" && p.Value.Length == 0))
            .Append(new("response_type", "code"))
            .DistinctBy(p => p.Key).Select(p => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(p.Value)}"));

    /// <summary>The consent form posts the original parameters back; they are validated again from scratch.</summary>
    private static async Task<IResult> ConsentAsync(HttpContext context, ClientRegistry clients)
    {
        var form = ProtectedForm.Of(context);

        var services = context.RequestServices;
        var options = services.GetRequiredService<NexusOptions>();
        var (request, error) = await AuthorizationRequestValidator.ValidateAsync(
            form.Where(f => f.Key != "decision" && f.Key != ProtectedForm.FieldName), clients, options, defaultResponseType: true, context.RequestAborted);
        if (request is null)
        {
            return await ErrorResultAsync(context, error!, options);
        }

        if (UserAccounts.CurrentUserId(context) is not { } userId)
        {
            return Error(context, "Signed out", "Your session ended before you answered. Start again from the application.", StatusCodes.Status401Unauthorized);
        }

        if (PasswordChange.IsRequired(context.User))
        {
            return Error(context, "Change your password first", "You signed in with a temporary password. Choose your own, then start again from the application.", StatusCodes.Status403Forbidden);
        }

        if (form["decision"] != "allow")
        {
            return Redirect(request, options, ("error", OAuthErrorCatalog.AccessDenied.Error), ("error_description", "The user declined the request."));
        }

        await services.GetRequiredService<GrantStore>().SaveConsentAsync(userId, request.Client.ClientId, request.Scopes, request.RedirectUri,
            AnyLoopbackPort(request.Client), context.RequestAborted);
        return await IssueCodeAsync(context, request, userId, options);
    }

    private static async Task<IResult> IssueCodeAsync(HttpContext context, AuthorizationRequest request, string userId, NexusOptions options)
    {
        var services = context.RequestServices;
        var time = services.GetRequiredService<TimeProvider>();
        var authenticated = await context.AuthenticateAsync(IdentityConstants.ApplicationScheme);
        // OIDC Core §2 auth_time: when the person authenticated, which a renewal of the session cookie does not move.
        var authTime = SignInTime.Of(authenticated.Properties) ?? time.GetUtcNow().ToUnixTimeSeconds();
        var code = SecretGenerator.Secret("nxa_");
        // The session that approves it: a code approved by a session that a password reset ended (which another
        // instance may still accept for SessionCheckSeconds) is refused when it is redeemed (AuthorizationCodeGrant).
        var stamp = authenticated.Principal?.FindFirstValue(services.GetRequiredService<IOptions<IdentityOptions>>().Value.ClaimsIdentity.SecurityStampClaimType);
        // RFC 9700 §4.5: codes are single-use, short-lived and bound to client, redirect URI and PKCE challenge.
        await services.GetRequiredService<GrantStore>().SaveCodeAsync(code, new AuthorizationCodeRecord(
            request.Client.ClientId, userId, request.RedirectUri, request.Scopes, request.CodeChallenge, request.Nonce, authTime,
            time.GetUtcNow().AddSeconds(AuthorizationRequestValidator.CodeLifetimeSeconds).ToUnixTimeMilliseconds(), request.Resource, request.RedirectUriSent,
            stamp is null ? null : GrantStore.StampHash(stamp)), context.RequestAborted);
        return Redirect(request, options, ("code", code));
    }

    private static IResult Redirect(AuthorizationRequest request, NexusOptions options, params (string, string)[] parameters)
    {
        return Results.Redirect(AuthorizationRequestValidator.BuildRedirect(request.RedirectUri, options.Issuer, request.State, parameters));
    }

    private static AuthorizationError Failure(AuthorizationRequest request, OAuthError error, string description) =>
        new(error, description, request.RedirectUri, request.State, request.Client);

    /// <summary>
    /// RFC 9700 §4.11.2: an authorization server redirects automatically only to a redirection URI it trusts. A client
    /// that registered itself (RFC 7591, or a client ID metadata document anyone can publish) chose its redirect URIs
    /// itself: until the signed-in person has authorized it to return to that redirect URI, its errors are shown on a
    /// Nexus page, or any site could bounce a browser off Nexus to wherever such a client says, with no one asked. (A refusal on the consent page is
    /// redirected: the page told the person where they go back.)
    /// </summary>
    private static async Task<bool> TrustsRedirectAsync(HttpContext context, OAuthClient? client, string redirectUri) =>
        client is null || !client.IsSelfRegistered
        || (UserAccounts.CurrentUserId(context) is { } userId
            && await context.RequestServices.GetRequiredService<GrantStore>().GetConsentAsync(userId, client.ClientId, context.RequestAborted) is { } consent
            && Consented(consent, client, redirectUri));

    /// <summary>Whether the person consented with this redirect URI: as a redirect URI matches a registered one (a native app's loopback redirect on any port).</summary>
    private static bool Consented(Consent consent, OAuthClient client, string redirectUri) =>
        consent.RedirectUris.Any(r => RedirectUris.Matches(r, redirectUri, AnyLoopbackPort(client)));

    /// <summary>RFC 8252 §7.3, as <see cref="RedirectUris.IsRegistered"/> matches.</summary>
    private static bool AnyLoopbackPort(OAuthClient client) => client.IsPublic || client.IsSelfRegistered;

    private static async Task<IResult> ErrorResultAsync(HttpContext context, AuthorizationError error, NexusOptions options) =>
        error.RedirectUri is null || !await TrustsRedirectAsync(context, error.Client, error.RedirectUri)
            ? Error(context, "This sign-in link is not valid", error.Description)
            : Results.Redirect(AuthorizationRequestValidator.BuildRedirect(error.RedirectUri, options.Issuer, error.State, ("error", error.Error.Error), ("error_description", OAuthResponses.Description(error.Description))));

    /// <summary>The host a URI points to (with its port), or the scheme of a native app's private-use redirect.</summary>
    private static string RedirectHost(string uri) =>
        Uri.TryCreate(uri, UriKind.Absolute, out var parsed) ? (string.IsNullOrEmpty(parsed.Authority) ? parsed.Scheme + ":" : parsed.Authority) : uri;

    private const string OfflineAccess = "offline_access";

    private static IResult ConsentPage(HttpContext context, AuthorizationRequest request)
    {
        var client = request.Client;
        var hidden = string.Concat(request.Parameters.Where(p => p.Key != "prompt").Select(p => $"<input type=\"hidden\" name=\"{E(p.Key)}\" value=\"{E(p.Value)}\">"));
        var scopes = request.Scopes.Count == 0
            ? $"<li>{E(ScopeDescriptions.NoScope)}</li>"
            : string.Concat(request.Scopes.Select(s => $"<li>{E(ScopeDescriptions.Describe(s))} <span class=\"muted\">(<code>{E(s)}</code>)</span></li>"));
        if (client.GrantTypes.Contains(GrantTypes.RefreshToken) && !request.Scopes.Contains(OfflineAccess))
        {
            // The client gets a refresh token whether or not it asked for offline_access (AuthorizationCodeGrant), so the
            // person is told what that means (RFC 6749 §10.2 / OpenID Connect Core §11: consent to access while away).
            scopes += $"<li>{E(ScopeDescriptions.Describe(OfflineAccess))}</li>";
        }

        // A self-registered client's site is its own claim, like its name: said so, so that a borrowed address is not read as proof.
        var site = client.BaseUrl is null ? "" : $"<p class=\"muted\">{E(client.BaseUrl)}{(client.IsSelfRegistered ? " (its own claim, not verified)" : "")}</p>";
        var description = client.Description is null ? "" : $"<p>{E(client.Description)}</p>";
        // A client that registered itself (RFC 7591, or a client ID metadata document) chose its own name: say so, and
        // show where the answer goes, which is what the person can actually check.
        var redirectHost = RedirectHost(request.RedirectUri);
        var origin = client.Registration switch
        {
            ClientRegistrations.MetadataDocument => $"<p class=\"banner\">This application registered itself; its details come from <strong>{E(RedirectHost(client.ClientId))}</strong>. Nexus has not verified it. After you answer, you go back to <strong>{E(redirectHost)}</strong>.</p>",
            ClientRegistrations.Dynamic => $"<p class=\"banner\">This application registered itself with Nexus; its name was not verified. After you answer, you go back to <strong>{E(redirectHost)}</strong>.</p>",
            _ => "",
        };
        if (request.Resource == context.RequestServices.GetRequiredService<NexusOptions>().McpResource)
        {
            origin += "<p class=\"muted\">It will use these permissions through Nexus's assistant tools (MCP).</p>";
        }
        var email = context.User.FindFirstValue(ClaimTypes.Email);
        return Page(context, "Authorize " + client.Name, $"""
            <section class="card narrow"><h1><strong>{E(client.Name)}</strong> wants to access your Nexus account</h1>{site}{description}{origin}
            <p>Signed in as <strong>{E(email)}</strong>. It will be able to:</p><ul class="scopes">{scopes}</ul>
            <form method="post" action="{Path}">{AntiforgeryField(context)}{hidden}
            <div class="actions"><button type="submit" name="decision" value="allow">Allow</button>
            <button type="submit" name="decision" value="deny" class="secondary">Deny</button></div></form>
            <p class="muted">You can withdraw this at any time under <a href="/account/applications">Authorized applications</a>.</p></section>
            """);
    }
}
