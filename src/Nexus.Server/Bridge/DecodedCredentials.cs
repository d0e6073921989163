using System.Runtime.CompilerServices;
using System.Text.Json;
using Nexus.Server.Connections;
using Nexus.Server.Providers;

namespace Nexus.Server.Bridge;

/// <summary>
/// A connection row's stored credential, decrypted and decoded once per row rather than on every request: the
/// Bridge and GET /v1/token both read it from here (AES-GCM plus JSON were nearly a tenth of Nexus's CPU per Bridge
/// request in a profile). Keyed on the row object itself: the connection cache hands out the same row until it
/// expires, and a refresh, a new credential or a revocation produces a new row, so an entry can never outlive the
/// ciphertext it came from. It is rebuilt when the provider row it was built with is replaced (a PATCH of api_key or
/// aws settings). The plaintext lives as long as the cached row, a few seconds.
/// </summary>
internal sealed class DecodedCredentials(ConnectionStore store, ProviderRegistry providers)
{
    /// <param name="Values">A credential connection's stored fields, as GET /v1/token hands them out (null for an OAuth connection's bearer token).</param>
    /// <param name="Stored">What they sign or authenticate with and, for aws_sigv4, the role they assume; or why they cannot be used.</param>
    /// <param name="RoleKey">The role's <see cref="AwsRoleCredentials.CacheKey"/>, hashed once here rather than on every request.</param>
    public sealed record Decoded(Provider Provider, IReadOnlyDictionary<string, string>? Values, StoredCredential Stored, string? RoleKey);

    private readonly ConditionalWeakTable<Connection, Decoded> entries = new();

    public Decoded For(Connection connection, Provider provider)
    {
        if (entries.TryGetValue(connection, out var entry) && ReferenceEquals(entry.Provider, provider))
        {
            return entry;
        }

        var secret = store.Decrypt(ConnectionStore.AccessTokenColumn, connection.Id, connection.AccessToken!);
        if (connection.TokenType == CredentialCapture.TokenType)
        {
            var values = JsonSerializer.Deserialize<Dictionary<string, string>>(secret)!;
            var stored = BridgeCredentials.From(provider, values);
            var roleKey = stored is { Role: { } role, Credential: BridgeCredential.AwsSigV4 aws } ? AwsRoleCredentials.CacheKey(role, aws.Credentials) : null;
            entry = new Decoded(provider, values, stored, roleKey);
        }
        else
        {
            // The provider's scheme and extra headers (Yandex's "OAuth", Etsy's x-api-key), decided once per row too.
            entry = new Decoded(provider, null, new StoredCredential(BridgeCredential.Bearer.For(provider, secret, () => providers.DecryptSecret(provider)), null, null), null);
        }

        entries.AddOrUpdate(connection, entry);
        return entry;
    }
}
