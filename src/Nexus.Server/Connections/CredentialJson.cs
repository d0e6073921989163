using System.Text.Json;

namespace Nexus.Server.Connections;

/// <summary>The members GET /v1/token writes the same way for every strategy (CredentialEndpoint, CredentialCapture).</summary>
internal static class CredentialJson
{
    /// <summary>Unix seconds; null when the credential does not expire (GitHub OAuth apps, Slack without rotation, API keys).</summary>
    public static void WriteExpiresAt(Utf8JsonWriter json, long? unixSeconds)
    {
        if (unixSeconds is { } seconds)
        {
            json.WriteNumber("expires_at"u8, seconds);
        }
        else
        {
            json.WriteNull("expires_at"u8);
        }
    }

    /// <summary>The per-connection values (issue 17: the shop, instance or data centre the credential is for), when there are any.</summary>
    public static void WriteConnectionConfig(Utf8JsonWriter json, Connection connection)
    {
        if (connection.ConnectionConfig is null)
        {
            return;
        }

        json.WriteStartObject("connection_config"u8);
        foreach (var (name, value) in connection.Values)
        {
            json.WriteString(name, value);
        }

        json.WriteEndObject();
    }
}
