using Microsoft.Extensions.Options;
using Nexus.Server.AuthorizationServer.Signing;
using Nexus.Server.Vault;

namespace Nexus.Server.Hosting;

/// <summary>
/// Maintenance commands share the server's configuration, so they always act on the same database and keys:
/// <c>Nexus.Server migrate</c>, <c>Nexus.Server keys reencrypt</c>, <c>Nexus.Server keys rotate-signing</c>,
/// <c>Nexus.Server users promote EMAIL</c>, <c>Nexus.Server users demote EMAIL</c>.
/// Without a command, the server runs.
/// </summary>
internal static class NexusCommands
{
    private const string Usage = """
        Usage: Nexus.Server [command] [--urls http://host:port]
          (no command)          run the server
          migrate               apply pending database migrations and exit
          keys reencrypt        re-encrypt every stored secret under ENCRYPTION_KEY (after a key rotation)
          keys rotate-signing   start signing tokens with new keys; old keys stay published for the overlap window
          users promote EMAIL   make the account with this email a system administrator
          users demote EMAIL    withdraw the system administrator role from this account
        """;

    public static async Task<int> RunNexusAsync(this WebApplication app, string[] args)
    {
        var command = string.Join(' ', args.TakeWhile(a => !a.StartsWith('-')));
        try
        {
            switch (command)
            {
                case "":
                    await app.RunAsync();
                    return 0;
                case "migrate":
                    await InitializeAsync(app);
                    Console.WriteLine("Database is up to date.");
                    return 0;
                case "keys reencrypt":
                    await InitializeAsync(app);
                    var count = await app.Services.GetRequiredService<ReEncryptor>().ReEncryptAllAsync();
                    Console.WriteLine($"Re-encrypted {count} value(s) under key {app.Services.GetRequiredService<KeyRing>().ActiveKeyId:x8}.");
                    return 0;
                case "keys rotate-signing":
                    await InitializeAsync(app);
                    var keys = await app.Services.GetRequiredService<SigningKeyStore>().RotateAsync();
                    Console.WriteLine($"Now signing with {string.Join(", ", keys.Select(k => $"{k.Alg} {k.Kid}"))}. Running instances pick the keys up within Nexus:SigningKeyRefreshSeconds.");
                    return 0;
                case var _ when command.Split(' ') is ["users", ("promote" or "demote") and var verb, var email]:
                    await InitializeAsync(app);
                    return await SetAdministratorAsync(app, email, verb == "promote");
                case "help":
                    Console.WriteLine(Usage);
                    return 0;
                default:
                    await Console.Error.WriteLineAsync($"Unknown command '{command}'.\n{Usage}");
                    return 2;
            }
        }
        catch (OptionsValidationException e)
        {
            await Console.Error.WriteLineAsync("Nexus cannot start because its configuration is invalid:\n  - " + string.Join("\n  - ", e.Failures));
            return 1;
        }
        catch (InvalidOperationException e) when (e.Message.Contains("ENCRYPTION_KEY", StringComparison.Ordinal))
        {
            await Console.Error.WriteLineAsync("Nexus cannot start: " + e.Message);
            return 1;
        }
        catch (System.Security.Cryptography.CryptographicException e)
        {
            // Stored secrets that no configured key opens: the message names the missing key id.
            await Console.Error.WriteLineAsync("Nexus cannot start: a stored secret could not be decrypted. " + e.Message);
            return 1;
        }
    }

    private static async Task<int> SetAdministratorAsync(WebApplication app, string email, bool admin)
    {
        using var scope = app.Services.CreateScope();
        var users = scope.ServiceProvider.GetRequiredService<Microsoft.AspNetCore.Identity.UserManager<Accounts.NexusUser>>();
        if (await users.FindByEmailAsync(email) is not { } user)
        {
            await Console.Error.WriteLineAsync($"No account has the email '{email}'. Create it first (sign up, or POST /v1/admin/users).");
            return 1;
        }

        await scope.ServiceProvider.GetRequiredService<Accounts.Administrators>().SetAsync(user.Id, admin, "the command line", CancellationToken.None);
        Console.WriteLine(admin ? $"{user.Email} is a system administrator." : $"{user.Email} is no longer a system administrator.");
        return 0;
    }

    private static Task InitializeAsync(WebApplication app)
    {
        _ = app.Services.GetRequiredService<IOptions<NexusOptions>>().Value;
        return app.Services.GetRequiredService<NexusBootstrapper>().InitializeAsync(CancellationToken.None);
    }
}
