using System.Security.Cryptography;
using System.Text;

namespace Nexus.Server.Vault;

/// <summary>
/// Hashes secrets that Nexus generates (client secrets, API keys). They carry 256 bits of entropy, so a
/// keyed HMAC-SHA256 is as strong as a password KDF against guessing and costs a microsecond instead of
/// tens of milliseconds on every token request. The key lives encrypted in server_secrets, not in ENCRYPTION_KEY,
/// so rotating the encryption key never invalidates issued secrets.
/// </summary>
internal sealed class SecretHasher
{
    private const string Prefix = "h1$";
    private byte[]? key;

    public void Initialize(byte[] hashKey) => key = hashKey;

    public string Hash(string secret) => Prefix + Convert.ToBase64String(Mac(secret));

    public bool Verify(string secret, string? stored)
    {
        if (stored is null || !stored.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[32];
        if (!Convert.TryFromBase64String(stored[Prefix.Length..], expected, out var written) || written != 32)
        {
            return false;
        }

        Span<byte> actual = stackalloc byte[32];
        var utf8 = Encoding.UTF8.GetBytes(secret);
        HMACSHA256.HashData(Key, utf8, actual);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    private byte[] Mac(string secret) => HMACSHA256.HashData(Key, Encoding.UTF8.GetBytes(secret));

    private byte[] Key => key ?? throw new InvalidOperationException("The secret hasher is used before Nexus finished starting.");
}
