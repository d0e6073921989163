using System.Runtime.CompilerServices;
using System.Text.Json;
using Nexus.Server.Connections;
using Nexus.Server.Providers;

namespace Nexus.Server.Bridge;

/// <summary>
/// The Bridge credential of a connection row, decrypted and decoded once per row rather than on every request
/// (AES-GCM plus JSON were nearly a tenth of Nexus's CPU per Bridge request in a profile). Keyed on the row object itself: the connection cache hands
/// out the same row until it expires, and a refresh, a new credential or a revocation produces a new row, so an
/// entry can never outlive the ciphertext it came from. It is rebuilt when the provider row it was built with is
/// replaced (a PATCH of api_key or aws settings). The plaintext lives as long as the cached row, a few seconds.
/// </summary>
internal sealed class DecodedCredentials(ConnectionStore store)
{
    /// <param name="Credential">What the stored values sign or authenticate with (null with a <paramref name="Problem"/>).</param>
    /// <param name="Role">For aws_sigv4 with a role: the role whose temporary credentials are used instead.</param>
    /// <param name="RoleKey">The role's <see cref="AwsRoleCredentials.CacheKey"/>, hashed once here rather than on every request.</param>
    /// <param name="Problem">Why the stored values cannot be used with the provider's settings.</param>
    public sealed record Decoded(Provider Provider, BridgeCredential? Credential, AwsRole? Role, string? RoleKey, CredentialProblem? Problem);

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
            entry = new Decoded(provider, stored.Credential, stored.Role, roleKey, stored.Problem);
        }
        else
        {
            entry = new Decoded(provider, new BridgeCredential.Bearer(secret), null, null, null);
        }

        entries.AddOrUpdate(connection, entry);
        return entry;
    }
}
