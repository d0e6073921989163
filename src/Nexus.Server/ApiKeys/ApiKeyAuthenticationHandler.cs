using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Nexus.Server.Hosting;

namespace Nexus.Server.ApiKeys;

/// <summary>Which API the scheme guards: the admin API accepts only the deployment's API_KEY.</summary>
internal sealed class ApiKeyAuthenticationOptions : AuthenticationSchemeOptions
{
    public bool AdminOnly { get; set; }
}

/// <summary>
/// X-API-Key as an ASP.NET Core authentication scheme (issue 13, item 2). Two schemes share it: <see cref="GatewayScheme"/>
/// (the gateway: API_KEY or a created key, claims for its workspaces and whether it may read credentials) and
/// <see cref="AdminScheme"/> (the admin API: API_KEY only, claim <see cref="NexusPolicies.AdminClaim"/>). A challenge
/// or a forbidden answer is the same 401 problem the handlers answered with before the policies: the admin API's
/// admin_api_disabled or unauthorized, the gateway's unauthorized, each with WWW-Authenticate: ApiKey.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<ApiKeyAuthenticationOptions> options, ILoggerFactory logger, UrlEncoder encoder, GatewayAuthenticator gateway, AdminApiKey adminKey)
    : AuthenticationHandler<ApiKeyAuthenticationOptions>(options, logger, encoder)
{
    public const string GatewayScheme = "ApiKey";
    public const string AdminScheme = "AdminApiKey";

    private static readonly Task<AuthenticateResult> NoKey = Task.FromResult(AuthenticateResult.NoResult());
    private static readonly Caller Admin = new("bootstrap", null, null, true);

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (Options.AdminOnly)
        {
            return adminKey.IsPresented(Context) ? Task.FromResult(Success(Admin)) : NoKey;
        }

        return GatewayAsync();
    }

    private async Task<AuthenticateResult> GatewayAsync()
    {
        if (await gateway.IdentifyAsync(Context) is not { } caller)
        {
            return AuthenticateResult.NoResult();
        }

        // Handlers take the Caller itself (Caller.BindAsync): no claim is parsed again per request.
        Context.Features.Set(caller);
        return Success(caller);
    }

    private AuthenticateResult Success(Caller caller) => AuthenticateResult.Success(new AuthenticationTicket(caller.Principal, Scheme.Name));

    protected override Task HandleChallengeAsync(AuthenticationProperties properties) => RefuseAsync();

    // A key that authenticates but lacks the policy's claim (a gateway key on the admin API) is not an admin
    // credential at all: the same 401 as no key.
    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) => RefuseAsync();

    private Task RefuseAsync() =>
        (Options.AdminOnly ? adminKey.Refusal(Context) : GatewayAuthenticator.Refusal(Context)).ExecuteAsync(Context);
}
