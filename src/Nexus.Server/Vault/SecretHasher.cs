using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace Nexus.Server.Vault;

/// <summary>
/// Hashes secrets that Nexus generates (client secrets, API keys). They carry 256 bits of entropy, so a
/// keyed HMAC-SHA256 is as strong as a password KDF against guessing and costs a microsecond instead of
/// tens of milliseconds on every token request. The key lives encrypted in server_secrets, not in ENCRYPTION_KEY,
/// so rotating the encryption key never invalidates issued secrets.
/// </summary>
internal sealed class SecretHasher : IDisposable
{
    private const string Prefix = "h1$";

    // One keyed HMAC per thread: the one-shot HMACSHA256.HashData looks the algorithm up in OpenSSL 3 on every call,
    // a large part of its cost in the profile of the Bridge, and every gateway request hashes an API key.
    private ThreadLocal<HMACSHA256>? macs;

    public bool IsInitialized => macs is not null;

    public void Initialize(byte[] hashKey)
    {
        macs = new ThreadLocal<HMACSHA256>(() => new HMACSHA256(hashKey));
    }

    public string Hash(string secret)
    {
        // One string, no intermediate arrays: the gateway hashes the presented API key on every call.
        Span<byte> mac = stackalloc byte[32];
        Mac(secret, mac);
        Span<char> text = stackalloc char[Prefix.Length + 44];
        Prefix.CopyTo(text);
        Convert.TryToBase64Chars(mac, text[Prefix.Length..], out _);
        return new string(text);
    }

    public bool Verify(string secret, string? stored)
    {
        if (stored is null || !stored.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[32];
        if (!Convert.TryFromBase64Chars(stored.AsSpan(Prefix.Length), expected, out var written) || written != 32)
        {
            return false;
        }

        Span<byte> actual = stackalloc byte[32];
        Mac(secret, actual);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    private void Mac(string secret, Span<byte> destination)
    {
        var mac = (macs ?? throw new InvalidOperationException("The secret hasher is used before Nexus finished starting.")).Value!;
        // Every token request and gateway call verifies a secret: short ones (all that Nexus generates) stay on the stack.
        var length = Encoding.UTF8.GetMaxByteCount(secret.Length);
        var rented = length <= 512 ? null : ArrayPool<byte>.Shared.Rent(length);
        var utf8 = rented is null ? stackalloc byte[512] : rented.AsSpan();
        var count = Encoding.UTF8.GetBytes(secret, utf8);
        mac.TryComputeHash(utf8[..count], destination, out _);
        CryptographicOperations.ZeroMemory(utf8[..count]);
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    public void Dispose() => macs?.Dispose();
}
