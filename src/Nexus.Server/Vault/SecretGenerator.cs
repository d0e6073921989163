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

    /// <summary>
    /// A ULID (48-bit millisecond time + 80 random bits, Crockford base32, 26 characters) after a prefix, e.g.
    /// <c>conn_01J…</c>: unguessable like <see cref="Id"/>, and sorting by creation time.
    /// </summary>
    public static string Ulid(string prefix, DateTimeOffset now)
    {
        const string crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        Span<char> chars = stackalloc char[26];
        var ms = (ulong)now.ToUnixTimeMilliseconds();
        for (var i = 9; i >= 0; i--)
        {
            chars[i] = crockford[(int)(ms & 31)];
            ms >>= 5;
        }

        Span<byte> random = stackalloc byte[16];
        RandomNumberGenerator.Fill(random);
        for (var i = 0; i < 16; i++)
        {
            // 16 characters of 5 bits each = 80 random bits.
            chars[10 + i] = crockford[random[i] & 31];
        }

        return prefix + new string(chars);
    }

    public static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);
}
