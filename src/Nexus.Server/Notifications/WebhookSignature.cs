using System.Security.Cryptography;
using System.Text;

namespace Nexus.Server.Notifications;

/// <summary>
/// Webhook signatures in the Standard Webhooks format (standardwebhooks.com), so receivers can verify them with
/// existing libraries: headers <c>webhook-id</c>, <c>webhook-timestamp</c> (Unix seconds) and
/// <c>webhook-signature: v1,&lt;base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")&gt;</c>. The secret is
/// <c>whsec_</c> + base64 of 32 random bytes. Receivers should reject timestamps outside a tolerance
/// (<see cref="Tolerance"/>) to stop replays.
/// </summary>
internal static class WebhookSignature
{
    public const string SecretPrefix = "whsec_";
    public static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    public static string NewSecret() => SecretPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    public static string Sign(string secret, string id, long timestamp, string body)
    {
        var key = Convert.FromBase64String(secret.StartsWith(SecretPrefix, StringComparison.Ordinal) ? secret[SecretPrefix.Length..] : secret);
        var mac = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{id}.{timestamp}.{body}"));
        return "v1," + Convert.ToBase64String(mac);
    }

    /// <summary>What a receiver does: recompute, compare in constant time, and check the timestamp window.</summary>
    public static bool Verify(string secret, string id, long timestamp, string body, string signatureHeader, DateTimeOffset now)
    {
        if (Math.Abs(now.ToUnixTimeSeconds() - timestamp) > Tolerance.TotalSeconds)
        {
            return false;
        }

        var expected = Encoding.ASCII.GetBytes(Sign(secret, id, timestamp, body));
        return signatureHeader.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Any(candidate => CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(candidate), expected));
    }
}
