using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Nexus.Server.Connections;

/// <summary>
/// Client authentication with a signed JWT (RFC 7523 §2.2, private_key_jwt): Nexus signs a short-lived assertion with
/// the ES256 key an administrator gave for a machine-to-machine MCP server (SEP-1046). The key lives only encrypted
/// in the provider's secret column and in memory while signing.
/// </summary>
internal static class ClientAssertions
{
    public const string JwtBearerType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

    private static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(5);

    /// <summary>Null when <paramref name="pem"/> is a P-256 private key (PKCS#8 or SEC1 PEM); else what is wrong, without the key.</summary>
    public static string? KeyProblem(string pem)
    {
        try
        {
            using var key = ECDsa.Create();
            key.ImportFromPem(pem);
            var parameters = key.ExportParameters(includePrivateParameters: true);
            return parameters.Curve.Oid?.Value == ECCurve.NamedCurves.nistP256.Oid.Value ? null : "private_key_pem must be a P-256 key (ES256).";
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            return "private_key_pem must be an EC private key in PEM (-----BEGIN PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----) for ES256.";
        }
    }

    /// <summary>RFC 7523 §3: iss and sub the client_id, aud the authorization server (its issuer), a unique jti, a short exp.</summary>
    public static string Create(string pem, string clientId, string audience, TimeProvider time)
    {
        using var key = ECDsa.Create();
        key.ImportFromPem(pem);
        var now = time.GetUtcNow();
        var header = Encode(JsonSerializer.SerializeToUtf8Bytes(new { alg = "ES256", typ = "JWT" }));
        var payload = Encode(JsonSerializer.SerializeToUtf8Bytes(new
        {
            iss = clientId,
            sub = clientId,
            aud = audience,
            jti = Guid.NewGuid().ToString("N"),
            iat = now.ToUnixTimeSeconds(),
            exp = now.Add(Lifetime).ToUnixTimeSeconds(),
        }));
        var signingInput = header + "." + payload;
        // RFC 7518 §3.4: ES256 is the raw 64-byte R||S, which is .NET's IEEE P1363 format.
        var signature = key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return signingInput + "." + Encode(signature);
    }

    private static string Encode(byte[] bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);
}
