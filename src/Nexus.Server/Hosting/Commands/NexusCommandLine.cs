using System.Text.Json;
using Microsoft.Extensions.Options;

namespace Nexus.Server.Hosting.Commands;

/// <summary>
/// The server binary's command line: <c>Nexus.Server [command] [arguments] [--json]</c>. Without a command (or with
/// <c>serve</c>) the server runs; otherwise the command the arguments name runs against the same configuration,
/// database and keys as the server, and the process exits with 0 (done), 1 (the operation failed) or 2 (usage error).
/// The commands are the <see cref="INexusCommand"/>s the components registered; Hosting knows none of them.
/// </summary>
internal static class NexusCommandLine
{
    private const string Footer = """

        Every command takes --help, and --json for machine-readable output (the API's JSON shape). Exit codes: 0 done,
        1 the operation failed, 2 usage error. Configuration comes from the environment (DATABASE_URL, ENCRYPTION_KEY,
        BASE_URL, API_KEY, ASPNETCORE_ENVIRONMENT, …; see the README), the same for the server and the commands.
        """;

    private const string ServeUsage = """
        Usage: Nexus.Server [serve] [--urls http://host:port]
          Runs the server (the default when no command is given): applies pending migrations, creates the first keys,
          and listens on --urls, ASPNETCORE_URLS or http://localhost:8090.
        """;

    /// <summary>
    /// Help, and bad command lines, answered before the configuration is checked: <c>--help</c> anywhere, <c>help
    /// [command]</c>, an unknown command or option. Prints, and returns the exit code, without reading the configuration
    /// or touching the database; null when there is a command (or the server) to run.
    /// </summary>
    public static int? TryHelp(IServiceProvider services, string[] args, TextWriter output, TextWriter error)
    {
        var commands = services.GetServices<INexusCommand>().ToList();
        args = CommandArguments.CommandFirst(args);
        var words = args.TakeWhile(a => !a.StartsWith('-')).ToList();
        var help = args.Any(a => CommandArguments.HelpFlags.Contains(a, StringComparer.OrdinalIgnoreCase));
        if (words is ["help", .. var rest])
        {
            words = rest;
            help = true;
        }

        if (words.Count == 0 || words is ["serve"])
        {
            if (!help)
            {
                return null;
            }

            output.WriteLine(words.Count == 0 ? Overview(commands) : ServeUsage);
            return ExitCodes.Ok;
        }

        var command = Find(commands, words);
        if (command is null)
        {
            var group = commands.Where(c => c.Name.StartsWith(words[0] + " ", StringComparison.Ordinal)).ToList();
            if (group.Count > 0 && words.Count == 1)
            {
                if (help)
                {
                    output.WriteLine(string.Join("\n\n", group.Select(c => c.Usage)));
                    return ExitCodes.Ok;
                }

                // A command group without its verb: say which verbs exist instead of "unknown command".
                error.WriteLine($"'{words[0]}' needs a command: {string.Join(", ", group.Select(c => c.Name))}.\n\n{Overview(commands)}");
                return ExitCodes.Usage;
            }

            error.WriteLine($"Unknown command '{string.Join(' ', words)}'.\n\n{Overview(commands)}");
            return ExitCodes.Usage;
        }

        if (help)
        {
            output.WriteLine(command.Usage);
            return ExitCodes.Ok;
        }

        try
        {
            _ = CommandArguments.Parse(command, args[command.Name.Split(' ').Length..]);
            return null;
        }
        catch (CommandUsageException e)
        {
            return UsageError(command, e, args.Contains("--json"), output, error);
        }
    }

    /// <summary>Runs the server (no command, or <c>serve</c>) or the command; explains a failed start in one line.</summary>
    public static async Task<int> RunNexusAsync(this WebApplication app, string[] args)
    {
        args = CommandArguments.CommandFirst(args);
        var words = args.TakeWhile(a => !a.StartsWith('-')).ToList();
        if (words.Count == 0 || words is ["serve"])
        {
            return await StartupErrors.ExplainAsync(Console.Error, async () =>
            {
                await InitializeAsync(app.Services, StartupPurpose.Server);
                await app.RunAsync();
                return ExitCodes.Ok;
            });
        }

        // Standard output carries the command's result alone (one JSON document with --json): whatever else writes to
        // the console while it runs (logs) goes to standard error.
        var output = Console.Out;
        Console.SetOut(Console.Error);
        try
        {
            return await RunAsync(app.Services, args, output, Console.Error, !Console.IsErrorRedirected, CancellationToken.None);
        }
        finally
        {
            Console.SetOut(output);
        }
    }

