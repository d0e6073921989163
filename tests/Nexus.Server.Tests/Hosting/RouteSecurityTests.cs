using System.Net;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// Every route Nexus maps, with the authentication, authorization and antiforgery it must enforce. The table is the
/// reviewable statement of who may call what: a route that is mapped but missing here fails the build of the suite,
/// so a new route cannot ship open by accident, and each row is checked against the running server.
/// </summary>
public sealed class RouteSecurityTests(RouteSecurityTests.Fixture fixture) : IClassFixture<RouteSecurityTests.Fixture>
{
    /// <summary>Who may call a route.</summary>
    public enum Access
    {
        /// <summary>Anyone: discovery, JWKS, health, sign-in pages, assets.</summary>
        Public,

        /// <summary>An OAuth client authenticating itself (RFC 6749 §2.3): token, introspection, revocation, exchange.</summary>
        OAuthClient,

        /// <summary>A Bearer access token issued by Nexus (RFC 6750).</summary>
        Bearer,

        /// <summary>The admin API key (X-API-Key).</summary>
        AdminKey,

        /// <summary>A gateway API key (X-API-Key), limited to its workspaces.</summary>
        GatewayKey,

        /// <summary>A signed-in person (session cookie).</summary>
        User,

        /// <summary>A signed-in system administrator (session cookie).</summary>
        SiteAdmin,

        /// <summary>A signed, single-use broker state in the request (the provider callback, the credential form).</summary>
        SignedState,
    }

    /// <summary>
    /// A route: its method and pattern as mapped, who may call it, whether it is a cookie form that needs an antiforgery
    /// token, and whether it also takes an application's request by POST (a form without the token field, answered
    /// 303 to the GET of the same parameters: AuthorizationServer/PostedRequests.cs).
    /// </summary>
    public sealed record Route(string Method, string Pattern, Access Access, bool Antiforgery = false, bool PostedRequests = false);

