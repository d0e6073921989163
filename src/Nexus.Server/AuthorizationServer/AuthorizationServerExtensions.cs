using Nexus.Server.AuthorizationServer.Applications;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Grants;
using Nexus.Server.AuthorizationServer.Resources;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.AuthorizationServer;

internal static class AuthorizationServerExtensions
{
    public static WebApplicationBuilder AddAuthorizationServer(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton<ClientRegistry>();
        services.AddSingleton<AppClientService>();
        services.AddSingleton<ApplicationService>();
        services.AddSingleton<ClientAuthenticator>();
        services.AddSingleton<FailedAuthenticationLimiter>();
        services.AddSingleton<GrantRetention>();
        services.AddSingleton<Data.IRetentionRule>(sp => sp.GetRequiredService<GrantRetention>());
        services.AddSingleton<RegistrationLimiter>();
        services.AddSingleton<ClientMetadataDocuments>();
        ClientMetadataDocuments.AddHttpClient(services);
        services.AddSingleton<SigningKeyStore>();
        services.AddSingleton<SigningKeys>();
        services.AddSingleton<Observability.IGaugeSource, SigningKeyGauge>();
        services.AddHostedService<SigningKeys.Refresher>();
        services.AddSingleton<AccessTokenIssuer>();
        services.AddSingleton<AccessTokenValidator>();
        services.AddSingleton<BearerTokenAuthenticator>();
        services.AddSingleton<DiscoveryEndpoint.Document>();
        services.AddSingleton<IdTokenIssuer>();
        services.AddSingleton<Grants.GrantStore>();
        // Disabling an account or resetting its password (Accounts/UserAdministration.cs) revokes its grants through it.
        services.AddSingleton<Accounts.IAccountGrants>(sp => sp.GetRequiredService<Grants.GrantStore>());
        services.AddSingleton<Grants.RevocationList>();
        services.AddHostedService<Grants.RevocationList.Poller>();
        services.AddSingleton<Grants.AuthorizationCodeGrant>();
        services.AddSingleton<Grants.RefreshTokenGrant>();
        services.AddSingleton(SigningKeyStore.Column);
        services.AddSingleton<IStartupStep, AuthorizationServerStartup>();
        services.AddAuthorizationServerCommands();
        services.AddSingleton<IUnavailableResponder, OAuthUnavailable>();
        services.AddSingleton(new NavigationLink(20, "/account/applications", "Authorized applications"));
        return builder;
    }

    public static WebApplication MapAuthorizationServer(this WebApplication app)
    {
        // Input the InputGuard refuses is answered on these endpoints as RFC 6749 errors, not problem documents.
        var protocol = app.MapGroup("").WithMetadata(OAuthInvalidInput.Instance);
        protocol.MapAuthorizeEndpoint();
        protocol.MapTokenEndpoint();
        protocol.MapExchangeEndpoint();
        protocol.MapIntrospection();
        protocol.MapRevocation();
        protocol.MapUserInfo();
        protocol.MapEndSession();
        protocol.MapDiscovery();
        protocol.MapProtectedResourceMetadata();
        protocol.MapClientRegistration();
        protocol.MapJwks();
        protocol.MapMe();
        // The consent page is AuthorizeEndpoint's; the consents given there are listed and withdrawn here.
        app.MapAuthorizedApplications();
        var admin = app.MapAdminGroup();
        admin.MapAppClientsAdmin();
        admin.MapApplicationsAdmin();
        admin.MapSigningKeysAdmin();
        return app;
    }

    /// <summary>Creates the secret-hashing key and the signing keys on first start, then loads them and what has been revoked.</summary>
    private sealed class AuthorizationServerStartup(ServerSecrets secrets, SecretHasher hasher, SigningKeyStore store, SigningKeys keys, Grants.RevocationList revocations) : IStartupStep
    {
        public async Task RunAsync(System.Data.Common.DbConnection connection, StartupPurpose purpose, CancellationToken ct)
        {
            hasher.Initialize(await secrets.GetOrCreateAsync(connection, "secret_hash_key", ct));
            await store.EnsureActiveKeysAsync(connection, ct);
            await keys.ReloadAsync(ct);
            await revocations.SyncAsync(ct, connection);
        }
    }
}
