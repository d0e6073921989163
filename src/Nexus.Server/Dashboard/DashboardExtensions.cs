namespace Nexus.Server.Dashboard;

internal static class DashboardExtensions
{
    public static WebApplication MapDashboard(this WebApplication app)
    {
        app.MapSiteManagement();
        return app;
    }
}