    public static readonly Route[] Table =
    [
        new("GET", "/", Access.Public),
        new("GET", "/healthz", Access.Public),
        new("GET", "/readyz", Access.Public),
        new("GET", "/assets/nexus.css", Access.Public),
        new("GET", "/assets/nexus.js", Access.Public),
        new("GET", "/.well-known/jwks.json", Access.Public),
        new("GET", "/.well-known/oauth-authorization-server", Access.Public),
        new("GET", "/.well-known/openid-configuration", Access.Public),
        new("GET", "/oauth2/jwks", Access.Public),
        // RFC 9728 metadata of the MCP server, and RFC 7591 registration: open by design (Nexus:Registration:Mode
        // may require an initial access token or turn it off), rate-limited per address.
        new("GET", "/.well-known/oauth-protected-resource", Access.Public),
        new("GET", "/.well-known/oauth-protected-resource/mcp", Access.Public),
        new("POST", "/oauth2/register", Access.Public),
        // Nexus's own client ID metadata document as an MCP client (RemoteMcp): public like any client's metadata.
        new("GET", "/mcp-client-metadata.json", Access.Public),
        new("GET", "/v1/catalog", Access.Public),
        // The API reference: the OpenAPI document and its interactive page (Scalar, assets bundled).
        new("GET", "/openapi/v1.json", Access.Public),
        new("GET", "/docs/api/{documentName?}", Access.Public),
        new("GET", "/docs/api/scalar.js", Access.Public),
        new("GET", "/docs/api/scalar.aspnetcore.js", Access.Public),
        new("GET", "/docs/api/favicon.svg", Access.Public),

        // Accounts: the sign-in and sign-up forms are public, but their POSTs carry an antiforgery token (login CSRF).
        new("GET", "/account/signin", Access.Public),
        new("POST", "/account/signin", Access.Public, Antiforgery: true),
        new("GET", "/account/signup", Access.Public),
        new("POST", "/account/signup", Access.Public, Antiforgery: true),
        new("POST", "/account/signout", Access.User, Antiforgery: true),
        new("GET", "/account/password", Access.User),
        new("POST", "/account/password", Access.User, Antiforgery: true),
        new("GET", "/account/external/start", Access.Public),
        new("GET", "/account/external/callback", Access.Public),
        new("GET", "/account/applications", Access.User),
        // Becoming the administrator: a signed-in person with the operator's one-time setup token.
        new("GET", "/setup", Access.User),
        new("POST", "/setup", Access.User, Antiforgery: true),
        new("GET", "/account/applications/{clientId}/withdraw", Access.User),
        new("POST", "/account/applications/{clientId}/withdraw", Access.User, Antiforgery: true),

        // The authorization server. /oauth2/authorize asks a person to sign in; its POST is the consent form, or an
        // application's authorization request by POST (OIDC Core §3.1.2.1).
        new("GET", "/oauth2/authorize", Access.Public),
        new("POST", "/oauth2/authorize", Access.User, Antiforgery: true, PostedRequests: true),
        new("GET", "/api/oauth/authorize", Access.Public),
        new("GET", "/oauth2/logout", Access.Public),
        // RP-initiated logout without a valid id_token_hint asks first; the confirmation is a protected form. An
        // application may POST its logout request too (RP-Initiated Logout §2).
        new("POST", "/oauth2/logout", Access.Public, Antiforgery: true, PostedRequests: true),
        new("POST", "/oauth2/token", Access.OAuthClient),
        new("POST", "/nexus/oauth2/token", Access.OAuthClient),
        new("POST", "/oauth2/introspect", Access.OAuthClient),
        new("POST", "/oauth2/revoke", Access.OAuthClient),
        new("POST", "/api/v1/oauth/exchange", Access.OAuthClient),
        new("GET", "/oauth2/userinfo", Access.Bearer),
        new("POST", "/oauth2/userinfo", Access.Bearer),
        new("GET", "/api/v1/me", Access.Bearer),

        // The admin API.
        new("GET", "/v1/admin/api-keys", Access.AdminKey),
        new("POST", "/v1/admin/api-keys", Access.AdminKey),
        new("GET", "/v1/admin/api-keys/{id}", Access.AdminKey),
        new("DELETE", "/v1/admin/api-keys/{id}", Access.AdminKey),
        new("GET", "/v1/admin/applications", Access.AdminKey),
        new("POST", "/v1/admin/applications", Access.AdminKey),
        new("GET", "/v1/admin/applications/{clientId}", Access.AdminKey),
        new("PATCH", "/v1/admin/applications/{clientId}", Access.AdminKey),
        new("DELETE", "/v1/admin/applications/{clientId}", Access.AdminKey),
        new("POST", "/v1/admin/applications/{clientId}/secret", Access.AdminKey),
        new("GET", "/v1/admin/audit", Access.AdminKey),
        new("GET", "/v1/admin/clients", Access.AdminKey),
        new("POST", "/v1/admin/clients", Access.AdminKey),
        new("GET", "/v1/admin/clients/{clientId}", Access.AdminKey),
        new("PATCH", "/v1/admin/clients/{clientId}", Access.AdminKey),
        new("DELETE", "/v1/admin/clients/{clientId}", Access.AdminKey),
        new("POST", "/v1/admin/clients/{clientId}/secret", Access.AdminKey),
        new("GET", "/v1/admin/settings", Access.AdminKey),
        new("PATCH", "/v1/admin/settings", Access.AdminKey),
        new("GET", "/v1/admin/signing-keys", Access.AdminKey),
        new("POST", "/v1/admin/signing-keys/rotate", Access.AdminKey),
        new("GET", "/v1/admin/users", Access.AdminKey),
        new("POST", "/v1/admin/users", Access.AdminKey),
        new("POST", "/v1/admin/users/{id}/admin", Access.AdminKey),
        new("DELETE", "/v1/admin/users/{id}/admin", Access.AdminKey),
        new("POST", "/v1/admin/users/{id}/disable", Access.AdminKey),
        new("POST", "/v1/admin/users/{id}/enable", Access.AdminKey),
        new("POST", "/v1/admin/users/{id}/reset-password", Access.AdminKey),
        new("GET", "/v1/admin/webhooks", Access.AdminKey),
        new("POST", "/v1/admin/webhooks", Access.AdminKey),
        new("PATCH", "/v1/admin/webhooks/{id}", Access.AdminKey),
        new("POST", "/v1/admin/webhooks/{id}/secret", Access.AdminKey),
        new("DELETE", "/v1/admin/webhooks/{id}", Access.AdminKey),
        new("GET", "/v1/admin/webhooks/{id}/deliveries", Access.AdminKey),
        new("POST", "/v1/admin/webhooks/{id}/test", Access.AdminKey),
        new("POST", "/v1/admin/webhooks/{id}/deliveries/{deliveryId}/retry", Access.AdminKey),
        // The Prometheus scrape (Observability): traffic and key ages, for the operator only.
        new("*", "/metrics", Access.AdminKey),
        new("GET", "/v1/providers", Access.AdminKey),
        new("POST", "/v1/providers", Access.AdminKey),
        new("GET", "/v1/providers/{name}", Access.AdminKey),
        new("PATCH", "/v1/providers/{name}", Access.AdminKey),
        new("DELETE", "/v1/providers/{name}", Access.AdminKey),

        // The gateway: connections and credentials, by workspace-bound API key.
        new("POST", "/v1/request-connection", Access.GatewayKey),
        new("GET", "/v1/connections", Access.GatewayKey),
        new("GET", "/v1/connections/{connectionId}", Access.GatewayKey),
        new("DELETE", "/v1/connections/{connectionId}", Access.GatewayKey),
        new("POST", "/v1/connections/{connectionId}/credentials", Access.GatewayKey),
        new("POST", "/v1/connections/{connectionId}/reconnect", Access.GatewayKey),
        new("GET", "/v1/token/{connectionId}", Access.GatewayKey),
        new("POST", "/v1/refresh/{connectionId}", Access.GatewayKey),
        new("*", "/v1/bridge/{connectionId}", Access.GatewayKey),
        new("*", "/v1/bridge/{connectionId}/{**path}", Access.GatewayKey),
        new("*", "/v1/proxy/{**path}", Access.GatewayKey),

        // The broker's browser legs: only a state Nexus signed gets anywhere.
        new("GET", "/auth/callback", Access.SignedState),
        new("GET", "/connect/credentials", Access.SignedState),
        new("POST", "/connect/credentials", Access.SignedState, Antiforgery: true),
        new("GET", "/connect/values", Access.SignedState),
        new("POST", "/connect/values", Access.SignedState, Antiforgery: true),

        // My connections.
        new("GET", "/dashboard", Access.User),
        new("GET", "/dashboard/connect/{provider}", Access.User),
        new("POST", "/dashboard/connect/{provider}", Access.User, Antiforgery: true),
        new("GET", "/dashboard/connections/{connectionId}/revoke", Access.User),
        new("POST", "/dashboard/connections/{connectionId}/revoke", Access.User, Antiforgery: true),
        new("GET", "/dashboard/connections/{connectionId}/reconnect", Access.User),
        new("POST", "/dashboard/connections/{connectionId}/reconnect", Access.User, Antiforgery: true),
        new("GET", "/dashboard/returned", Access.User),

        // The MCP server (a Bearer token for the MCP resource) and the page its connect links open.
        new("POST", "/mcp/", Access.Bearer),
        new("GET", "/mcp/connect", Access.User),

        // Site management.
        new("GET", "/admin", Access.SiteAdmin),
        new("GET", "/admin/api-keys", Access.SiteAdmin),
        new("POST", "/admin/api-keys", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/api-keys/{id}/revoke", Access.SiteAdmin),
        new("POST", "/admin/api-keys/{id}/revoke", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/applications", Access.SiteAdmin),
        new("POST", "/admin/applications", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/applications/{clientId}/delete", Access.SiteAdmin),
        new("POST", "/admin/applications/{clientId}/delete", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/applications/{clientId}/secret", Access.SiteAdmin),
        new("POST", "/admin/applications/{clientId}/secret", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/audit", Access.SiteAdmin),
        new("GET", "/admin/clients", Access.SiteAdmin),
        new("POST", "/admin/clients", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/clients/{clientId}/delete", Access.SiteAdmin),
        new("POST", "/admin/clients/{clientId}/delete", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/clients/{clientId}/secret", Access.SiteAdmin),
        new("POST", "/admin/clients/{clientId}/secret", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/providers", Access.SiteAdmin),
        new("POST", "/admin/providers", Access.SiteAdmin, Antiforgery: true),
        new("POST", "/admin/providers/custom/new", Access.SiteAdmin, Antiforgery: true),
        new("POST", "/admin/providers/mcp/new", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/providers/{name}", Access.SiteAdmin),
        new("POST", "/admin/providers/{name}", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/providers/{name}/delete", Access.SiteAdmin),
        new("POST", "/admin/providers/{name}/delete", Access.SiteAdmin, Antiforgery: true),
        new("POST", "/admin/settings/sign-up", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/status", Access.SiteAdmin),
        new("GET", "/admin/users", Access.SiteAdmin),
        new("POST", "/admin/users", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/users/{id}/disable", Access.SiteAdmin),
        new("POST", "/admin/users/{id}/disable", Access.SiteAdmin, Antiforgery: true),
        new("POST", "/admin/users/{id}/enable", Access.SiteAdmin, Antiforgery: true),
        new("POST", "/admin/users/{id}/unlock", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/users/{id}/reset", Access.SiteAdmin),
        new("POST", "/admin/users/{id}/reset", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/webhooks", Access.SiteAdmin),
        new("POST", "/admin/webhooks", Access.SiteAdmin, Antiforgery: true),
        new("GET", "/admin/webhooks/{id}/delete", Access.SiteAdmin),
        new("POST", "/admin/webhooks/{id}/delete", Access.SiteAdmin, Antiforgery: true),
        new("POST", "/admin/webhooks/{id}/test", Access.SiteAdmin, Antiforgery: true),
        new("POST", "/admin/webhooks/{id}/pause", Access.SiteAdmin, Antiforgery: true),
        new("POST", "/admin/webhooks/{id}/resume", Access.SiteAdmin, Antiforgery: true),
        new("POST", "/admin/webhooks/{id}/secret", Access.SiteAdmin, Antiforgery: true),
        new("POST", "/admin/webhooks/{id}/deliveries/{deliveryId}/retry", Access.SiteAdmin, Antiforgery: true),
    ];

    private const string Password = "correct horse battery";

    private NexusTestServer Server => fixture.Server;

    [Fact]
    public void EveryMappedRouteIsInTheTableAndEveryRowIsMapped()
    {
        var mapped = Server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["*"]).Select(m => $"{m} {e.RoutePattern.RawText}"))
            .ToHashSet();
        var table = Table.Select(r => $"{r.Method} {r.Pattern}").ToHashSet();

        Assert.Empty(mapped.Except(table).Order()); // a new route: add it to the table with its access rule
        Assert.Empty(table.Except(mapped).Order()); // a route that went away: remove its row
        Assert.Equal(Table.Length, table.Count);
    }

    /// <summary>
    /// The routes that take a POST (or any method) with a body but are not HTML forms, so they carry no antiforgery
    /// filter: an OAuth client or a resource server posts to them with its own credential (client authentication,
    /// a Bearer token, an initial access token) and never with the session cookie, so a cross-site page gains nothing
    /// by making a browser post to them. The API-key routes (the admin API, the gateway) are recognised by their policy.
    /// </summary>
    private static readonly string[] NotForms =
    [
        "/oauth2/token", "/nexus/oauth2/token", // RFC 6749 §3.2: the client authenticates itself.
        "/oauth2/introspect", // RFC 7662 §2.1.
        "/oauth2/revoke", // RFC 7009 §2.1.
        "/api/v1/oauth/exchange", // The guide's exchange: client authentication like the token endpoint.
        "/oauth2/register", // RFC 7591 §3: JSON, open or with an initial access token.
        "/oauth2/userinfo", // OpenID Connect Core §5.3.1: a Bearer access token.
        "/mcp/", // The MCP server: a Bearer access token for the MCP resource.
        // The API-key short-circuits of the hot paths (AuthorizationPolicyTests): the Bridge, the proxy, the scrape.
        "/v1/bridge/{connectionId}", "/v1/bridge/{connectionId}/{**path}", "/v1/proxy/{**path}", "/metrics",
    ];

    [Fact]
    public void EveryFormRouteValidatesItsAntiforgeryTokenThroughTheFilter()
    {
        // Issue 13, item 2: antiforgery by one endpoint filter (Hosting/ProtectedForm.cs), not a line in each handler. A
        // route that accepts a POST is an HTML form unless it is an API-key route or one of NotForms; every form carries
        // the filter, so a new form mapped without it fails here (and then AFormRefusesAPostWithoutItsAntiforgeryToken).
        var unsafeRoutes = Server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods is not { } methods || methods.Any(m => m is not ("GET" or "HEAD" or "OPTIONS")))
            .ToList();
        var unprotected = new List<string>();
        foreach (var endpoint in unsafeRoutes)
        {
            var pattern = endpoint.RoutePattern.RawText!;
            var filtered = endpoint.Metadata.GetMetadata<ProtectedForm.Marker>() is not null;
            var apiKey = endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Any(a => a.Policy is NexusPolicies.AdminApiKey or NexusPolicies.GatewayApiKey);
            if (NotForms.Contains(pattern) || apiKey)
            {
                Assert.False(filtered, $"{pattern} is not an HTML form (OAuth clients and API keys send no antiforgery token), yet carries the filter");
            }
            else if (!filtered)
            {
                unprotected.Add(pattern);
            }
        }

        Assert.Empty(unprotected);
        Assert.True(unsafeRoutes.Count(e => e.Metadata.GetMetadata<ProtectedForm.Marker>() is not null) >= 30, "the forms were not found");

        // The table's Antiforgery column says the same as the routes' metadata, so the POST-without-token test covers every filtered route.
        var filteredRoutes = unsafeRoutes.Where(e => e.Metadata.GetMetadata<ProtectedForm.Marker>() is not null)
            .SelectMany(e => e.Metadata.GetMetadata<IHttpMethodMetadata>()!.HttpMethods.Select(m => $"{m} {e.RoutePattern.RawText}")).Order();
        Assert.Equal(Table.Where(r => r.Antiforgery).Select(r => $"{r.Method} {r.Pattern}").Order(), filteredRoutes);

        // Likewise the PostedRequests column: the routes that read a form without the token as an application's request.
        var postedRequestRoutes = unsafeRoutes.Where(e => e.Metadata.GetMetadata<PostedRequests.Marker>() is not null)
            .SelectMany(e => e.Metadata.GetMetadata<IHttpMethodMetadata>()!.HttpMethods.Select(m => $"{m} {e.RoutePattern.RawText}")).Order();
        Assert.Equal(Table.Where(r => r.PostedRequests).Select(r => $"{r.Method} {r.Pattern}").Order(), postedRequestRoutes);
    }

    public static TheoryData<string, string> Protected() =>
        new(Table.Where(r => r.Access != Access.Public).Select(r => (r.Method, r.Pattern)));

    [Theory]
    [MemberData(nameof(Protected))]
    public async Task AProtectedRouteRefusesARequestWithoutCredentials(string method, string pattern)
    {
        var route = Find(method, pattern);
        using var http = NoRedirects();
        using var response = await http.SendAsync(Request(route));
        var status = (int)response.StatusCode;
        var body = await response.Content.ReadAsStringAsync();
        switch (route.Access)
        {
            case Access.AdminKey:
            case Access.GatewayKey:
                Assert.Equal(401, status);
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                break;
            case Access.OAuthClient:
                // RFC 6749 §5.2: invalid_client (401) when the client did not authenticate, or invalid_request (400)
                // for a request missing what it needs before authentication matters; never a success.
                Assert.True(status is 400 or 401, $"{method} {pattern} answered {status}");
                Assert.Matches("\"error\":\"(invalid_client|invalid_request|unsupported_grant_type)\"", body);
                break;
            case Access.Bearer:
                // RFC 6750 §3.1.
                Assert.Equal(401, status);
                Assert.StartsWith("Bearer", response.Headers.WwwAuthenticate.ToString());
                break;
            case Access.User:
            case Access.SiteAdmin:
                Assert.True(IsSignInRedirect(response) || status is 400 or 401 or 403 || (route.PostedRequests && IsTheSameRequestByGet(response, pattern)),
                    $"{method} {pattern} answered {status} {response.Headers.Location}");
                break;
            case Access.SignedState:
                Assert.Equal(400, status);
                break;
        }

        Assert.DoesNotContain("access_token", body);
    }

    public static TheoryData<string, string> AdminKeyRoutes() =>
        new(Table.Where(r => r.Access == Access.AdminKey).Select(r => (r.Method, r.Pattern)));

    [Theory]
    [MemberData(nameof(AdminKeyRoutes))]
    public async Task TheAdminApiRefusesAGatewayKey(string method, string pattern)
    {
        var request = Request(Find(method, pattern));
        request.Headers.Add("X-API-Key", await fixture.GatewayKeyAsync());
        using var http = NoRedirects();
        using var response = await http.SendAsync(request);
        // Only the deployment's API_KEY opens the admin API: any other key is not an admin credential at all.
        Assert.True(response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden, $"{method} {pattern} answered {(int)response.StatusCode}");
    }

    public static TheoryData<string, string> SiteAdminRoutes() =>
        new(Table.Where(r => r.Access == Access.SiteAdmin).Select(r => (r.Method, r.Pattern)));

    [Theory]
    [MemberData(nameof(SiteAdminRoutes))]
    public async Task SiteManagementRefusesAPersonWhoIsNotTheAdministrator(string method, string pattern)
    {
        var browser = await fixture.PersonAsync();
        var request = Request(Find(method, pattern));
        if (method == "POST")
        {
            // With a valid antiforgery token, so that only the missing role can be what refuses it.
            request.Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["__csrf"] = fixture.PersonCsrf });
        }

        using var response = await browser.SendAsync(request);
        Assert.True(response.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.NotFound, $"{method} {pattern} answered {(int)response.StatusCode}");
    }

    public static TheoryData<string, string> Forms() =>
        new(Table.Where(r => r.Antiforgery).Select(r => (r.Method, r.Pattern)));

    [Theory]
    [MemberData(nameof(Forms))]
    public async Task AFormRefusesAPostWithoutItsAntiforgeryToken(string method, string pattern)
    {
        var route = Find(method, pattern);
        // Signed in with the rights the form needs, so that only the missing token can be what refuses it.
        var browser = route.Access == Access.SiteAdmin ? await fixture.AdministratorAsync() : await fixture.PersonAsync();
        var fields = new Dictionary<string, string>
        {
            ["email"] = "someone@example.com", ["password"] = Password, ["name"] = "x", ["state"] = "x", ["scope"] = "openid",
        };
        if (route.PostedRequests)
        {
            // Without the field the form is an application's request: sent on to the GET, where nothing is decided.
            // With a token, only a valid one is Nexus's own form.
            var asRequest = Request(route);
            asRequest.Content = new FormUrlEncodedContent(fields);
            using var sentOn = await browser.SendAsync(asRequest);
            Assert.True(IsTheSameRequestByGet(sentOn, pattern), $"{method} {pattern} answered {(int)sentOn.StatusCode} {sentOn.Headers.Location}");
            fields["__csrf"] = "CfDJ8stale";
        }

        var request = Request(route);
        request.Content = new FormUrlEncodedContent(fields);

        using var response = await browser.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.False(response.IsSuccessStatusCode && !body.Contains("could not be verified"), $"{method} {pattern} accepted a form without a token");
        Assert.True((int)response.StatusCode is 400 or 403, $"{method} {pattern} answered {(int)response.StatusCode}");
        Assert.False(IsSignInRedirect(response) && route.Access != Access.Public, $"{method} {pattern}: the session was not recognised, so the token was not what was tested");
    }

    public static TheoryData<string, string> Pages() =>
        new(Table.Where(r => r.Method == "GET" && r.Access is Access.Public or Access.User && !r.Pattern.StartsWith("/assets/", StringComparison.Ordinal))
            .Select(r => (r.Method, r.Pattern)));

    [Theory]
    [MemberData(nameof(Pages))]
    public async Task EveryPageForbidsFramingAndSendsNoReferrer(string method, string pattern)
    {
        // RFC 9700 §4.16 (clickjacking) and §4.2 (codes and state leaking through Referer).
        var browser = await fixture.PersonAsync();
        using var response = await browser.SendAsync(Request(Find(method, pattern)));
        if (response.Content.Headers.ContentType?.MediaType != "text/html")
        {
            return; // JSON documents and redirects are not pages.
        }

        Assert.Contains("frame-ancestors 'none'", response.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
        Assert.Equal("no-referrer", response.Headers.GetValues("Referrer-Policy").Single());
    }

    /// <summary>The forms, less the two that sign the person out (which would end the shared session of this class).</summary>
    public static TheoryData<string, string> FormsThatKeepTheSession() =>
        new(Table.Where(r => r.Antiforgery && r.Pattern is not ("/account/signout" or "/oauth2/logout")).Select(r => (r.Method, r.Pattern)));

    [Theory]
    [MemberData(nameof(FormsThatKeepTheSession))]
    public async Task NoFormAnswersWithA307ThatWouldPostItAgainElsewhere(string method, string pattern)
    {
        // RFC 9700 §4.12: a 307 after a POST makes the browser re-send the form (with a password) to the new place.
        var browser = await fixture.PersonAsync();
        var request = Request(Find(method, pattern));
        request.Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["__csrf"] = fixture.PersonCsrf, ["email"] = "x@example.com", ["password"] = Password });
        using var response = await browser.SendAsync(request);
        Assert.NotEqual(HttpStatusCode.TemporaryRedirect, response.StatusCode);
        Assert.NotEqual(HttpStatusCode.PermanentRedirect, response.StatusCode);
    }

    private static Route Find(string method, string pattern) => Table.Single(r => r.Method == method && r.Pattern == pattern);

    private HttpClient NoRedirects() => new(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = new Uri(Server.BaseUrl) };

    /// <summary>303 See Other to the GET of the route's own path (AuthorizationServer/PostedRequests.cs).</summary>
    private static bool IsTheSameRequestByGet(HttpResponseMessage response, string pattern) =>
        response.StatusCode == HttpStatusCode.SeeOther && response.Headers.Location?.OriginalString.Split('?')[0] == pattern;

    private static bool IsSignInRedirect(HttpResponseMessage response) =>
        (int)response.StatusCode is 302 or 303 && response.Headers.Location?.ToString().Contains("/account/signin", StringComparison.Ordinal) == true;

    /// <summary>A request to the route with its parameters filled with values that name nothing.</summary>
    private static HttpRequestMessage Request(Route route)
    {
        var path = route.Pattern.Replace("{**path}", "anything/here").Replace("{connectionId}", "conn_01NOTHING0000000000000000")
            .Replace("{clientId}", "no-such-client").Replace("{provider}", "no-such-provider").Replace("{name}", "no-such-provider").Replace("{id}", "no-such-id").Replace("{deliveryId}", "no-such-delivery");
        var method = route.Method == "*" ? HttpMethod.Get : new HttpMethod(route.Method);
        var request = new HttpRequestMessage(method, path);
        if (method == HttpMethod.Post || method == HttpMethod.Patch)
        {
            request.Content = route.Access is Access.AdminKey or Access.GatewayKey
                ? new StringContent("{}", System.Text.Encoding.UTF8, "application/json")
                : new FormUrlEncodedContent(new Dictionary<string, string>());
        }

        return request;
    }

    /// <summary>One server, one person and one administrator signed in over HTTP, and one gateway key, for the whole class.</summary>
    public sealed class Fixture : ServerFixture
    {
        public const string AdminEmail = "route.admin@example.com";

        private readonly SemaphoreSlim gate = new(1, 1);
        private HttpClient? person;
        private HttpClient? administrator;
        private string? gatewayKey;

        public string PersonCsrf { get; private set; } = "";

        public async Task<HttpClient> PersonAsync()
        {
            await gate.WaitAsync();
            try
            {
                if (person is null)
                {
                    (person, PersonCsrf) = await SignedUpAsync("route.person@example.com");
                }

                return person;
            }
            finally
            {
                gate.Release();
            }
        }

        public async Task<HttpClient> AdministratorAsync()
        {
            await gate.WaitAsync();
            try
            {
                if (administrator is null)
                {
                    var (client, _) = await SignedUpAsync(AdminEmail);
                    await Server.MakeAdminAsync(AdminEmail);
                    administrator = client;
                }

                return administrator;
            }
            finally
            {
                gate.Release();
            }
        }

        public async Task<string> GatewayKeyAsync()
        {
            await gate.WaitAsync();
            try
            {
                gatewayKey ??= (await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/api-keys", new { name = "routes", workspaces = new[] { "ws_routes" } }, HttpStatusCode.Created))
                    .GetProperty("api_key").GetString()!;
                return gatewayKey;
            }
            finally
            {
                gate.Release();
            }
        }

        /// <summary>Signs up over HTTP and returns a cookie-keeping client plus an antiforgery token valid for its session.</summary>
        private async Task<(HttpClient Client, string Csrf)> SignedUpAsync(string email)
        {
            var browser = new Browser(Server);
            await browser.SignUpAsync(email, Password);
            await browser.NavigateAsync("/dashboard");
            var csrf = Browser.Forms(browser.LastPage).Select(f => f.Hidden.GetValueOrDefault("__csrf")).FirstOrDefault(v => v is not null)
                ?? throw new InvalidOperationException("No antiforgery token on the dashboard.");
            var client = new HttpClient(new HttpClientHandler { CookieContainer = browser.Cookies, AllowAutoRedirect = false, UseCookies = true })
            {
                BaseAddress = new Uri(Server.BaseUrl),
            };
            return (client, csrf);
        }
    }
}
