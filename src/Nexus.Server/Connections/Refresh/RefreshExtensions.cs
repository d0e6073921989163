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
        services.AddHostedService<RefreshWorker>();
        return builder;
    }

    public static WebApplication MapConnectionRefresh(this WebApplication app)
    {
        app.MapRefreshEndpoint();
        return app;
    }
}
