using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Nexus.Server.Vault;

/// <summary>
/// AES-256-GCM envelope for everything Nexus keeps secret at rest. Layout of a ciphertext:
/// <c>[1: format 0x01][4: key id][12: nonce][n: ciphertext][16: tag]</c>. The key id lets older keys keep
/// decrypting after a rotation; the caller's context string is bound as associated data, so a ciphertext
/// copied into another row or column fails to decrypt instead of being silently accepted.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The per-thread ciphers live as long as the process's one key ring; ThreadLocal's finalizer releases them with it (tests and tools that make many rings), and disposing them at shutdown would race a last decryption.")]
internal sealed class KeyRing
{
    private const byte Format = 0x01;
    private const int HeaderSize = 1 + 4 + NonceSize;
    private const int NonceSize = 12;
    private const int TagSize = 16;

    private readonly Dictionary<uint, byte[]> keys = [];
    private readonly byte[] activeKey;

    // One AesGcm per key and thread (an instance is not thread-safe): creating one sets up an OpenSSL cipher context
    // and key schedule, which cost more than decrypting a token, and GET /v1/token decrypts on every read.
    private readonly ThreadLocal<Dictionary<uint, AesGcm>> ciphers = new(() => []);

    public KeyRing(byte[] activeKey, IEnumerable<byte[]> previousKeys, DateTimeOffset? activeKeyCreatedAt = null)
    {
        if (activeKey.Length != 32)
        {
            throw new ArgumentException("An AES-256 key is 32 bytes.", nameof(activeKey));
        }

        this.activeKey = activeKey;
        ActiveKeyId = IdOf(activeKey);
        ActiveKeyCreatedAt = activeKeyCreatedAt;
        keys[ActiveKeyId] = activeKey;
        foreach (var key in previousKeys)
        {
            keys.TryAdd(IdOf(key), key);
        }
    }

    public uint ActiveKeyId { get; }

    /// <summary>When known (the development key file's age), how old the active key is.</summary>
    public DateTimeOffset? ActiveKeyCreatedAt { get; }

    public int KeyCount => keys.Count;

    /// <summary>The ids of every key that decrypts: the active one and those in PREVIOUS_ENCRYPTION_KEYS.</summary>
    public IReadOnlyCollection<uint> KeyIds => keys.Keys;

    /// <summary>
    /// Where the active key came from: "ENCRYPTION_KEY", or the path of the generated development key file
    /// (<see cref="IsDevelopmentKey"/>), for the startup banner and the Status page.
    /// </summary>
    public string Source { get; init; } = "ENCRYPTION_KEY";

    /// <summary>True when the active key is the generated development key (ENCRYPTION_KEY not set).</summary>
    public bool IsDevelopmentKey { get; init; }

    public static uint IdOf(ReadOnlySpan<byte> key)
    {
        // A fingerprint, not the key: the first four bytes of a domain-separated SHA-256.
        Span<byte> hash = stackalloc byte[32];
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData("nexus-key-id"u8);
        sha.AppendData(key);
        sha.GetHashAndReset(hash);
        return BinaryPrimitives.ReadUInt32BigEndian(hash);
    }

    public byte[] Encrypt(ReadOnlySpan<byte> plaintext, string context)
    {
        var output = new byte[HeaderSize + plaintext.Length + TagSize];
        output[0] = Format;
        BinaryPrimitives.WriteUInt32BigEndian(output.AsSpan(1, 4), ActiveKeyId);
        var nonce = output.AsSpan(5, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        Cipher(ActiveKeyId, activeKey).Encrypt(nonce, plaintext, output.AsSpan(HeaderSize, plaintext.Length), output.AsSpan(HeaderSize + plaintext.Length), Encoding.UTF8.GetBytes(context));
        return output;
    }

    public byte[] Encrypt(string plaintext, string context) => Encrypt(Encoding.UTF8.GetBytes(plaintext), context);

    public byte[] Decrypt(ReadOnlySpan<byte> ciphertext, string context)
    {
        var plaintext = new byte[PlaintextLength(ciphertext)];
        Decrypt(ciphertext, context, plaintext);
        return plaintext;
    }

    public string DecryptString(ReadOnlySpan<byte> ciphertext, string context)
    {
        // Short values (tokens, keys) are decrypted on the stack and wiped; only the string leaves.
        var length = PlaintextLength(ciphertext);
        var plaintext = length <= 1024 ? stackalloc byte[1024] : new byte[length];
        plaintext = plaintext[..length];
        try
        {
            Decrypt(ciphertext, context, plaintext);
            return Encoding.UTF8.GetString(plaintext);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    private static int PlaintextLength(ReadOnlySpan<byte> ciphertext)
    {
        if (ciphertext.Length < HeaderSize + TagSize || ciphertext[0] != Format)
        {
            throw new CryptographicException("The value is not a Nexus ciphertext.");
        }

        return ciphertext.Length - HeaderSize - TagSize;
    }

    private void Decrypt(ReadOnlySpan<byte> ciphertext, string context, Span<byte> plaintext)
    {
        var keyId = BinaryPrimitives.ReadUInt32BigEndian(ciphertext.Slice(1, 4));
        if (!keys.TryGetValue(keyId, out var key))
        {
            throw new CryptographicException(
                $"A value was encrypted with key {keyId:x8}, which is not configured. Add that key to PREVIOUS_ENCRYPTION_KEYS (ENCRYPTION_KEY is {ActiveKeyId:x8}).");
        }

        // The context is associated data (bound, not secret); a short one is encoded on the stack.
        var maxContext = Encoding.UTF8.GetMaxByteCount(context.Length);
        var associated = maxContext <= 512 ? stackalloc byte[512] : new byte[maxContext];
        associated = associated[..Encoding.UTF8.GetBytes(context, associated)];
        Cipher(keyId, key).Decrypt(ciphertext.Slice(5, NonceSize), ciphertext.Slice(HeaderSize, plaintext.Length), ciphertext[^TagSize..], plaintext, associated);
    }

    private AesGcm Cipher(uint keyId, byte[] key)
    {
        var perThread = ciphers.Value!;
        if (!perThread.TryGetValue(keyId, out var aes))
        {
            aes = new AesGcm(key, TagSize);
            perThread[keyId] = aes;
        }

        return aes;
    }

    public static uint KeyIdOf(ReadOnlySpan<byte> ciphertext) =>
        ciphertext.Length >= 5 ? BinaryPrimitives.ReadUInt32BigEndian(ciphertext.Slice(1, 4)) : 0;
}