    /// <summary>
    /// Runs one command against <paramref name="services"/> (the server's container): the binary's entry point, and
    /// the tests' in-process one.
    /// </summary>
    public static async Task<int> RunAsync(IServiceProvider services, string[] args, TextWriter output, TextWriter error, bool terminal, CancellationToken ct)
    {
        if (TryHelp(services, args, output, error) is { } helped)
        {
            return helped;
        }

        args = CommandArguments.CommandFirst(args);
        var command = Find(services.GetServices<INexusCommand>(), args.TakeWhile(a => !a.StartsWith('-')).ToList())!;
        var arguments = CommandArguments.Parse(command, args[command.Name.Split(' ').Length..]);
        return await StartupErrors.ExplainAsync(error, async () =>
        {
            if (command.NeedsDatabase)
            {
                await InitializeAsync(services, StartupPurpose.Command);
            }

            await using var scope = services.CreateAsyncScope();
            var context = new CommandContext(scope.ServiceProvider, arguments, output, error, terminal);
            try
            {
                return await command.RunAsync(context, ct);
            }
            catch (CommandUsageException e)
            {
                return UsageError(command, e, arguments.Json, output, error);
            }
            catch (CommandFailedException e)
            {
                return Fail(context, e.Code, e.Message, e.Errors);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or FormatException)
            {
                return Fail(context, CommandErrorCatalog.Failed.Code, e.Message, null);
            }
            catch (Exception e) when (DatabaseFailure.Refused(e) is { } refused)
            {
                // A statement the database refused (a constraint, a lock timeout, an outage), thrown as is or wrapped by
                // a library: exit code 1 and the database's message, as docs/cli.md promises for every failure, never a
                // stack trace.
                return Fail(context, CommandErrorCatalog.Failed.Code, "The database refused the operation: " + refused.Message.TrimEnd('.') + ".", null);
            }
            catch (Exception e) when (DatabaseFailure.Unreadable(e) is { } unreadable)
            {
                // A stored value Dapper could not map (System.Data.DataException): the same, one line and exit code 1.
                return Fail(context, CommandErrorCatalog.Failed.Code, unreadable, null);
            }
        }, arguments.Json ? output : null);
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
            Console.Error.WriteLine(StartupErrors.Invalid(e));
            return ExitCodes.Failed;
        }
    }

    private static INexusCommand? Find(IEnumerable<INexusCommand> commands, List<string> words) =>
        commands.Where(c => c.Name.Split(' ') is var name && name.Length <= words.Count && name.SequenceEqual(words.Take(name.Length), StringComparer.Ordinal))
            .MaxBy(c => c.Name.Length);

    private static int Fail(CommandContext context, string code, string message, IDictionary<string, string[]>? errors)
    {
        if (context.Json)
        {
            context.Output.WriteLine(JsonSerializer.Serialize(new { error = new { code, message, errors } }, context.JsonOptions));
        }
        else
        {
            context.Error.WriteLine(message);
        }

        return ExitCodes.Failed;
    }

    private static int UsageError(INexusCommand command, CommandUsageException e, bool json, TextWriter output, TextWriter error)
    {
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(new { error = new { code = CommandErrorCatalog.Usage.Code, message = e.Message } }));
        }
        else
        {
            error.WriteLine($"{e.Message}\n\n{command.Usage}");
        }

        return ExitCodes.Usage;
    }

    private static string Overview(IEnumerable<INexusCommand> commands)
    {
        var rows = new List<(string Name, string Summary)> { ("(no command), serve", "run the server") };
        rows.AddRange(commands.OrderBy(c => c.Name, StringComparer.Ordinal).Select(c => (c.Name, c.Summary)));
        rows.Add(("help [command]", "print this text, or a command's"));
        var width = rows.Max(r => r.Name.Length) + 2;
        return "Usage: Nexus.Server [command] [arguments] [--json] [--urls http://host:port]\n"
            + string.Join("\n", rows.Select(r => "  " + r.Name.PadRight(width) + r.Summary)) + "\n" + Footer.TrimEnd();
    }

    private static Task InitializeAsync(IServiceProvider services, StartupPurpose purpose)
    {
        _ = services.GetRequiredService<IOptions<NexusOptions>>().Value;
        return services.GetRequiredService<NexusBootstrapper>().InitializeAsync(purpose, CancellationToken.None);
    }
}

