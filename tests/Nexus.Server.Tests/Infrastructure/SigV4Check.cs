using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// Verifies an AWS Signature Version 4 <c>Authorization</c> header the way a service does, written from the AWS
/// documentation ("Create a signed AWS API request": canonical request, string to sign, signing key) and sharing no
/// code with Nexus's signer, so that a test that passes proves the signature, not merely that the same code agrees
/// with itself. It covers what the tests send: non-S3 services, paths of unreserved characters (double encoding is
/// then the identity) and any query.
/// </summary>
public static class SigV4Check
{
    public sealed record Authorization(string AccessKeyId, string Date, string Region, string Service, string[] SignedHeaders, string Signature);

    /// <summary>"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex".</summary>
    public static Authorization? Parse(string? header)
    {
        const string Prefix = "AWS4-HMAC-SHA256 ";
        if (header is null || !header.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var parts = header[Prefix.Length..].Split(',', StringSplitOptions.TrimEntries)
            .Select(p => p.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
        if (!parts.TryGetValue("Credential", out var credential) || !parts.TryGetValue("SignedHeaders", out var signed) || !parts.TryGetValue("Signature", out var signature))
        {
            return null;
        }

        var scope = credential.Split('/');
        return scope.Length == 5 && scope[4] == "aws4_request"
            ? new Authorization(scope[0], scope[1], scope[2], scope[3], signed.Split(';'), signature)
            : null;
    }

    /// <summary>Null when the signature is right for <paramref name="secret"/>; otherwise why not.</summary>
    /// <param name="headers">The request's headers as received (case-insensitive names).</param>
    /// <param name="rawPath">The path as it was sent (still percent-encoded).</param>
    /// <param name="rawQuery">The query as it was sent, with or without the leading '?'.</param>
    /// <param name="bodySha256">The hex SHA-256 of the body actually received.</param>
    public static string? Verify(string method, string rawPath, string rawQuery, IReadOnlyDictionary<string, string> headers, string bodySha256, string secret)
    {
        var auth = Parse(headers.GetValueOrDefault("Authorization"));
        if (auth is null)
        {
            return "no AWS4-HMAC-SHA256 Authorization header";
        }

        if (headers.GetValueOrDefault("X-Amz-Date") is not { Length: 16 } amzDate || !amzDate.StartsWith(auth.Date, StringComparison.Ordinal))
        {
            return "X-Amz-Date is missing or not the credential scope's date";
        }

        if (!auth.SignedHeaders.Contains("host") || !auth.SignedHeaders.Contains("x-amz-date"))
        {
            return "host and x-amz-date must be signed";
        }

        if (headers.ContainsKey("X-Amz-Security-Token") && !auth.SignedHeaders.Contains("x-amz-security-token"))
        {
            return "the session token is sent but not signed";
        }

        // The payload hash: the declared one must be the body's (unless unsigned); without one, the body's.
        var payloadHash = bodySha256;
        if (headers.GetValueOrDefault("x-amz-content-sha256") is { } declared && declared != "UNSIGNED-PAYLOAD")
        {
            if (!string.Equals(declared, bodySha256, StringComparison.Ordinal))
            {
                return "x-amz-content-sha256 is not the body's hash";
            }
        }
        else if (headers.GetValueOrDefault("x-amz-content-sha256") is "UNSIGNED-PAYLOAD")
        {
            payloadHash = "UNSIGNED-PAYLOAD";
        }

        var canonicalHeaders = new StringBuilder();
        foreach (var name in auth.SignedHeaders)
        {
            if (!headers.TryGetValue(name, out var value))
            {
                return $"the signed header '{name}' was not received";
            }

            canonicalHeaders.Append(name).Append(':').Append(string.Join(' ', value.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries))).Append('\n');
        }

        var canonicalRequest = string.Join('\n',
            method,
            CanonicalPath(rawPath),
            CanonicalQuery(rawQuery.TrimStart('?')),
            canonicalHeaders.ToString(),
            string.Join(';', auth.SignedHeaders),
            payloadHash);
        var scope = $"{auth.Date}/{auth.Region}/{auth.Service}/aws4_request";
        var stringToSign = $"AWS4-HMAC-SHA256\n{amzDate}\n{scope}\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest)))}";

        var key = Hmac(Encoding.UTF8.GetBytes("AWS4" + secret), auth.Date);
        key = Hmac(key, auth.Region);
        key = Hmac(key, auth.Service);
        key = Hmac(key, "aws4_request");
        var expected = Encoding.ASCII.GetBytes(Hex(Hmac(key, stringToSign)));
        return CryptographicOperations.FixedTimeEquals(expected, Encoding.ASCII.GetBytes(auth.Signature)) ? null : "the signature does not match";
    }

    // Non-S3 services encode each path segment twice; the path as sent is already encoded once.
    private static string CanonicalPath(string rawPath) =>
        rawPath.Length == 0 ? "/" : string.Join('/', rawPath.Split('/').Select(Encode));

    private static string CanonicalQuery(string rawQuery) =>
        string.Join('&', rawQuery.Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2))
            .Select(p => (Name: Encode(Uri.UnescapeDataString(p[0])), Value: Encode(Uri.UnescapeDataString(p.Length > 1 ? p[1] : ""))))
            .OrderBy(p => p.Name, StringComparer.Ordinal).ThenBy(p => p.Value, StringComparer.Ordinal)
            .Select(p => p.Name + "=" + p.Value));

    /// <summary>RFC 3986 unreserved characters stay; every other byte of the UTF-8 form is %XX with uppercase hex.</summary>
    private static string Encode(string value)
    {
        var encoded = new StringBuilder();
        foreach (var b in Encoding.UTF8.GetBytes(value))
        {
            var c = (char)b;
            if (char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '~')
            {
                encoded.Append(c);
            }
            else
            {
                encoded.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return encoded.ToString();
    }

    private static byte[] Hmac(byte[] key, string data) => HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(data));

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);
}
