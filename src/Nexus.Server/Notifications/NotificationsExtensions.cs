using Nexus.Server.Hosting;

namespace Nexus.Server.Notifications;

internal static class NotificationsExtensions
{
    public static WebApplicationBuilder AddNotifications(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton(WebhookStore.Column);
        services.AddSingleton(WebhookStore.PreviousColumn);
        services.AddSingleton<WebhookStore>();
        services.AddSingleton<WebhookRegistration>();
        services.AddSingleton<Data.IRetentionRule, WebhookRetention>();
        services.AddSingleton<WebhookPublisher>();
        services.AddSingleton<WebhookDeliveryService>();
        services.AddSingleton<WebhookDispatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<WebhookDispatcher>());
        services.AddNotificationsCommands();
        // Timeout: until the answer's headers (the body is never read, WebhookDispatcher.MaxResponseDrainBytes), 10 s.
        services.AddHttpClient(WebhookDispatcher.HttpClientName, c => c.Timeout = TimeSpan.FromSeconds(10))
            .ConfigurePrimaryHttpMessageHandler(sp => sp.GetRequiredService<OutboundNetworkGuard>().Guard(new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                UseCookies = false,
                MaxResponseDrainSize = WebhookDispatcher.MaxResponseDrainBytes,
                ResponseDrainTimeout = TimeSpan.FromSeconds(2),
            }));
        return builder;
    }

    public static WebApplication MapNotifications(this WebApplication app)
    {
        app.MapAdminGroup().MapWebhooksAdmin();
        return app;
    }
}
