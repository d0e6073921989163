using Nexus.Server.Hosting;

namespace Nexus.Server.Providers;

internal static class ProvidersExtensions
{
    public static WebApplicationBuilder AddProviders(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        // Loaded and validated at startup: a broken catalog stops Nexus with every problem listed.
        services.AddSingleton(_ => ProviderCatalog.LoadEmbedded());
        services.AddSingleton<UpstreamPolicy>();
        services.AddUpstreamHttpClient();
        services.AddSingleton<OidcDiscovery>();
        services.AddSingleton<ProviderRegistry>();
        services.AddSingleton<ProviderRegistration>();
        services.AddSingleton<CatalogProviders>();
        services.AddSingleton<IProviderModeValidator, OAuth2ProviderValidator>();
        services.AddSingleton<IProviderModeValidator, ApiKeyProviderValidator>();
        services.AddSingleton<IProviderModeValidator, BasicAuthProviderValidator>();
        services.AddSingleton<IProviderModeValidator, AwsSigV4ProviderValidator>();
        services.AddSingleton(ProviderRegistry.ClientSecretColumn);
        services.AddSingleton<Hosting.IStartupStep, CatalogStartup>();
        services.AddProvidersCommands();
        return builder;
    }

    public static WebApplication MapProviders(this WebApplication app)
    {
        app.MapCatalog();
        app.MapProvidersAdmin();
        return app;
    }
}

/// <summary>Loads the catalog before Nexus serves requests, so that an invalid catalog fails startup, not a request.</summary>
internal sealed class CatalogStartup(ProviderCatalog catalog, ILogger<CatalogStartup> logger) : Hosting.IStartupStep
{
    public Task RunAsync(System.Data.Common.DbConnection connection, Hosting.StartupPurpose purpose, CancellationToken ct)
    {
        logger.LogDebug("Provider catalog v{Version}: {Count} providers", catalog.Version, catalog.Entries.Count);
        return Task.CompletedTask;
    }
}
