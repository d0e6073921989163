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
    public static string Ulid(string prefix, DateTimeOffset now) => Ulid(prefix, now.ToUnixTimeMilliseconds(), Random80());

    /// <summary>80 random bits, the random part of a ULID.</summary>
    public static UInt128 Random80()
    {
        Span<byte> bytes = stackalloc byte[16];
        RandomNumberGenerator.Fill(bytes);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(bytes) & UlidRandomMask;
    }

    public static readonly UInt128 UlidRandomMask = (UInt128.One << 80) - 1;

    /// <summary>The ULID of a millisecond and an 80-bit random part: 10 + 16 Crockford base32 digits, most significant first, so that the text sorts as the numbers do.</summary>
    public static string Ulid(string prefix, long ms, UInt128 random)
    {
        const string crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        Span<char> chars = stackalloc char[26];
        var time = (ulong)ms;
        for (var i = 9; i >= 0; i--)
        {
            chars[i] = crockford[(int)(time & 31)];
            time >>= 5;
        }

        for (var i = 25; i >= 10; i--)
        {
            chars[i] = crockford[(int)(random & 31)];
            random >>= 5;
        }

        return prefix + new string(chars);
    }

    public static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);

    /// <summary>
    /// Decodes base64url text from outside (a state, a token part) into <paramref name="destination"/>; false, never an
    /// exception, when it is not base64url or does not fill exactly <paramref name="destination"/>'s length.
    /// Base64Url.TryDecodeFromChars only returns false for a short destination: it throws on malformed text.
    /// </summary>
    public static bool TryDecodeBase64Url(ReadOnlySpan<char> text, Span<byte> destination)
    {
        if (!System.Buffers.Text.Base64Url.IsValid(text, out var length) || length != destination.Length)
        {
            return false;
        }

        try
        {
            return System.Buffers.Text.Base64Url.TryDecodeFromChars(text, destination, out var written) && written == length;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>Decodes base64url text from outside; null, never an exception, when it is not base64url.</summary>
    public static byte[]? DecodeBase64Url(ReadOnlySpan<char> text)
    {
        if (!System.Buffers.Text.Base64Url.IsValid(text, out var length))
        {
            return null;
        }

        var bytes = new byte[length];
        return TryDecodeBase64Url(text, bytes) ? bytes : null;
    }
}
