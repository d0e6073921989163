using Nexus.Sdk.Aws;
using Nexus.Server.Providers;

namespace Nexus.Server.Bridge;

/// <summary>Turns a provider's strategy and a connection's stored values into what the Bridge applies.</summary>
internal static class BridgeCredentials
{
    public static BridgeCredential From(Provider provider, IReadOnlyDictionary<string, string> values) => provider.AuthMode switch
    {
        AuthModes.ApiKey => new BridgeCredential.ApiKey(provider.Config.ApiKey?.In ?? "header", provider.Config.ApiKey?.Name ?? "Authorization", provider.Config.ApiKey?.Prefix,
            values.GetValueOrDefault("api_key") ?? values.Values.First()),
        AuthModes.BasicAuth => new BridgeCredential.Basic(values.GetValueOrDefault("username") ?? "", values.GetValueOrDefault("password") ?? ""),
        AuthModes.AwsSigV4 => new BridgeCredential.AwsSigV4(
            new AwsCredentials(values["access_key_id"], values["secret_access_key"], values.GetValueOrDefault("session_token")),
            values.GetValueOrDefault("region") ?? provider.Config.Aws?.GetValueOrDefault("region") ?? "us-east-1",
            provider.Config.Aws?.GetValueOrDefault("service") ?? "execute-api"),
        _ => throw new InvalidOperationException("OAuth connections carry a bearer token, not stored credential fields."),
    };
}
