using Nexus.Server.Hosting;

namespace Nexus.Server.Vault;

internal static class VaultExtensions
{
    public static WebApplicationBuilder AddVault(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<Observability.IGaugeSource, EncryptionKeyGauge>();
        builder.Services.AddSingleton(sp => KeyRingFactory.Create(
            sp.GetRequiredService<NexusOptions>(),
            sp.GetRequiredService<IHostEnvironment>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Nexus.Vault")));
        builder.Services.AddSingleton<SecretHasher>();
        builder.Services.AddSingleton<ServerSecrets>();
        builder.Services.AddSingleton<ReEncryptor>();
        builder.Services.AddSingleton(ServerSecrets.Column);
        builder.Services.AddVaultCommands();
        return builder;
    }
}
