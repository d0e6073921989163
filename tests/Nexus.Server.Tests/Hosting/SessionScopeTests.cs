using System.Collections.Concurrent;
using System.Net;
using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Tests.AuthorizationServer;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// API and protocol endpoints skip the session middleware (Hosting/SessionScope); pages keep it. Observed from inside
/// the server: every session authentication is recorded with its path.
/// </summary>
public sealed class SessionScopeTests : IAsyncLifetime
{
    private readonly ConcurrentQueue<string> authenticated = new();

    private TestDatabase db = null!;

    private NexusTestServer server = null!;

    public async ValueTask InitializeAsync()
    {
        db = await TestDatabase.CreateAsync();
        server = await NexusTestServer.StartAsync(db, services: s =>
        {
            s.AddScoped<AuthenticationService>();
            s.AddScoped<IAuthenticationService>(sp => new Recording(sp.GetRequiredService<AuthenticationService>(), authenticated));
        });
    }

    public async ValueTask DisposeAsync()
    {
        await server.DisposeAsync();
        await db.DisposeAsync();
    }

    [Fact]
    public async Task ApiAndProtocolRequestsOfASignedInBrowserSkipTheSessionWhilePagesStillSeeIt()
    {
        using var browser = await OAuthAppHelpers.SignedInBrowserAsync(server);
        authenticated.Clear();
        foreach (var path in new[] { "/healthz", "/.well-known/openid-configuration", "/oauth2/jwks", "/api/v1/me", "/v1/connections" })
        {
            await browser.NavigateAsync(path);
        }

        Assert.Empty(authenticated);

        // A page: the session is read, and the person is signed in.
        await browser.NavigateAsync("/account/applications");
        Assert.Equal(HttpStatusCode.OK, browser.LastStatus);
        Assert.Contains("/account/applications", authenticated);
    }

    private sealed class Recording(IAuthenticationService inner, ConcurrentQueue<string> log) : IAuthenticationService
    {
        public Task<AuthenticateResult> AuthenticateAsync(HttpContext context, string? scheme)
        {
            // The API keys' schemes (the gateway policy of /v1/connections) read the X-API-Key header, never the session.
            if (scheme is not (Nexus.Server.ApiKeys.ApiKeyAuthenticationHandler.GatewayScheme or Nexus.Server.ApiKeys.ApiKeyAuthenticationHandler.AdminScheme))
            {
                log.Enqueue(context.Request.Path.Value ?? "");
            }

            return inner.AuthenticateAsync(context, scheme);
        }

        public Task ChallengeAsync(HttpContext context, string? scheme, AuthenticationProperties? properties) => inner.ChallengeAsync(context, scheme, properties);

        public Task ForbidAsync(HttpContext context, string? scheme, AuthenticationProperties? properties) => inner.ForbidAsync(context, scheme, properties);

        public Task SignInAsync(HttpContext context, string? scheme, ClaimsPrincipal principal, AuthenticationProperties? properties) => inner.SignInAsync(context, scheme, principal, properties);

        public Task SignOutAsync(HttpContext context, string? scheme, AuthenticationProperties? properties) => inner.SignOutAsync(context, scheme, properties);
    }
}