/// <summary>Startup failures an operator can fix, each explained in one line with exit code 1 instead of a stack trace.</summary>
internal static class StartupErrors
{
    public static string Invalid(OptionsValidationException e) =>
        "Nexus cannot start because its configuration is invalid:\n  - " + string.Join("\n  - ", e.Failures);

    /// <summary>
    /// Runs <paramref name="run"/>; a failure an operator can fix is one line on <paramref name="error"/> and exit code 1.
    /// With <paramref name="json"/> (a command's --json), it is also {"error":{"code":"failed","message"}} there, as
    /// docs/cli.md promises for every failure.
    /// </summary>
    public static async Task<int> ExplainAsync(TextWriter error, Func<Task<int>> run, TextWriter? json = null)
    {
        string message;
        try
        {
            return await run();
        }
        catch (StartupException e)
        {
            message = "Nexus cannot start: " + e.Message;
        }
        catch (IOException e) when (e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException
                                    || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
        {
            // Kestrel's bind failure: "Failed to bind to address http://127.0.0.1:8090: address already in use."
            message = $"Nexus cannot start: {e.Message.TrimEnd('.')}. Stop the program using that port, or listen elsewhere with --urls http://localhost:PORT (or ASPNETCORE_URLS).";
        }
        catch (OptionsValidationException e)
        {
            message = Invalid(e);
        }
        catch (InvalidOperationException e) when (e.Message.Contains("ENCRYPTION_KEY", StringComparison.Ordinal))
        {
            message = "Nexus cannot start: " + e.Message;
        }
        catch (System.Security.Cryptography.CryptographicException e)
        {
            // Stored secrets that no configured key opens: the message names the missing key id.
            message = "Nexus cannot start: a stored secret could not be decrypted. " + e.Message;
        }
        catch (Exception e) when (DatabaseFailure.Refused(e) is { } refused)
        {
            // The database refused a statement of the startup steps (a migration's own failure is a StartupException
            // that names it): docs/cli.md and upgrading.md promise exit code 1 and one line, never a stack trace.
            message = "Nexus cannot start: the database refused a statement: " + refused.Message.TrimEnd('.') + ".";
        }
        catch (Exception e) when (DatabaseFailure.Unreadable(e) is { } unreadable)
        {
            message = "Nexus cannot start: " + unreadable;
        }

        await error.WriteLineAsync(message);
        if (json is not null)
        {
            await json.WriteLineAsync(JsonSerializer.Serialize(new { error = new { code = CommandErrorCatalog.Failed.Code, message } }));
        }

        return ExitCodes.Failed;
    }
}

/// <summary>
/// The database failures a command or a startup step can meet that are the operator's to look into, each said in one
/// line (exit code 1) instead of a stack trace.
/// </summary>
internal static partial class DatabaseFailure
{
    /// <summary>The database's own refusal (<see cref="System.Data.Common.DbException"/>), thrown as is or wrapped by a library; null for anything else.</summary>
    public static System.Data.Common.DbException? Refused(Exception e) =>
        e as System.Data.Common.DbException ?? e.InnerException as System.Data.Common.DbException;

    /// <summary>
    /// A stored value that does not fit the type Nexus reads it as: Dapper wraps the cast's failure in a
    /// <see cref="System.Data.DataException"/> ("Error parsing column 5 (created_at=soon - String)"). The message names
    /// the column but leaves its value out, which could be a secret; null for anything else.
    /// </summary>
    public static string? Unreadable(Exception e)
    {
        if (e is not System.Data.DataException)
        {
            return null;
        }

        var column = DapperColumn().Match(e.Message);
        var where = column.Success ? $" in column {column.Groups["name"].Value}" : "";
        return $"The database holds a value{where} that Nexus cannot read. Was it changed outside Nexus, or by a newer version of Nexus?";
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^Error parsing column \d+ \((?<name>[^=)]*)=")]
    private static partial System.Text.RegularExpressions.Regex DapperColumn();
}
