using Nexus.Server.Hosting;
using Nexus.Server.Hosting.Commands;

namespace Nexus.Server.ApiKeys;

/// <summary>The gateway API keys' commands: <c>api-keys create|list|revoke</c>, calling what /v1/admin/api-keys calls.</summary>
internal static class ApiKeysCommands
{
    public static IServiceCollection AddApiKeysCommands(this IServiceCollection services) => services
        .AddNexusCommand("api-keys create", "create a gateway API key (shown once)", """
            Usage: Nexus.Server api-keys create --name NAME --workspaces ID[,ID…] [--no-credentials] [--json]
              Creates a key for the gateway API (/v1/connect, /v1/token, the Bridge), as POST /v1/admin/api-keys does.
              --workspaces      the workspace ids the key may act for (comma-separated or repeated), or '*' for all
              --no-credentials  the key manages connections but never reads a credential (a Bridge-only key)
              --json            the API's key object, with "api_key" (shown once; only its hash is stored)
            """, CreateAsync, options: ["name", "workspaces"], flags: ["no-credentials"])
        .AddNexusCommand("api-keys list", "list the gateway API keys (never the keys themselves)", """
            Usage: Nexus.Server api-keys list [--json]
              Lists the gateway API keys, as GET /v1/admin/api-keys does.
              --json   {"api_keys":[{"id","name","workspaces","can_read_credentials","status","created_at","revoked_at"}]}
            """, ListAsync)
        .AddNexusCommand("api-keys revoke", "revoke a gateway API key", """
            Usage: Nexus.Server api-keys revoke ID [--json]
              Revokes the key with this id (ak_…), as DELETE /v1/admin/api-keys/{id} does. A running Nexus stops accepting
              it within Nexus__ApiKeyCacheSeconds (5 s by default), as another instance does after a DELETE. Revoking
              twice is not an error. The record stays, so the audit log keeps naming it.
              --json   the API's key object (status "revoked")
            """, RevokeAsync, arguments: 1);

    private static async Task<int> CreateAsync(CommandContext context, CancellationToken ct)
    {
        var request = new ApiKeyRequest(context.Args.Required("name"), context.Args.List("workspaces"), !context.Args.Flag("no-credentials"));
        var (key, secret, errors) = await context.Get<ApiKeyService>().CreateAsync(request, ct);
        if (key is null)
        {
            throw CommandContext.Invalid(errors);
        }

        return await context.ResultAsync(ApiKeyResponse.From(key, secret),
            $"Created API key {key.Id} '{key.Name}' for {string.Join(", ", key.Workspaces)}.\nKey (shown once): {secret}");
    }

    private static async Task<int> ListAsync(CommandContext context, CancellationToken ct)
    {
        var keys = (await context.Get<ApiKeyService>().ListAsync(ct)).Select(k => ApiKeyResponse.From(k)).ToList();
        return await context.ListAsync(new { api_keys = keys }, keys, "No API keys yet.",
            ("ID", k => k.Id), ("NAME", k => k.Name), ("WORKSPACES", k => string.Join(",", k.Workspaces)),
            ("CREDENTIALS", k => k.CanReadCredentials ? "read" : "no"), ("STATUS", k => k.Status), ("CREATED", k => k.CreatedAt.ToString("u")));
    }

    private static async Task<int> RevokeAsync(CommandContext context, CancellationToken ct)
    {
        var id = context.Args.Argument(0, "ID (the API key's ak_… id)");
        var apiKeys = context.Get<ApiKeyService>();
        var key = await apiKeys.FindAsync(id, ct) ?? throw new CommandFailedException($"There is no API key '{id}'. See `api-keys list`.", ProblemCatalog.NotFound);
        var revoked = await apiKeys.RevokeAsync(key, ct);
        return await context.ResultAsync(ApiKeyResponse.From(revoked), $"Revoked API key {revoked.Id} '{revoked.Name}'.");
    }
}
