using Nexus.Server.AuthorizationServer.Applications;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Hosting.Commands;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// The authorization server's commands: App Clients (<c>clients</c>, client credentials), OAuth applications
/// (<c>apps</c>, authorization code) and <c>keys rotate-signing</c>. They call what /v1/admin/clients,
/// /v1/admin/applications and /v1/admin/signing-keys call.
/// </summary>
internal static class AuthorizationServerCommands
{
    public static IServiceCollection AddAuthorizationServerCommands(this IServiceCollection services) => services
        .AddNexusCommand("clients create", "create an App Client for the client credentials grant (secret shown once)", """
            Usage: Nexus.Server clients create --name NAME [--scopes SCOPE[,SCOPE…]] [--lifetime SECONDS] [--json]
              Creates an App Client, as POST /v1/admin/clients does: a machine that gets tokens with its own id and
              secret (RFC 6749 section 4.4).
              --scopes    the scopes it may ask for (comma-separated or repeated)
              --lifetime  access token lifetime in seconds (60 to Nexus:MaxAccessTokenLifetimeSeconds; default 3600)
              --json      the API's client object, with "client_secret" (shown once; only its hash is stored)
            """, CreateClientAsync, options: ["name", "scopes", "lifetime"])
        .AddNexusCommand("clients list", "list the App Clients", """
            Usage: Nexus.Server clients list [--json]
              Lists the App Clients, as GET /v1/admin/clients does (never a secret).
              --json   {"clients":[{"client_id","name","scopes","grant_types","access_token_lifetime_seconds","status",…}]}
            """, ListClientsAsync)
        .AddNexusCommand("clients rotate", "give an App Client a new secret (the old one stops working)", """
            Usage: Nexus.Server clients rotate CLIENT_ID [--json]
              Gives the App Client a new secret, as POST /v1/admin/clients/{client_id}/secret does. The old secret stops
              working at once; tokens already issued stay valid until they expire.
              --json   {"client_id","client_secret","secret_rotated_at"}
            """, RotateClientAsync, arguments: 1)
        .AddNexusCommand("clients revoke", "revoke an App Client", """
            Usage: Nexus.Server clients revoke CLIENT_ID [--json]
              Revokes the App Client, as DELETE /v1/admin/clients/{client_id} does: it gets no more tokens and the ones
              it has stop being accepted. Revoking twice is not an error.
              --json   the API's client object (status "revoked")
            """, RevokeClientAsync, arguments: 1)
        .AddNexusCommand("apps create", "register an OAuth application (Nexus as its identity provider)", """
            Usage: Nexus.Server apps create --name NAME --redirect-uri URI [--redirect-uri URI…] [--type confidential|public]
                                          [--scopes SCOPE[,SCOPE…]] [--post-logout-redirect-uri URI…] [--description TEXT]
                                          [--base-url URL] [--owner-email EMAIL] [--lifetime SECONDS] [--json]
              Registers an OAuth application, as POST /v1/admin/applications does: people sign in to it with Nexus
              (authorization code with PKCE, OpenID Connect). A confidential application gets a secret, shown once; a
              public one (SPA, mobile, CLI) gets none. Default scopes: openid profile email offline_access.
              --json   the API's application object, with "client_secret" for a confidential one
            """, CreateAppAsync,
            options: ["name", "redirect-uri", "type", "scopes", "post-logout-redirect-uri", "description", "base-url", "owner-email", "lifetime"])
        .AddNexusCommand("apps list", "list the OAuth applications", """
            Usage: Nexus.Server apps list [--json]
              Lists the OAuth applications (registered here, dynamically or by metadata document), as
              GET /v1/admin/applications does.
              --json   {"applications":[{"client_id","name","type","redirect_uris",…,"status","registration"}]}
            """, ListAppsAsync)
        .AddNexusCommand("apps revoke", "delete an OAuth application (its tokens stop working)", """
            Usage: Nexus.Server apps revoke CLIENT_ID [--json]
              Deletes the OAuth application, as DELETE /v1/admin/applications/{client_id} does: sign-ins through it stop
              and its tokens are no longer accepted.
              --json   the API's application object (status "revoked")
            """, RevokeAppAsync, arguments: 1)
        .AddNexusCommand("keys rotate-signing", "start signing tokens with new keys; old keys stay published", """
            Usage: Nexus.Server keys rotate-signing [--json]
              Starts signing tokens with new keys, as POST /v1/admin/signing-keys/rotate does. The old keys stay
              published in the JWKS for Nexus:SigningKeyOverlapSeconds, so tokens they signed keep verifying.
              --json   {"keys":[{"kid","alg","status","created_at"}]}
            """, RotateSigningAsync);

