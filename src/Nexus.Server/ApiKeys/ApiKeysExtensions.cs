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
        return builder;
    }

    public static WebApplication MapApiKeys(this WebApplication app)
    {
        app.MapAdminGroup().MapApiKeysAdmin();
        return app;
    }
}
