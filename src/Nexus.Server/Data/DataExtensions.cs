using Microsoft.Extensions.Options;
using Nexus.Server.Hosting;

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
        builder.Services.AddSingleton<IStartupPreparation, DatabasePreparation>();
        builder.Services.AddSingleton<IStartupBannerItem, DatabaseBannerItem>();
        builder.Services.AddSingleton<IReadinessCheck, DatabaseReadiness>();
        builder.Services.AddSingleton<IExceptionAnswer, DatabaseOutageAnswer>();
        builder.Services.AddSingleton<IValidateOptions<NexusOptions>, DatabaseOptionsValidator>();
        builder.Services.AddSingleton<Retention>();
        builder.Services.AddHostedService<Retention.Worker>();
        builder.Services.AddDataCommands();
        return builder;
    }
}
