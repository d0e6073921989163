using Nexus.Server.Hosting;

namespace Nexus.Server.Vault;

/// <summary>
/// Builds the key ring from ENCRYPTION_KEY and PREVIOUS_ENCRYPTION_KEYS. Outside Production, a missing key is
/// replaced by a development key generated once and kept beside the SQLite file, so that the first run needs
/// no setup; Production refuses to start instead, because data encrypted under a key nobody chose is data
/// nobody can move or recover.
/// </summary>
internal static class KeyRingFactory
{
    public const string DevelopmentKeyFile = "encryption.key";

    public static KeyRing Create(NexusOptions options, IHostEnvironment environment, ILogger logger)
    {
        var previous = (options.PreviousEncryptionKeys ?? "")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(Convert.FromBase64String)
            .ToList();

        if (!string.IsNullOrWhiteSpace(options.EncryptionKey))
        {
            return new KeyRing(Convert.FromBase64String(options.EncryptionKey.Trim()), previous);
        }

        if (environment.IsProduction())
        {
            throw new InvalidOperationException(
                "ENCRYPTION_KEY is required in Production. Generate one with `openssl rand -base64 32`, keep it in your secret store, " +
                "and set it as the ENCRYPTION_KEY environment variable. (Set ASPNETCORE_ENVIRONMENT=Development to use a generated development key.)");
        }

        var directory = Path.GetFullPath(options.DataDirectory);
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, DevelopmentKeyFile);
        if (!File.Exists(path))
        {
            var key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
            var fileOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                // Readable by the service account only.
                fileOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using (var stream = new FileStream(path, fileOptions))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(Convert.ToBase64String(key));
            }

            logger.LogWarning("Generated a development encryption key at {Path}.", path);
        }

        logger.LogWarning(
            "*** ENCRYPTION_KEY is not set: using the DEVELOPMENT key in {Path}. Anyone with that file can decrypt every stored secret. " +
            "Set ENCRYPTION_KEY (openssl rand -base64 32) before storing real credentials. ***", path);
        var devKey = Convert.FromBase64String(File.ReadAllText(path).Trim());
        return new KeyRing(devKey, previous, new DateTimeOffset(File.GetCreationTimeUtc(path), TimeSpan.Zero))
        {
            Source = "development key file " + path,
            IsDevelopmentKey = true,
        };
    }
}
