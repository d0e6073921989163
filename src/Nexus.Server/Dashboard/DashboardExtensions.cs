namespace Nexus.Server.Dashboard;

internal static class DashboardExtensions
{
    public static WebApplication MapDashboard(this WebApplication app)
    {
        app.MapConnectionsPages();
        app.MapSiteManagement();
        app.MapSiteManagementBroker();
        return app;
    }
}
