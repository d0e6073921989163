using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Nexus.Server.Vault;

namespace Nexus.Server.Connections;

/// <summary>The claims of a verified state value.</summary>
internal readonly record struct StateClaims(string ConnectionId, string Nonce, long ExpiresAt);

/// <summary>
/// The OAuth <c>state</c> of a broker handshake: <c>{connection_id}.{nonce}.{expires_at}.{mac}</c>, MACed with
/// HMAC-SHA256 under a server secret shared by all instances. The MAC binds the state to its connection and
/// expiry (RFC 6749 §10.12, CSRF protection); the nonce, stored with the pending connection and consumed once in
/// the database, makes it single-use.
/// </summary>
internal sealed class StateSigner
{
    private const string Domain = "nexus-state-v1\n";
    private byte[]? key;

    public void Initialize(byte[] signingKey) => key = signingKey;

    public string Create(string connectionId, string nonce, long expiresAtUnixSeconds)
    {
        var payload = $"{connectionId}.{nonce}.{expiresAtUnixSeconds.ToString(CultureInfo.InvariantCulture)}";
        return payload + "." + SecretGenerator.Base64Url(Mac(payload));
    }

    public bool TryVerify(string? state, out StateClaims claims)
    {
        claims = default;
        if (state is null || state.Length > 300)
        {
            return false;
        }

        var last = state.LastIndexOf('.');
        if (last <= 0)
        {
            return false;
        }

        var payload = state[..last];
        Span<byte> presented = stackalloc byte[32];
        if (!SecretGenerator.TryDecodeBase64Url(state.AsSpan(last + 1), presented) || !CryptographicOperations.FixedTimeEquals(presented, Mac(payload)))
        {
            return false;
        }

        var parts = payload.Split('.');
        if (parts.Length != 3 || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var expires))
        {
            return false;
        }

        claims = new StateClaims(parts[0], parts[1], expires);
        return true;
    }

    private byte[] Mac(string payload) =>
        HMACSHA256.HashData(key ?? throw new InvalidOperationException("The state key is used before Nexus finished starting."), Encoding.UTF8.GetBytes(Domain + payload));
}
