using Nexus.Server.Hosting;

namespace Nexus.Server.ApiKeys;

internal static class ApiKeysExtensions
{
    public static WebApplicationBuilder AddApiKeys(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<ApiKeyStore>();
        builder.Services.AddSingleton<ApiKeyService>();
        builder.Services.AddSingleton<GatewayAuthenticator>();
        builder.Services.AddApiKeysCommands();
        builder.Services.AddAuthentication()
            .AddScheme<ApiKeyAuthenticationOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.GatewayScheme, null)
            .AddScheme<ApiKeyAuthenticationOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.AdminScheme, o => o.AdminOnly = true);
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(NexusPolicies.AdminApiKey, policy => policy.AddAuthenticationSchemes(ApiKeyAuthenticationHandler.AdminScheme)
                .RequireClaim(NexusPolicies.AdminClaim, "true"))
            .AddPolicy(NexusPolicies.GatewayApiKey, policy => policy.AddAuthenticationSchemes(ApiKeyAuthenticationHandler.GatewayScheme)
                .RequireAuthenticatedUser());
        return builder;
    }

    public static WebApplication MapApiKeys(this WebApplication app)
    {
        app.MapAdminGroup().MapApiKeysAdmin();
        return app;
    }
}
