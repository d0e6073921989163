using Nexus.Server.Hosting;

namespace Nexus.Server.Dashboard;

internal static class DashboardExtensions
{
    public static WebApplicationBuilder AddDashboard(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton(new NavigationLink(10, "/dashboard", "My connections"));
        return builder;
    }

    public static WebApplication MapDashboard(this WebApplication app)
    {
        app.MapConnectionsPages();
        app.MapSiteManagement();
        app.MapSiteManagementBroker();
        return app;
    }
}
