using System.Security.Cryptography;

namespace Nexus.Server.Vault;

/// <summary>Identifiers and secrets. Prefixes make leaked secrets recognisable to secret scanners.</summary>
internal static class SecretGenerator
{
    private const string Alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

    /// <summary>A 256-bit secret in URL-safe base64, e.g. <c>nxs_…</c>.</summary>
    public static string Secret(string prefix) => prefix + Base64Url(RandomNumberGenerator.GetBytes(32));

    /// <summary>A random identifier of <paramref name="length"/> lowercase alphanumerics (≈5.2 bits each).</summary>
    public static string Id(string prefix, int length = 24) => prefix + RandomNumberGenerator.GetString(Alphabet, length);

    public static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);
}
