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
    private sealed record Entry(Provider Provider, BridgeCredential Credential);

    private readonly ConditionalWeakTable<Connection, Entry> entries = new();

    public BridgeCredential For(Connection connection, Provider provider)
    {
        if (entries.TryGetValue(connection, out var entry) && ReferenceEquals(entry.Provider, provider))
        {
            return entry.Credential;
        }

        var secret = store.Decrypt(ConnectionStore.AccessTokenColumn, connection.Id, connection.AccessToken!);
        BridgeCredential credential = connection.TokenType == CredentialCapture.TokenType
            ? BridgeCredentials.From(provider, JsonSerializer.Deserialize<Dictionary<string, string>>(secret)!)
            : new BridgeCredential.Bearer(secret);
        entries.AddOrUpdate(connection, new Entry(provider, credential));
        return credential;
    }
}
