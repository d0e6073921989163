using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Nexus.Sdk;
using Nexus.Sdk.Aws;
using Nexus.Server.AuthorizationServer.Grants;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Micro;

/// <summary>Client authentication at the token endpoint: the keyed HMAC-SHA256 of a client secret, compared in constant time.</summary>
[MemoryDiagnoser]
public class ClientAuthentication
{
    private readonly SecretHasher hasher = new();
    private string secret = "";
    private string stored = "";

    [GlobalSetup]
    public void Setup()
    {
        hasher.Initialize(RandomNumberGenerator.GetBytes(32));
        secret = SecretGenerator.Secret("ncs_");
        stored = hasher.Hash(secret);
    }

    [Benchmark]
    public bool VerifySecret() => hasher.Verify(secret, stored);
}

/// <summary>Writing an RFC 9068 access token: claims serialized and signed (ES256; RS256 for comparison).</summary>
[MemoryDiagnoser]
public class JwtWriting
{
    private SigningKey es256 = null!;
    private SigningKey rs256 = null!;

    [GlobalSetup]
    public void Setup()
    {
        es256 = new SigningKey(SigningKey.Es256, SigningKey.GeneratePkcs8(SigningKey.Es256), DateTimeOffset.UtcNow, null, null);
        rs256 = new SigningKey(SigningKey.Rs256, SigningKey.GeneratePkcs8(SigningKey.Rs256), DateTimeOffset.UtcNow, null, null);
    }

    [Benchmark(Baseline = true)]
    public string WriteEs256() => Write(es256);

    [Benchmark]
    public string WriteRs256() => Write(rs256);

    private static string Write(SigningKey key)
    {
        var jti = JwtWriter.NewJti();
        return JwtWriter.Write(key, key.AccessTokenHeader, json =>
        {
            json.WriteString("iss"u8, "https://nexus.example.com");
            json.WriteString("sub"u8, "client_bench");
            json.WriteString("aud"u8, "https://nexus.example.com");
            json.WriteString("client_id"u8, "client_bench");
            json.WriteString("scope"u8, "read");
            json.WriteString("jti"u8, jti);
            json.WriteNumber("iat"u8, 1_800_000_000);
            json.WriteNumber("nbf"u8, 1_800_000_000);
            json.WriteNumber("exp"u8, 1_800_003_600);
        });
    }
}

/// <summary>
/// The revocation check of every introspection, userinfo and bearer-token call (AuthorizationServer/Grants/RevocationList),
/// answered from memory: the list is read once from a migrated SQLite database, as at startup.
/// </summary>
[MemoryDiagnoser]
public class RevocationLookup
{
    private string directory = "";
    private NexusDatabase db = null!;
    private RevocationList list = null!;
    private AccessTokenClaims active = null!;
    private AccessTokenClaims revoked = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        directory = Path.Combine(Path.GetTempPath(), "nexus-micro-" + Guid.NewGuid().ToString("N"));
        var options = new NexusOptions { DataDirectory = directory };
        options.Revocation.PollSeconds = 3600;
        db = new NexusDatabase(options);
        await new Migrator(db, TimeProvider.System, NullLogger<Migrator>.Instance).MigrateAsync();
        list = new RevocationList(db, options, TimeProvider.System, NullLogger<RevocationList>.Instance);
        await list.SyncAsync(CancellationToken.None);
        await using (var connection = await db.OpenAsync(CancellationToken.None))
        {
            for (var i = 0; i < 10_000; i++)
            {
                await list.TokenRevokedAsync(connection, "revoked-" + i, 1_800_003_600, CancellationToken.None);
            }
        }

        active = new AccessTokenClaims("sub", "client_bench", "read", "jti-active", 1_800_000_000, 1_800_003_600, "grant-active");
        revoked = active with { Jti = "revoked-5000" };
        if (!list.IsCurrent)
        {
            throw new InvalidOperationException("The revocation list should answer from memory.");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        list.Dispose();
        db.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(directory, recursive: true);
    }

    [Benchmark(Baseline = true)]
    public bool ActiveToken() => Sync.Result(list.IsRevokedAsync(active, CancellationToken.None));

    [Benchmark]
    public bool RevokedToken() => Sync.Result(list.IsRevokedAsync(revoked, CancellationToken.None));
}

/// <summary>Vault decrypt: AES-256-GCM of a stored credential (an access token's size), its context bound as associated data.</summary>
[MemoryDiagnoser]
public class VaultDecrypt
{
    private KeyRing ring = null!;
    private byte[] ciphertext = [];

    [GlobalSetup]
    public void Setup()
    {
        ring = new KeyRing(RandomNumberGenerator.GetBytes(32), [RandomNumberGenerator.GetBytes(32)]);
        ciphertext = ring.Encrypt(new string('t', 1200), "connections.access_token:conn_bench");
    }

    [Benchmark]
    public string Decrypt() => ring.DecryptString(ciphertext, "connections.access_token:conn_bench");
}

/// <summary>
/// The credential caches: the server's per-instance row cache (Hosting/ShortLivedCache, in front of every
/// GET /v1/token/{id}, API key and client lookup) and the .NET SDK's credential cache (a hit, nothing fetched).
/// </summary>
[MemoryDiagnoser]
public class CredentialCacheHit
{
    private readonly Func<string, Task<string?>> load = key => Task.FromResult<string?>("row of " + key);
    private ShortLivedCache<string> server = null!;
    private CredentialCache sdk = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        server = new ShortLivedCache<string>(TimeProvider.System, () => 3600);
        for (var i = 0; i < 10_000; i++)
        {
            await server.GetAsync("conn_" + i, load);
        }

        using var json = System.Text.Json.JsonDocument.Parse("""{"strategy":{"type":"oauth2"},"credentials":{"access_token":"at"},"expires_at":4070908800}""");
        var credential = NexusCredential.Parse("conn_5000", json.RootElement);
        sdk = new CredentialCache((_, _) => Task.FromResult(credential), TimeProvider.System, TimeSpan.FromMinutes(1), TimeSpan.FromHours(1));
        await sdk.GetAsync("conn_5000", CancellationToken.None);
    }

    [Benchmark(Baseline = true)]
    public string? ServerRowCache() => Sync.Result(server.GetAsync("conn_5000", load));

    [Benchmark]
    public NexusCredential SdkCredentialCache() => Sync.Result(sdk.GetAsync("conn_5000", CancellationToken.None));
}

/// <summary>AWS Signature Version 4 of a small GET (the Bridge's and the SDK's aws_sigv4 strategy).</summary>
[MemoryDiagnoser]
public class SigV4Signing
{
    private static readonly Uri Uri = new("https://s3.eu-west-1.amazonaws.com/bench-bucket/some/key.txt?list-type=2&prefix=a");
    private static readonly KeyValuePair<string, string>[] Headers = [new("Accept", "application/json")];
    private readonly AwsCredentials credentials = new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    private readonly DateTimeOffset at = new(2026, 12, 5, 6, 0, 0, TimeSpan.Zero);

    [Benchmark]
    public SigV4SigningResult Sign() =>
        SigV4Signer.Sign("GET", Uri, Headers, SigV4Signer.EmptyPayloadHash, "eu-west-1", "s3", credentials, at);
}

/// <summary>The measured paths complete synchronously (a hit); anything else would be a benchmark bug, and is awaited.</summary>
internal static class Sync
{
    public static T Result<T>(ValueTask<T> pending) => pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
}