    private static async Task<int> CreateClientAsync(CommandContext context, CancellationToken ct)
    {
        var request = new AppClientRequest(context.Args.Required("name"), context.Args.List("scopes"), null, context.Args.Int("lifetime"));
        var (client, secret, errors) = await context.Get<AppClientService>().CreateAsync(request, ct);
        if (client is null)
        {
            throw CommandContext.Invalid(errors);
        }

        return await context.ResultAsync(AppClientResponse.From(client, secret),
            $"Created App Client {client.ClientId} '{client.Name}'.\nClient secret (shown once): {secret}");
    }

    private static async Task<int> ListClientsAsync(CommandContext context, CancellationToken ct)
    {
        var clients = (await context.Get<AppClientService>().ListAsync(ct)).Select(c => AppClientResponse.From(c)).ToList();
        return await context.ListAsync(new { clients }, clients, "No App Clients yet.",
            ("CLIENT_ID", c => c.ClientId), ("NAME", c => c.Name), ("SCOPES", c => string.Join(" ", c.Scopes)),
            ("LIFETIME", c => c.AccessTokenLifetimeSeconds + "s"), ("STATUS", c => c.Status), ("CREATED", c => c.CreatedAt.ToString("u")));
    }

    private static async Task<OAuthClient> FindClientAsync(CommandContext context, CancellationToken ct)
    {
        var id = context.Args.Argument(0, "CLIENT_ID (nxc_…)");
        return await context.Get<AppClientService>().FindAsync(id, ct)
            ?? throw new CommandFailedException($"There is no App Client '{id}'. See `clients list`.", ProblemCatalog.NotFound);
    }

    private static async Task<int> RotateClientAsync(CommandContext context, CancellationToken ct)
    {
        var client = await FindClientAsync(context, ct);
        var (secret, rotatedAt) = await context.Get<AppClientService>().RotateSecretAsync(client, ct)
            ?? throw new CommandFailedException("A revoked client cannot get a new secret.", ProblemCatalog.ClientRevoked);
        return await context.ResultAsync(new AppClientSecretResponse(client.ClientId, secret, rotatedAt),
            $"New secret for {client.ClientId} (shown once; the old one no longer works): {secret}");
    }

    private static async Task<int> RevokeClientAsync(CommandContext context, CancellationToken ct)
    {
        var revoked = await context.Get<AppClientService>().RevokeAsync(await FindClientAsync(context, ct), ct);
        return await context.ResultAsync(AppClientResponse.From(revoked), $"Revoked App Client {revoked.ClientId} '{revoked.Name}'.");
    }

    private static async Task<int> CreateAppAsync(CommandContext context, CancellationToken ct)
    {
        var args = context.Args;
        var request = new ApplicationRequest(args.Required("name"), args.List("redirect-uri"), args.Option("description"), args.Option("base-url"),
            args.Option("owner-email"), args.Option("type"), args.List("scopes"), args.List("post-logout-redirect-uri"), args.Int("lifetime"));
        var (app, secret, errors) = await context.Get<ApplicationService>().CreateAsync(request, ct);
        if (app is null)
        {
            throw CommandContext.Invalid(errors);
        }

        return await context.ResultAsync(ApplicationResponse.From(app, secret),
            $"Registered {app.ClientType} application {app.ClientId} '{app.Name}'." + (secret is null ? "" : $"\nClient secret (shown once): {secret}"));
    }

    private static async Task<int> ListAppsAsync(CommandContext context, CancellationToken ct)
    {
        var apps = (await context.Get<ApplicationService>().ListAsync(ct)).Select(c => ApplicationResponse.From(c)).ToList();
        return await context.ListAsync(new { applications = apps }, apps, "No OAuth applications yet.",
            ("CLIENT_ID", a => a.ClientId), ("NAME", a => a.Name), ("TYPE", a => a.Type), ("REDIRECT_URIS", a => string.Join(" ", a.RedirectUris)),
            ("REGISTRATION", a => a.Registration), ("STATUS", a => a.Status));
    }

    private static async Task<int> RevokeAppAsync(CommandContext context, CancellationToken ct)
    {
        var id = context.Args.Argument(0, "CLIENT_ID");
        var applications = context.Get<ApplicationService>();
        var app = await applications.FindAsync(id, ct)
            ?? throw new CommandFailedException($"There is no OAuth application '{id}'. See `apps list`.", ProblemCatalog.NotFound);
        var revoked = await applications.RevokeAsync(app, ct);
        return await context.ResultAsync(ApplicationResponse.From(revoked), $"Revoked application {revoked.ClientId} '{revoked.Name}'.");
    }

    private static async Task<int> RotateSigningAsync(CommandContext context, CancellationToken ct)
    {
        var created = await context.Get<SigningKeyStore>().RotateAsync(ct);
        await context.Get<SigningKeys>().ReloadAsync(ct);
        return await context.ResultAsync(new { keys = created.Select(SigningKeyResponse.From) },
            $"Now signing with {string.Join(", ", created.Select(k => $"{k.Alg} {k.Kid}"))}. Running instances pick the keys up within Nexus:SigningKeyRefreshSeconds.");
    }
}
