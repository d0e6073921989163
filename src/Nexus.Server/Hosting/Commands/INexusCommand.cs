namespace Nexus.Server.Hosting.Commands;

/// <summary>
/// One subcommand of the server binary (<c>Nexus.Server users create …</c>). Each component registers its own with
/// <see cref="CommandRegistration.AddNexusCommand"/>; <see cref="NexusCommandLine"/> discovers them through DI, so
/// Hosting knows no component. A command holds no dependencies of its own: it resolves the services it calls (the
/// same ones the API and the dashboard call) from <see cref="CommandContext.Services"/> when it runs, so printing
/// help never builds a key ring or opens the database.
/// </summary>
internal interface INexusCommand
{
    /// <summary>The words that name the command: "migrate", "users create".</summary>
    string Name { get; }

    /// <summary>One line for the overview that <c>--help</c> prints.</summary>
    string Summary { get; }

    /// <summary>The command's own help: starts with "Usage: Nexus.Server NAME …".</summary>
    string Usage { get; }

    /// <summary>Options that take a value (<c>--name VALUE</c> or <c>--name=VALUE</c>), without the dashes; may repeat.</summary>
    IReadOnlyCollection<string> Options => [];

    /// <summary>Options without a value (<c>--force</c>), without the dashes. <c>--json</c> and <c>--help</c> always exist.</summary>
    IReadOnlyCollection<string> Flags => [];

    /// <summary>How many positional arguments the command takes at most.</summary>
    int MaxArguments => 0;

    /// <summary>Whether migrations and startup steps run first (most commands); not for backup and restore.</summary>
    bool NeedsDatabase => true;

    Task<int> RunAsync(CommandContext context, CancellationToken ct);
}

/// <summary>The exit codes of every command (documented in docs/cli.md).</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Usage = 2;
}

/// <summary>Bad command-line input: exit code 2, the message and a pointer to --help.</summary>
internal sealed class CommandUsageException(string message) : Exception(message);

/// <summary>
/// The operation could not be done for a reason the operator can act on: exit code 1 and the message. Its code comes
/// from a catalog, never a literal: the API's problem type where the API answers the same failure
/// (Hosting/ProblemCatalog.cs), else the command line's own (<see cref="CommandErrorCatalog"/>).
/// </summary>
internal sealed class CommandFailedException : Exception
{
    /// <summary>A failure of the command line's own (backup, restore, reading a file).</summary>
    public CommandFailedException(string message, CommandError error, IDictionary<string, string[]>? errors = null)
        : this(message, error.Code, errors)
    {
    }

    /// <summary>A failure the HTTP API answers with a problem: the same code as there (Hosting/ProblemCatalog.cs).</summary>
    public CommandFailedException(string message, ProblemType problem, IDictionary<string, string[]>? errors = null)
        : this(message, problem.Code, errors)
    {
    }

    private CommandFailedException(string message, string code, IDictionary<string, string[]>? errors)
        : base(message)
    {
        Code = code;
        Errors = errors;
    }

    public string Code { get; }

    public IDictionary<string, string[]>? Errors { get; }
}

internal static class CommandRegistration
{
    /// <summary>Registers a command that runs <paramref name="run"/>; see <see cref="INexusCommand"/> for the other parameters.</summary>
    public static IServiceCollection AddNexusCommand(this IServiceCollection services, string name, string summary, string usage,
        Func<CommandContext, CancellationToken, Task<int>> run, string[]? options = null, string[]? flags = null, int arguments = 0, bool needsDatabase = true) =>
        services.AddSingleton<INexusCommand>(new DelegateCommand(name, summary, usage.TrimEnd(), run, options ?? [], flags ?? [], arguments, needsDatabase));

    private sealed class DelegateCommand(string name, string summary, string usage, Func<CommandContext, CancellationToken, Task<int>> run,
        string[] options, string[] flags, int arguments, bool needsDatabase) : INexusCommand
    {
        public string Name => name;

        public string Summary => summary;

        public string Usage => usage;

        public IReadOnlyCollection<string> Options => options;

        public IReadOnlyCollection<string> Flags => flags;

        public int MaxArguments => arguments;

        public bool NeedsDatabase => needsDatabase;

        public Task<int> RunAsync(CommandContext context, CancellationToken ct) => run(context, ct);
    }
}
