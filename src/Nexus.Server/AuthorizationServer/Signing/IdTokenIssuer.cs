using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Nexus.Server.Accounts;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Signing;

/// <summary>OpenID Connect ID tokens (OIDC Core §2), signed RS256, the algorithm every relying party supports.</summary>
internal sealed class IdTokenIssuer(SigningKeys keys, NexusOptions options, TimeProvider time)
{
    public const string Algorithm = SigningKey.Rs256;
    public const int LifetimeSeconds = 300;

    public string Issue(NexusUser user, string clientId, IReadOnlyList<string> scopes, string? nonce, long authTime, string accessToken)
    {
        var key = keys.ActiveFor(Algorithm);
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        // OIDC Core §3.1.3.6: at_hash is the left half of the SHA-256 of the access token, base64url.
        var atHash = Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(accessToken)).AsSpan(0, 16));
        return JwtWriter.Write(key, key.JwtHeader, json =>
        {
            json.WriteString("iss"u8, options.Issuer);
            json.WriteString("sub"u8, user.Id);
            json.WriteString("aud"u8, clientId);
            json.WriteString("azp"u8, clientId);
            json.WriteNumber("iat"u8, now);
            json.WriteNumber("exp"u8, now + LifetimeSeconds);
            json.WriteNumber("auth_time"u8, authTime);
            if (nonce is not null)
            {
                json.WriteString("nonce"u8, nonce);
            }

            json.WriteString("at_hash"u8, atHash);
            WriteProfileClaims(json, user, scopes);
        });
    }

    /// <summary>The claims the profile and email scopes release (OIDC Core §5.4), shared with /oauth2/userinfo.</summary>
    public static void WriteProfileClaims(Utf8JsonWriter json, NexusUser user, IReadOnlyList<string> scopes)
    {
        if (scopes.Contains("email"))
        {
            json.WriteString("email"u8, user.Email);
            json.WriteBoolean("email_verified"u8, user.EmailConfirmed);
        }

        if (scopes.Contains("profile"))
        {
            json.WriteString("name"u8, user.DisplayName ?? user.Email);
            json.WriteString("preferred_username"u8, user.Email);
        }
    }
}
