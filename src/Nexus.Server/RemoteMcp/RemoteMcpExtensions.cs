using Nexus.Server.Providers;
namespace Nexus.Server.RemoteMcp;

/// <summary>Nexus as the client of remote OAuth-protected MCP servers (issue 15).</summary>
internal static class RemoteMcpExtensions
{
    public static WebApplicationBuilder AddRemoteMcp(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        McpMetadataFetcher.AddHttpClient(services);
        services.AddSingleton<McpMetadataFetcher>();
        services.AddSingleton<McpDiscovery>();
        services.AddSingleton<McpClientRegistrar>();
        services.AddSingleton(McpClientRegistrar.SecretColumn);
        services.AddSingleton<McpProviders>();
        services.AddSingleton<IProviderModeHandler>(sp => sp.GetRequiredService<McpProviders>());
        services.AddSingleton<McpStepUp>();
        return builder;
    }

    public static WebApplication MapRemoteMcp(this WebApplication app)
    {
        app.MapClientMetadataDocument();
        return app;
    }
}
