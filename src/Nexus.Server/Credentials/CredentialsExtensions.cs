namespace Nexus.Server.Credentials;

/// <summary>
/// Where stored credentials are turned into what a request to a provider carries: <see cref="UpstreamCredentials"/>
/// (strategy and stored values to a credential), <see cref="DecodedCredentials"/> (once per row),
/// <see cref="CredentialInjection"/> (onto the request), and for aws_sigv4 roles <see cref="StsClient"/> and the
/// <see cref="AwsRoleCredentials"/> cache. GET /v1/token and credential capture (Connections) and the Bridge use it;
/// it depends on neither.
/// </summary>
internal static class CredentialsExtensions
{
    public static WebApplicationBuilder AddCredentials(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton<StsClient>();
        services.AddSingleton<AwsRoleCredentials>();
        services.AddSingleton<DecodedCredentials>();
        return builder;
    }
}

/// <summary>
/// Where the rows that hold stored credentials say one was deleted (Connections' store), so that what was derived from
/// it in memory (assumed-role credentials) goes at once rather than at its expiry.
/// </summary>
internal interface ICredentialDeletions
{
    void OnDeleted(Action<string> callback);
}
