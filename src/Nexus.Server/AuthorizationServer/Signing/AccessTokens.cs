using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Signing;

/// <summary>What a verified access token says.</summary>
internal sealed record AccessTokenClaims(string Subject, string ClientId, string? Scope, string Jti, long IssuedAt, long ExpiresAt, string? GrantId = null, string Audience = "")
{
    public IReadOnlyList<string> Scopes => Scope is null ? [] : Scope.Split(' ', StringSplitOptions.RemoveEmptyEntries);
}

internal sealed record IssuedAccessToken(string Token, string Jti, int ExpiresIn);

/// <summary>
/// Writes compact JWS tokens. Written by hand rather than through a generic JWT library because token issuance is
/// the hottest path in Nexus: headers are precomputed per key and type, and the payload is serialized straight
/// into a buffer. Tests verify every kind of token with Microsoft.IdentityModel against the published JWKS.
/// </summary>
internal static class JwtWriter
{
    // One payload buffer and JSON writer per thread, reset for each token (a token's claims are not secret).
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? payloadBuffer;

    [ThreadStatic]
    private static Utf8JsonWriter? payloadWriter;

    public static string Write(SigningKey key, string header, Action<Utf8JsonWriter> writeClaims)
    {
        var payload = payloadBuffer ??= new ArrayBufferWriter<byte>(1024);
        payload.ResetWrittenCount();
        var json = payloadWriter ??= new Utf8JsonWriter(payload);
        json.Reset(payload);
        json.WriteStartObject();
        writeClaims(json);
        json.WriteEndObject();
        json.Flush();

        var signingInputLength = header.Length + 1 + Base64Url.GetEncodedLength(payload.WrittenCount);
        var signingInput = ArrayPool<byte>.Shared.Rent(signingInputLength);
        try
        {
            Encoding.ASCII.GetBytes(header, signingInput);
            signingInput[header.Length] = (byte)'.';
            Base64Url.EncodeToUtf8(payload.WrittenSpan, signingInput.AsSpan(header.Length + 1));
            var signature = key.Sign(signingInput.AsSpan(0, signingInputLength));
            return string.Create(signingInputLength + 1 + Base64Url.GetEncodedLength(signature.Length), (signingInput, signingInputLength, signature), static (span, state) =>
            {
                Encoding.ASCII.GetChars(state.signingInput.AsSpan(0, state.signingInputLength), span);
                span[state.signingInputLength] = '.';
                Base64Url.EncodeToChars(state.signature, span[(state.signingInputLength + 1)..]);
            });
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(signingInput);
            if (payload.Capacity > 16 * 1024)
            {
                // An unusually large token (many claims) does not keep its buffer on the thread.
                payloadBuffer = null;
                payloadWriter = null;
            }
        }
    }

    // Random bytes for token ids, drawn from the system's CSPRNG 32 ids at a time per thread. Each draw from OpenSSL
    // takes its generator's locks and a getpid system call (its fork check); one draw per token doubled what a
    // client-credentials token cost in system calls beyond its signature. A jti is public (it is in the token) and
    // needs only to be unique and unguessable in advance, which bytes drawn a little early still are.
    private const int JtiBytes = 16;

    [ThreadStatic]
    private static byte[]? jtiPool;

    [ThreadStatic]
    private static int jtiUsed;

    public static string NewJti()
    {
        var pool = jtiPool;
        if (pool is null || jtiUsed == pool.Length)
        {
            pool = jtiPool ??= new byte[32 * JtiBytes];
            RandomNumberGenerator.Fill(pool);
            jtiUsed = 0;
        }

        var bytes = pool.AsSpan(jtiUsed, JtiBytes);
        jtiUsed += JtiBytes;
        return Base64Url.EncodeToString(bytes);
    }
}

/// <summary>Issues RFC 9068 JWT access tokens for Nexus's own APIs and its MCP server.</summary>
internal sealed class AccessTokenIssuer(SigningKeys keys, NexusOptions options, TimeProvider time)
{
    private readonly JsonEncodedText issuer = JsonEncodedText.Encode(options.Issuer);
    private readonly JsonEncodedText apiAudience = JsonEncodedText.Encode(options.Audience);
    private readonly JsonEncodedText mcpAudience = JsonEncodedText.Encode(options.McpResource);

