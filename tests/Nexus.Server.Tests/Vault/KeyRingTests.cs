using System.Security.Cryptography;
using Nexus.Server.Vault;

namespace Nexus.Server.Tests.Vault;

public sealed class KeyRingTests
{
    private static byte[] Key() => RandomNumberGenerator.GetBytes(32);

    [Fact]
    public void RoundTripsUnderTheActiveKey()
    {
        var ring = new KeyRing(Key(), []);
        var ciphertext = ring.Encrypt("gho_secret_token", "ctx:1");
        Assert.Equal("gho_secret_token", ring.DecryptString(ciphertext, "ctx:1"));
        Assert.Equal(ring.ActiveKeyId, KeyRing.KeyIdOf(ciphertext));
        Assert.DoesNotContain("gho_secret_token", System.Text.Encoding.Latin1.GetString(ciphertext));
    }

    [Fact]
    public void EncryptsTheSameValueDifferentlyEachTime()
    {
        var ring = new KeyRing(Key(), []);
        Assert.NotEqual(ring.Encrypt("same", "c"), ring.Encrypt("same", "c"));
    }

    [Fact]
    public void RefusesCiphertextMovedToAnotherContext()
    {
        var ring = new KeyRing(Key(), []);
        var ciphertext = ring.Encrypt("token-of-row-1", "connections.token:1");
        Assert.ThrowsAny<CryptographicException>(() => ring.Decrypt(ciphertext, "connections.token:2"));
    }

    [Fact]
    public void RefusesTamperedCiphertext()
    {
        var ring = new KeyRing(Key(), []);
        var ciphertext = ring.Encrypt("value", "c");
        ciphertext[^1] ^= 1;
        Assert.ThrowsAny<CryptographicException>(() => ring.Decrypt(ciphertext, "c"));
        Assert.ThrowsAny<CryptographicException>(() => ring.Decrypt(new byte[5], "c"));
    }

    [Fact]
    public void OlderKeysStillDecryptAfterRotation()
    {
        var oldKey = Key();
        var ciphertext = new KeyRing(oldKey, []).Encrypt("value", "c");
        var rotated = new KeyRing(Key(), [oldKey]);
        Assert.Equal("value", rotated.DecryptString(ciphertext, "c"));
        Assert.NotEqual(rotated.ActiveKeyId, KeyRing.KeyIdOf(ciphertext));
    }

    [Fact]
    public void NamesTheMissingKeyWhenItIsNotConfigured()
    {
        var ciphertext = new KeyRing(Key(), []).Encrypt("value", "c");
        var error = Assert.ThrowsAny<CryptographicException>(() => new KeyRing(Key(), []).Decrypt(ciphertext, "c"));
        Assert.Contains("PREVIOUS_ENCRYPTION_KEYS", error.Message);
    }

    [Fact]
    public async Task ManyThreadsEncryptAndDecryptUnderBothKeysAtOnceWithoutMixingThemUp()
    {
        // Each thread keeps its own cipher per key (KeyRing.Cipher); values, contexts and keys must never cross.
        var oldKey = Key();
        var old = new KeyRing(oldKey, []);
        var ring = new KeyRing(Key(), [oldKey]);
        var longValue = new string('x', 3000);
        var tasks = Enumerable.Range(0, 16).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < 500; i++)
            {
                var value = $"token-{t}-{i}" + (i % 50 == 0 ? longValue : "");
                var context = $"connections.token:{t}:{i}";
                Assert.Equal(value, ring.DecryptString(ring.Encrypt(value, context), context));
                Assert.Equal(value, ring.DecryptString(old.Encrypt(value, context), context));
                Assert.ThrowsAny<CryptographicException>(() => ring.DecryptString(ring.Encrypt(value, context), context + "x"));
            }
        }, TestContext.Current.CancellationToken));
        await Task.WhenAll(tasks);
    }
}
