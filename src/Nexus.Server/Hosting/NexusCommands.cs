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
          help [command]        print this text, or a command's

        Every command takes --help. Configuration comes from the environment (DATABASE_URL, ENCRYPTION_KEY,
        BASE_URL, API_KEY, ASPNETCORE_ENVIRONMENT, …; see the README), the same for the server and the commands.
        """;

    /// <summary>What each command's --help prints.</summary>
    private static readonly Dictionary<string, string> CommandUsage = new()
    {
        ["migrate"] = """
            Usage: Nexus.Server migrate
              Applies pending database migrations (PostgreSQL from DATABASE_URL, else SQLite in Nexus:DataDirectory),
              creates the first keys if there are none, and exits. The server does the same when it starts.
            """,
        ["keys reencrypt"] = """
            Usage: Nexus.Server keys reencrypt
              Re-encrypts every stored secret under ENCRYPTION_KEY. Run it after a rotation, with the old key(s) in
              PREVIOUS_ENCRYPTION_KEYS (comma-separated); afterwards the old keys can be removed.
            """,
        ["keys rotate-signing"] = """
            Usage: Nexus.Server keys rotate-signing
              Starts signing tokens with new keys. The old keys stay published in the JWKS for
              Nexus:SigningKeyOverlapSeconds, so tokens they signed keep verifying.
            """,
        ["users promote"] = """
            Usage: Nexus.Server users promote EMAIL
              Makes the account with this email a system administrator (Site management in the dashboard).
            """,
        ["users demote"] = """
            Usage: Nexus.Server users demote EMAIL
              Withdraws the system administrator role from the account with this email.
            """,
    };

    private static readonly string[] HelpFlags = ["--help", "-h", "-?", "/?"];

    /// <summary>
    /// <c>--help</c> (or <c>-h</c>) anywhere, or <c>help [command]</c>: prints usage and returns the exit code, without
    /// building the server, reading configuration or touching the database. Null when the arguments ask for no help.
    /// </summary>
    public static int? TryHelp(string[] args)
    {
        var words = args.TakeWhile(a => !a.StartsWith('-')).ToList();
        var flagged = args.Any(a => HelpFlags.Contains(a, StringComparer.OrdinalIgnoreCase));
        if (words is ["help", .. var rest])
        {
            words = rest;
            flagged = true;
        }
        else if (words is ["users"] or ["keys"] && !flagged)
        {
            // A command group without its verb: say which verbs exist instead of "unknown command".
            Console.Error.WriteLine($"'{words[0]}' needs a command.\n{Usage}");
            return 2;
        }

        if (!flagged)
        {
            return null;
        }

        if (words.Count == 0)
        {
            Console.WriteLine(Usage);
            return 0;
        }

        var command = words.Count >= 2 && CommandUsage.ContainsKey($"{words[0]} {words[1]}") ? $"{words[0]} {words[1]}" : words[0];
        if (CommandUsage.TryGetValue(command, out var usage))
        {
            Console.WriteLine(usage);
            return 0;
        }

        if (words is ["users" or "keys"])
        {
            Console.WriteLine(string.Join("\n", CommandUsage.Where(c => c.Key.StartsWith(words[0] + " ", StringComparison.Ordinal)).Select(c => c.Value)));
            return 0;
        }

        Console.Error.WriteLine($"Unknown command '{string.Join(' ', words)}'.\n{Usage}");
        return 2;
    }

    /// <summary>
    /// Reads the configuration once, right after the app is built and before the request pipeline (which reads it
    /// too) is set up: invalid settings end the process with the list of what to fix and exit code 1.
    /// </summary>
    public static int? CheckConfiguration(WebApplication app)
    {
        try
        {
            _ = app.Services.GetRequiredService<IOptions<NexusOptions>>().Value;
            return null;
        }
        catch (OptionsValidationException e)
        {
            Console.Error.WriteLine("Nexus cannot start because its configuration is invalid:\n  - " + string.Join("\n  - ", e.Failures));
            return 1;
        }
    }

    public static async Task<int> RunNexusAsync(this WebApplication app, string[] args)
    {
        var command = string.Join(' ', args.TakeWhile(a => !a.StartsWith('-')));
        try
        {
            switch (command)
            {
                case "":
                    await InitializeAsync(app);
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
                default:
                    await Console.Error.WriteLineAsync($"Unknown command '{command}'.\n{Usage}");
                    return 2;
            }
        }
        catch (StartupException e)
        {
            await Console.Error.WriteLineAsync("Nexus cannot start: " + e.Message);
            return 1;
        }
        catch (IOException e) when (e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException
                                    || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
        {
            // Kestrel's bind failure: "Failed to bind to address http://127.0.0.1:8090: address already in use."
            await Console.Error.WriteLineAsync($"Nexus cannot start: {e.Message.TrimEnd('.')}. Stop the program using that port, or listen elsewhere with --urls http://localhost:PORT (or ASPNETCORE_URLS).");
            return 1;
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