    /// <param name="subject">The client (client credentials) or the user (authorization code).</param>
    /// <param name="grantId">The grant the token belongs to, so that revoking the grant revokes the token.</param>
    /// <param name="authTime">When the user authenticated (RFC 9068 §2.2.1), for user tokens.</param>
    /// <param name="audience">The RFC 8707 resource the token is for (already validated); Nexus's API when null.</param>
    public IssuedAccessToken Issue(string subject, string clientId, string? scope, int lifetimeSeconds, string? grantId = null, long? authTime = null, string? audience = null)
    {
        var aud = audience is null || audience == options.Audience ? apiAudience
            : audience == options.McpResource ? mcpAudience
            : throw new ArgumentException("Not a resource this server issues tokens for.", nameof(audience));
        // A client's stored lifetime was checked against the maximum when it was set; an operator may have lowered the
        // maximum since. No token outlives it: the revocation list forgets a revoked grant MaxAccessTokenLifetimeSeconds
        // (plus an hour) after revoking it, and a longer-lived token of that grant would then be accepted again.
        lifetimeSeconds = Math.Min(lifetimeSeconds, options.MaxAccessTokenLifetimeSeconds);
        var key = keys.AccessTokenKey;
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        var jti = JwtWriter.NewJti();
        var token = JwtWriter.Write(key, key.AccessTokenHeader, json =>
        {
            // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat and jti are required; scope when granted.
            json.WriteString("iss"u8, issuer);
            json.WriteString("sub"u8, subject);
            // RFC 8707 §2 and RFC 9068 §3: one audience per token, the resource it was requested for.
            json.WriteString("aud"u8, aud);
            json.WriteString("client_id"u8, clientId);
            if (!string.IsNullOrEmpty(scope))
            {
                json.WriteString("scope"u8, scope);
            }

            json.WriteString("jti"u8, jti);
            json.WriteNumber("iat"u8, now);
            json.WriteNumber("nbf"u8, now);
            json.WriteNumber("exp"u8, now + lifetimeSeconds);
            if (authTime is { } at)
            {
                json.WriteNumber("auth_time"u8, at);
            }

            if (grantId is not null)
            {
                json.WriteString("gid"u8, grantId);
            }
        });
        return new IssuedAccessToken(token, jti, lifetimeSeconds);
    }
}

/// <summary>Verifies Nexus access tokens presented to Nexus's own APIs or its MCP server (RFC 9068 §4).</summary>
internal sealed class AccessTokenValidator(SigningKeys keys, NexusOptions options, TimeProvider time)
{
    private static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(30);

    private const int MaxVerified = 10_000;

    /// <summary>
    /// SHA-256 digests of whole tokens whose signature this instance has verified. An assistant sends the same token on
    /// every MCP request; checking the signature again (an ES256 verification, the larger half of a token check) would
    /// prove nothing new about the same bytes. Everything else is checked on every request as before: the kid must
    /// still name a published key, and issuer, audience, expiry, client and revocation. Any changed byte changes the
    /// digest, so a tampered token is verified (and refused) anew. Bounded: emptied when full.
    /// </summary>
    private readonly Hosting.CountedDictionary<string, byte> verified = new(StringComparer.Ordinal);

    /// <summary>Verifies a token presented to Nexus's REST API: its aud must be <see cref="NexusOptions.Audience"/>.</summary>
    public ValueTask<(AccessTokenClaims? Claims, string? Error)> ValidateAsync(string token, CancellationToken ct) => ValidateAsync(token, options.Audience, ct);

    /// <summary>
    /// Verifies a token for the resource <paramref name="audience"/> (e.g. <see cref="NexusOptions.McpResource"/> for /mcp).
    /// Null accepts a token for any resource of this server: only for the authorization server's own endpoints
    /// (introspection, revocation), which report or act on the token rather than serve it.
    /// </summary>
    public async ValueTask<(AccessTokenClaims? Claims, string? Error)> ValidateAsync(string token, string? audience, CancellationToken ct)
    {
        var firstDot = token.IndexOf('.', StringComparison.Ordinal);
        var lastDot = token.LastIndexOf('.');
        if (firstDot <= 0 || lastDot == firstDot || token.IndexOf('.', firstDot + 1) != lastDot || token.Length > 8192)
        {
            return (null, "The token is not a JWS compact serialization.");
        }

        string? alg, kid, typ;
        try
        {
            using var header = JsonDocument.Parse(Base64Url.DecodeFromChars(token.AsSpan(0, firstDot)));
            alg = header.RootElement.TryGetProperty("alg", out var a) ? a.GetString() : null;
            kid = header.RootElement.TryGetProperty("kid", out var k) ? k.GetString() : null;
            typ = header.RootElement.TryGetProperty("typ", out var t) ? t.GetString() : null;
        }
        catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException)
        {
            return (null, "The token header is malformed.");
        }

