using Nexus.Server.Credentials;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections;

/// <summary>A connection row's stored credential, decoded once per cached row (<see cref="DecodedCredentials"/>).</summary>
internal sealed class ConnectionCredentials
{
    private readonly DecodedCredentials decoded;
    private readonly Func<object, string> decrypt;

    public ConnectionCredentials(DecodedCredentials decoded, ConnectionStore store)
    {
        this.decoded = decoded;
        decrypt = row => row is Connection c ? store.Decrypt(ConnectionStore.AccessTokenColumn, c.Id, c.AccessToken!) : throw new ArgumentException("Not a connection row.", nameof(row));
    }

    public DecodedCredentials.Decoded For(Connection connection, Provider provider) =>
        decoded.For(connection, provider, connection.TokenType == CredentialCapture.TokenType, decrypt);
}
