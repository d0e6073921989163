using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Nexus.Scenario.Upstream;

/// <summary>
/// Checks an AWS Signature Version 4 request the way a non-S3 service does, from AWS's documentation ("Create a
/// signed AWS API request") and independent of every SDK's signer: canonical request from the bytes as received,
/// string to sign, the HMAC-SHA256 key chain, and the scope (key id, region, service, date within 15 minutes). The
/// session token, when the scenario has one, must be sent and signed.
/// </summary>
internal static class SigV4Verifier
{
    public sealed record Expected(string AccessKeyId, string SecretAccessKey, string? SessionToken, string Region, string Service);

    /// <summary>Null when the request is signed right; otherwise what is wrong (never a secret).</summary>
    public static string? Verify(string method, string rawPath, string rawQuery, IReadOnlyDictionary<string, string> headers, string bodySha256,
        Expected expected, DateTimeOffset now)
    {
        const string Algorithm = "AWS4-HMAC-SHA256 ";
        var authorization = headers.GetValueOrDefault("Authorization");
        if (authorization is null || !authorization.StartsWith(Algorithm, StringComparison.Ordinal))
        {
            return "no AWS4-HMAC-SHA256 Authorization header";
        }

        var fields = authorization[Algorithm.Length..].Split(',', StringSplitOptions.TrimEntries)
            .Select(f => f.Split('=', 2)).Where(f => f.Length == 2).ToDictionary(f => f[0], f => f[1], StringComparer.Ordinal);
        if (!fields.TryGetValue("Credential", out var credential) || !fields.TryGetValue("SignedHeaders", out var signedList) || !fields.TryGetValue("Signature", out var signature))
        {
            return "the Authorization header lacks Credential, SignedHeaders or Signature";
        }

        var scope = credential.Split('/');
        if (scope.Length != 5 || scope[4] != "aws4_request")
        {
            return "the credential scope is not key/date/region/service/aws4_request";
        }

        if (scope[0] != expected.AccessKeyId)
        {
            return "unknown access key id";
        }

        if (scope[2] != expected.Region || scope[3] != expected.Service)
        {
            return $"signed for {scope[2]}/{scope[3]}, expected {expected.Region}/{expected.Service}";
        }

        if (!headers.TryGetValue("X-Amz-Date", out var amzDate)
            || !DateTimeOffset.TryParseExact(amzDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var signedAt)
            || !amzDate.StartsWith(scope[1], StringComparison.Ordinal))
        {
            return "X-Amz-Date is missing, malformed or not the scope's date";
        }

        if ((now - signedAt).Duration() > TimeSpan.FromMinutes(15))
        {
            return "the request was signed more than 15 minutes away from now";
        }

        var signed = signedList.Split(';');
        if (!signed.Contains("host") || !signed.Contains("x-amz-date"))
        {
            return "host and x-amz-date must be signed";
        }

        if (expected.SessionToken is not null)
        {
            if (!headers.TryGetValue("X-Amz-Security-Token", out var token) || token != expected.SessionToken)
            {
                return "the session token is missing or wrong";
            }

            if (!signed.Contains("x-amz-security-token"))
            {
                return "the session token is not signed";
            }
        }

        var payloadHash = bodySha256;
        if (headers.TryGetValue("x-amz-content-sha256", out var declared))
        {
            if (declared == "UNSIGNED-PAYLOAD")
            {
                payloadHash = declared;
            }
            else if (declared != bodySha256)
            {
                return "x-amz-content-sha256 is not the hash of the body received";
            }
        }

        var canonicalHeaders = new StringBuilder();
        foreach (var name in signed)
        {
            if (!headers.TryGetValue(name, out var value))
            {
                return $"the signed header '{name}' did not arrive";
            }

            canonicalHeaders.Append(name).Append(':').Append(string.Join(' ', value.Split(' ', StringSplitOptions.RemoveEmptyEntries))).Append('\n');
        }

        var canonicalRequest = string.Join('\n', method, CanonicalPath(rawPath), CanonicalQuery(rawQuery), canonicalHeaders.ToString(), signedList, payloadHash);
        var credentialScope = string.Join('/', scope[1], scope[2], scope[3], scope[4]);
        var stringToSign = $"AWS4-HMAC-SHA256\n{amzDate}\n{credentialScope}\n{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest)))}";
        var key = Encoding.UTF8.GetBytes("AWS4" + expected.SecretAccessKey);
        foreach (var part in new[] { scope[1], scope[2], scope[3], scope[4] })
        {
            key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(part));
        }

        var computed = Encoding.ASCII.GetBytes(Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(stringToSign))));
        return CryptographicOperations.FixedTimeEquals(computed, Encoding.ASCII.GetBytes(signature)) ? null : "the signature does not match";
    }

    // Services other than S3 sign each path segment URI-encoded twice; the path as received is encoded once.
    private static string CanonicalPath(string rawPath) => rawPath.Length == 0 ? "/" : string.Join('/', rawPath.Split('/').Select(Encode));

    private static string CanonicalQuery(string rawQuery) => string.Join('&', rawQuery.Split('&', StringSplitOptions.RemoveEmptyEntries)
        .Select(pair => pair.Split('=', 2))
        .Select(pair => (Name: Encode(Uri.UnescapeDataString(pair[0])), Value: Encode(Uri.UnescapeDataString(pair.Length > 1 ? pair[1] : ""))))
        .OrderBy(pair => pair.Name, StringComparer.Ordinal).ThenBy(pair => pair.Value, StringComparer.Ordinal)
        .Select(pair => pair.Name + "=" + pair.Value));

    /// <summary>RFC 3986 unreserved characters as they are, every other UTF-8 byte as %XX (uppercase).</summary>
    private static string Encode(string value)
    {
        var encoded = new StringBuilder(value.Length);
        foreach (var b in Encoding.UTF8.GetBytes(value))
        {
            if (char.IsAsciiLetterOrDigit((char)b) || b is (byte)'-' or (byte)'_' or (byte)'.' or (byte)'~')
            {
                encoded.Append((char)b);
            }
            else
            {
                encoded.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return encoded.ToString();
    }
}
