namespace Nexus.Server.Connections.Refresh;

internal static class RefreshExtensions
{
    /// <summary>The refresh engine: refresh on read, the background refresher, POST /v1/refresh/{id} and connection webhooks.</summary>
    public static WebApplicationBuilder AddConnectionRefresh(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton<RefreshStore>();
        services.AddSingleton<RefreshClient>();
        services.AddSingleton<ConnectionNotifier>();
        services.AddSingleton<ConnectionRefresher>();
        // Tokens for a provider's further resources (Entra ID), stored encrypted: the vault re-encrypts them too.
        services.AddSingleton<ResourceTokens>();
        services.AddSingleton(ResourceTokens.AccessTokenColumn);
        services.AddHostedService<RefreshWorker>();
        return builder;
    }

    public static WebApplication MapConnectionRefresh(this WebApplication app)
    {
        app.MapRefreshEndpoint();
        return app;
    }
}
