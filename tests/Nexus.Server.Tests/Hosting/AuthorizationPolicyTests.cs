using System.Net;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.Hosting.RouteSecurityTests;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// Issue 13, item 2: who may call an API route is declared by a policy on its route group, not by a line in each
/// handler. Every admin-key, gateway-key and Site Management route of the route-security table carries its policy,
/// except the two documented short-circuits of the hot paths, which identify the gateway key themselves with the same
/// GatewayAuthenticator and the same 401 (the Bridge's request delegate, and GET /v1/token, whose throughput the
/// policy's middleware halved), and /metrics (an operations endpoint guarded by a middleware).
/// </summary>
public sealed class AuthorizationPolicyTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private static readonly string[] ShortCircuits = ["/v1/bridge/{connectionId}", "/v1/bridge/{connectionId}/{**path}", "/v1/proxy/{**path}", "/v1/token/{connectionId}", "/metrics"];

    [Fact]
    public void TheShortCircuitsCarryNoPolicy()
    {
        var endpoints = fixture.Server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        foreach (var pattern in ShortCircuits.Where(p => p.StartsWith("/v1/", StringComparison.Ordinal)))
        {
            Assert.All(endpoints.Where(e => e.RoutePattern.RawText == pattern), e => Assert.Empty(e.Metadata.GetOrderedMetadata<IAuthorizeData>()));
        }
    }

    [Fact]
    public void EveryApiKeyRouteRequiresItsPolicy()
    {
        var endpoints = fixture.Server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        var checkedRoutes = 0;
        foreach (var route in Table.Where(r => r.Access is Access.AdminKey or Access.GatewayKey or Access.SiteAdmin && !ShortCircuits.Contains(r.Pattern)))
        {
            var endpoint = endpoints.Single(e => e.RoutePattern.RawText == route.Pattern
                && (e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.IHttpMethodMetadata>()?.HttpMethods.Contains(route.Method) ?? false));
            var policies = endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Select(a => a.Policy).ToList();
            var expected = route.Access switch
            {
                Access.AdminKey => NexusPolicies.AdminApiKey,
                Access.SiteAdmin => NexusPolicies.SiteAdmin,
                _ => NexusPolicies.GatewayApiKey,
            };
            Assert.True(policies.SequenceEqual([expected]), $"{route.Method} {route.Pattern} requires [{string.Join(", ", policies)}], not {expected}");
            checkedRoutes++;
        }

        Assert.True(checkedRoutes > 80, $"only {checkedRoutes} routes were checked");
    }

    /// <summary>
    /// The routes for a signed-in person that do not require the SignedIn policy, each for its own reason: signing out
    /// when already signed out just lands on the home page, and the consent form answers a session that ended while the
    /// person was deciding with its own 401 page ("Start again from the application"), after it validated the request.
    /// </summary>
    private static readonly string[] SignedInByHand = ["POST /account/signout", "POST /oauth2/authorize"];

    /// <summary>The password change page: any session, one that must change a temporary password included (Accounts/PasswordChange.cs).</summary>
    private static readonly string[] AnySession = ["GET /account/password", "POST /account/password"];

    [Fact]
    public void EveryPageForASignedInPersonRequiresTheSignedInPolicy()
    {
        var endpoints = fixture.Server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        var checkedRoutes = 0;
        foreach (var route in Table.Where(r => r.Access == Access.User && !SignedInByHand.Contains($"{r.Method} {r.Pattern}")))
        {
            var endpoint = endpoints.Single(e => e.RoutePattern.RawText == route.Pattern
                && (e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.IHttpMethodMetadata>()?.HttpMethods.Contains(route.Method) ?? false));
            var policies = endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Select(a => a.Policy).ToList();
            var expected = AnySession.Contains($"{route.Method} {route.Pattern}") ? NexusPolicies.Session : NexusPolicies.SignedIn;
            Assert.True(policies.SequenceEqual([expected]), $"{route.Method} {route.Pattern} requires [{string.Join(", ", policies)}], not {expected}");
            checkedRoutes++;
        }

        Assert.True(checkedRoutes >= 14, $"only {checkedRoutes} routes were checked");
    }

    [Theory]
    [InlineData("/dashboard")]
    [InlineData("/dashboard/connect/github?replaces=conn_1")]
    [InlineData("/dashboard/returned?connection_id=conn_1&status=active")]
    [InlineData("/account/applications")]
    [InlineData("/account/applications/nxc_1/withdraw")]
    [InlineData("/setup")]
    [InlineData("/mcp/connect?ticket=abc")]
    public async Task APageForASignedInPersonSendsAnyoneElseToSignInWithThePageAsReturnUrl(string page)
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = new Uri(fixture.Server.BaseUrl) };
        using var response = await http.GetAsync(page);
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/account/signin?returnUrl=" + Uri.EscapeDataString(page), response.Headers.Location?.OriginalString);
    }

    [Fact]
    public async Task TheAdminApiAndTheGatewayAnswerARefusalWithTheirOwnProblem()
    {
        using var http = new HttpClient { BaseAddress = new Uri(fixture.Server.BaseUrl) };
        using var admin = await http.GetAsync("/v1/admin/api-keys");
        Assert.Equal(HttpStatusCode.Unauthorized, admin.StatusCode);
        Assert.Equal("ApiKey header=\"X-API-Key\"", admin.Headers.WwwAuthenticate.ToString());
        Assert.Contains("\"title\":\"A valid admin API key is required.\"", await admin.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/token/conn_01NOTHING0000000000000000");
        request.Headers.Add("X-API-Key", "nxk_not-a-key");
        using var gateway = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, gateway.StatusCode);
        Assert.Equal("ApiKey header=\"X-API-Key\"", gateway.Headers.WwwAuthenticate.ToString());
        var body = await gateway.Content.ReadAsStringAsync();
        Assert.Contains("\"code\":\"unauthorized\"", body, StringComparison.Ordinal);
        Assert.Contains("\"title\":\"A valid API key is required.\"", body, StringComparison.Ordinal);
    }
}
