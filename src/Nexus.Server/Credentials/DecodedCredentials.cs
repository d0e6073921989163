using System.Runtime.CompilerServices;
using System.Text.Json;
using Nexus.Server.Providers;

namespace Nexus.Server.Credentials;

/// <summary>
/// A stored credential, decrypted and decoded once per row rather than on every request: the Bridge and
/// GET /v1/token both read it from here (AES-GCM plus JSON were nearly a tenth of Nexus's CPU per Bridge request in a
/// profile). Keyed on the row object itself (a connection row, through <c>Connections.ConnectionCredentials</c>): the
/// connection cache hands out the same row until it expires, and a refresh, a new credential or a revocation produces
/// a new row, so an entry can never outlive the ciphertext it came from. It is rebuilt when the provider row it was
/// built with is replaced (a PATCH of api_key or aws settings). The plaintext lives as long as the cached row, a few
/// seconds.
/// </summary>
internal sealed class DecodedCredentials(ProviderRegistry providers)
{
    /// <param name="Values">A credential connection's stored fields, as GET /v1/token hands them out (null for an OAuth connection's bearer token).</param>
    /// <param name="Stored">What they sign or authenticate with and, for aws_sigv4, the role they assume; or why they cannot be used.</param>
    /// <param name="RoleKey">The role's <see cref="AwsRoleCredentials.CacheKey"/>, hashed once here rather than on every request.</param>
    public sealed record Decoded(Provider Provider, IReadOnlyDictionary<string, string>? Values, StoredCredential Stored, string? RoleKey);

    private readonly ConditionalWeakTable<object, Decoded> entries = new();

    /// <param name="row">The row that holds the ciphertext; the entry lives as long as it.</param>
    /// <param name="storedFields">The secret is a JSON object of credential fields (api_key, basic_auth, aws_sigv4), not an OAuth access token.</param>
    /// <param name="decrypt">The row's secret in plaintext; called only when the row has no entry yet (one delegate per caller, not per request).</param>
    public Decoded For(object row, Provider provider, bool storedFields, Func<object, string> decrypt)
    {
        if (entries.TryGetValue(row, out var entry) && ReferenceEquals(entry.Provider, provider))
        {
            return entry;
        }

        var secret = decrypt(row);
        if (storedFields)
        {
            var values = JsonSerializer.Deserialize<Dictionary<string, string>>(secret)!;
            var stored = UpstreamCredentials.From(provider, values);
            var roleKey = stored is { Role: { } role, Credential: UpstreamCredential.AwsSigV4 aws } ? AwsRoleCredentials.CacheKey(role, aws.Credentials) : null;
            entry = new Decoded(provider, values, stored, roleKey);
        }
        else
        {
            // The provider's scheme and extra headers (Yandex's "OAuth", Etsy's x-api-key), decided once per row too.
            entry = new Decoded(provider, null, new StoredCredential(UpstreamCredential.Bearer.For(provider, secret, () => providers.DecryptSecret(provider)), null, null), null);
        }

        entries.AddOrUpdate(row, entry);
        return entry;
    }
}
