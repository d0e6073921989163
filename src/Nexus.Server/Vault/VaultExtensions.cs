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
        builder.Services.AddSingleton<Data.IBackupKeyCheck, BackupKeyCheck>();
        builder.Services.AddSingleton(ServerSecrets.Column);
        builder.Services.AddSingleton<IStartupBannerItem, EncryptionKeyBannerItem>();
        builder.Services.AddVaultCommands();
        return builder;
    }
}

/// <summary>The startup banner's "encryption key: …" part, so nobody runs Production on the development key by accident.</summary>
internal sealed class EncryptionKeyBannerItem(KeyRing keys) : IStartupBannerItem
{
    public int Order => 10;

    public string Name => "encryption key";

    public string Value => keys.Source;
}
