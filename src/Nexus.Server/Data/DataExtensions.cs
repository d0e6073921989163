namespace Nexus.Server.Data;

internal static class DataExtensions
{
    public static WebApplicationBuilder AddData(this WebApplicationBuilder builder)
    {
        Dapper.DefaultTypeMap.MatchNamesWithUnderscores = true;
        builder.Services.AddSingleton<NexusDatabase>();
        builder.Services.AddSingleton<Migrator>();
        builder.Services.AddSingleton<DatabaseHealth>();
        builder.Services.AddHostedService<SqlitePresence>();
        builder.Services.AddDataCommands();
        return builder;
    }
}
