using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using static System.Buffers.Text.Base64Url;

namespace Nexus.Server.AuthorizationServer.Signing;

/// <summary>
/// One JWS key. Key objects are pooled because the platform does not promise that one ECDsa/RSA instance may
/// sign on several threads at once, and importing a key per request would cost more than the signature.
/// </summary>
internal sealed class SigningKey
{
    public const string Es256 = "ES256";
    public const string Rs256 = "RS256";

    private readonly byte[] pkcs8;
    private readonly ConcurrentBag<AsymmetricAlgorithm> pool = [];

    public SigningKey(string alg, byte[] pkcs8, DateTimeOffset createdAt, DateTimeOffset? retiredAt, DateTimeOffset? expiresAt)
    {
        Alg = alg;
        this.pkcs8 = pkcs8;
        CreatedAt = createdAt;
        RetiredAt = retiredAt;
        ExpiresAt = expiresAt;
        var algorithm = Create();
        PublicJwk = ToPublicJwk(algorithm);
        Kid = Thumbprint(PublicJwk);
        PublicJwk["kid"] = Kid;
        PublicJwk["alg"] = Alg;
        PublicJwk["use"] = "sig";
        pool.Add(algorithm);
        AccessTokenHeader = EncodeToString(Encoding.UTF8.GetBytes($"{{\"alg\":\"{Alg}\",\"kid\":\"{Kid}\",\"typ\":\"at+jwt\"}}"));
        JwtHeader = EncodeToString(Encoding.UTF8.GetBytes($"{{\"alg\":\"{Alg}\",\"kid\":\"{Kid}\",\"typ\":\"JWT\"}}"));
    }

    public string Kid { get; }

    public string Alg { get; }

    public DateTimeOffset CreatedAt { get; }

    public DateTimeOffset? RetiredAt { get; }

    public DateTimeOffset? ExpiresAt { get; }

    public JsonObject PublicJwk { get; }

    /// <summary>The base64url JOSE header of RFC 9068 access tokens signed by this key.</summary>
    public string AccessTokenHeader { get; }

    /// <summary>The base64url JOSE header of other JWTs (ID tokens) signed by this key.</summary>
    public string JwtHeader { get; }

    public byte[] Pkcs8 => pkcs8;

    public static byte[] GeneratePkcs8(string alg)
    {
        using AsymmetricAlgorithm key = alg switch
        {
            Es256 => ECDsa.Create(ECCurve.NamedCurves.nistP256),
            Rs256 => RSA.Create(2048),
            _ => throw new ArgumentOutOfRangeException(nameof(alg), alg, "Supported: ES256, RS256."),
        };
        return key.ExportPkcs8PrivateKey();
    }

    public byte[] Sign(ReadOnlySpan<byte> data)
    {
        var key = Rent();
        try
        {
            // RFC 7518 §3.4: ES256 signatures are R||S (IEEE P1363), which is .NET's default format.
            return key switch
            {
                ECDsa ec => ec.SignData(data, HashAlgorithmName.SHA256),
                RSA rsa => rsa.SignData(data.ToArray(), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
                _ => throw new InvalidOperationException(),
            };
        }
        finally
        {
            pool.Add(key);
        }
    }

    public bool Verify(ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        var key = Rent();
        try
        {
            return key switch
            {
                ECDsa ec => ec.VerifyData(data, signature, HashAlgorithmName.SHA256),
                RSA rsa => rsa.VerifyData(data, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
                _ => false,
            };
        }
        finally
        {
            pool.Add(key);
        }
    }

    private AsymmetricAlgorithm Rent() => pool.TryTake(out var key) ? key : Create();

    private AsymmetricAlgorithm Create()
    {
        AsymmetricAlgorithm key = Alg == Es256 ? ECDsa.Create() : RSA.Create();
        key.ImportPkcs8PrivateKey(pkcs8, out _);
        return key;
    }

    private static JsonObject ToPublicJwk(AsymmetricAlgorithm key)
    {
        switch (key)
        {
            case ECDsa ec:
                var p = ec.ExportParameters(false);
                return new JsonObject { ["kty"] = "EC", ["crv"] = "P-256", ["x"] = EncodeToString(p.Q.X), ["y"] = EncodeToString(p.Q.Y) };
            case RSA rsa:
                var r = rsa.ExportParameters(false);
                return new JsonObject { ["kty"] = "RSA", ["n"] = EncodeToString(r.Modulus), ["e"] = EncodeToString(r.Exponent) };
            default:
                throw new InvalidOperationException();
        }
    }

    /// <summary>RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order.</summary>
    private static string Thumbprint(JsonObject jwk)
    {
        var canonical = (string)jwk["kty"]! == "EC"
            ? $"{{\"crv\":\"{jwk["crv"]}\",\"kty\":\"EC\",\"x\":\"{jwk["x"]}\",\"y\":\"{jwk["y"]}\"}}"
            : $"{{\"e\":\"{jwk["e"]}\",\"kty\":\"RSA\",\"n\":\"{jwk["n"]}\"}}";
        return EncodeToString(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
    }
}