        // RFC 9068 §4: reject tokens whose typ is not at+jwt, so an ID token can never pass as an access token.
        if (!string.Equals(typ, "at+jwt", StringComparison.OrdinalIgnoreCase) && !string.Equals(typ, "application/at+jwt", StringComparison.OrdinalIgnoreCase))
        {
            return (null, "The token is not an access token (typ must be at+jwt).");
        }

        if (kid is null || await keys.FindAsync(kid, ct) is not { } key || !string.Equals(alg, key.Alg, StringComparison.Ordinal))
        {
            return (null, "The token was not signed by a key this server publishes.");
        }

        byte[] signature;
        try
        {
            signature = Base64Url.DecodeFromChars(token.AsSpan(lastDot + 1));
        }
        catch (FormatException)
        {
            return (null, "The token signature is malformed.");
        }

        var digest = Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
        if (!verified.ContainsKey(digest))
        {
            if (!key.Verify(Encoding.ASCII.GetBytes(token, 0, lastDot), signature))
            {
                return (null, "The token signature is invalid.");
            }

            if (verified.Count >= MaxVerified)
            {
                verified.Clear();
            }

            verified.TryAdd(digest, 0);
        }

        try
        {
            using var payload = JsonDocument.Parse(Base64Url.DecodeFromChars(token.AsSpan(firstDot + 1, lastDot - firstDot - 1)));
            var root = payload.RootElement;
            var iss = root.GetProperty("iss").GetString();
            if (!string.Equals(iss, options.Issuer, StringComparison.Ordinal))
            {
                return (null, "The token was issued by another issuer.");
            }

            // RFC 9068 §4 and RFC 8707: the token must be for this resource and for nothing else, so that a token
            // issued for the MCP server is refused by the REST API and the other way round (no token passthrough).
            var tokenAudience = SingleAudience(root);
            if (tokenAudience is null || (audience is null ? tokenAudience != options.Audience && tokenAudience != options.McpResource : tokenAudience != audience))
            {
                return (null, "The token is not meant for this API (aud).");
            }

            var now = time.GetUtcNow();
            var exp = root.GetProperty("exp").GetInt64();
            if (DateTimeOffset.FromUnixTimeSeconds(exp) + ClockSkew <= now)
            {
                return (null, "The token has expired.");
            }

            if (root.TryGetProperty("nbf", out var nbf) && DateTimeOffset.FromUnixTimeSeconds(nbf.GetInt64()) - ClockSkew > now)
            {
                return (null, "The token is not valid yet.");
            }

            // The revocation list forgets a revoked grant MaxAccessTokenLifetimeSeconds (plus an hour) after its revocation:
            // a token issued for longer, before the operator lowered the maximum, would outlive that memory and come back
            // to life. It is not accepted for longer than the maximum allows now.
            if (exp - root.GetProperty("iat").GetInt64() > options.MaxAccessTokenLifetimeSeconds)
            {
                return (null, "The token was issued for longer than Nexus now allows (MaxAccessTokenLifetimeSeconds).");
            }

            return (new AccessTokenClaims(
                root.GetProperty("sub").GetString()!,
                root.GetProperty("client_id").GetString()!,
                root.TryGetProperty("scope", out var scope) ? scope.GetString() : null,
                root.GetProperty("jti").GetString()!,
                root.GetProperty("iat").GetInt64(),
                exp,
                root.TryGetProperty("gid", out var gid) ? gid.GetString() : null,
                tokenAudience), null);
        }
        catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException or KeyNotFoundException)
        {
            return (null, "The token claims are malformed.");
        }
    }

    /// <summary>The token's one audience: a string, or an array of exactly one string; null otherwise.</summary>
    private static string? SingleAudience(JsonElement root)
    {
        if (!root.TryGetProperty("aud", out var aud))
        {
            return null;
        }

        if (aud.ValueKind == JsonValueKind.String)
        {
            return aud.GetString();
        }

        return aud.ValueKind == JsonValueKind.Array && aud.GetArrayLength() == 1 && aud[0].ValueKind == JsonValueKind.String ? aud[0].GetString() : null;
    }
}
