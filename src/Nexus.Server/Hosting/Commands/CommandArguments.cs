using System.Globalization;

namespace Nexus.Server.Hosting.Commands;

/// <summary>
/// The arguments after a command's name: positionals, <c>--option VALUE</c> / <c>--option=VALUE</c> (repeatable) and
/// flags. The host's own options (<c>--urls</c>, <c>--environment</c>, <c>--contentRoot</c>, configuration keys such as
/// <c>--Nexus:DataDirectory=…</c>) are accepted anywhere and left to the host.
/// </summary>
internal sealed class CommandArguments
{
    /// <summary>Options the host reads (with a value); every command accepts them.</summary>
    private static readonly string[] HostOptions = ["urls", "environment", "contentRoot", "applicationName"];

    public static readonly string[] HelpFlags = ["--help", "-h", "-?", "/?"];

    private readonly Dictionary<string, List<string>> options = new(StringComparer.Ordinal);
    private readonly HashSet<string> flags = new(StringComparer.Ordinal);
    private readonly List<string> positionals = [];

    public IReadOnlyList<string> Positionals => positionals;

    public bool Json => flags.Contains("json");

    /// <summary>
    /// Whether <paramref name="name"/> (without dashes) is the host's: --urls and the like, a configuration key with ':'
    /// (--Nexus:DataDirectory) or a setting's own name (--BASE_URL). The host gets it, commands ignore it.
    /// </summary>
    public static bool IsHostOption(string name) =>
        HostOptions.Contains(name, StringComparer.OrdinalIgnoreCase) || name.Contains(':', StringComparison.Ordinal)
        || (name.Length > 0 && char.IsAsciiLetterUpper(name[0]) && name.All(c => char.IsAsciiLetterUpper(c) || char.IsAsciiDigit(c) || c == '_'));

    /// <summary>
    /// <paramref name="args"/> with host options written before the command word moved after the command
    /// (<c>--environment Production migrate</c> is <c>migrate --environment Production</c>): the command is found by its
    /// leading words, and a migrate job written the first way otherwise started the server and never finished. Host
    /// options are accepted anywhere after the command, so nothing else changes.
    /// </summary>
    public static string[] CommandFirst(string[] args)
    {
        var i = 0;
        while (i < args.Length && args[i].StartsWith("--", StringComparison.Ordinal) && IsHostOption(Split(args[i][2..]).Name))
        {
            i += Split(args[i][2..]).Value is null && i + 1 < args.Length && !args[i + 1].StartsWith('-') ? 2 : 1;
        }

        return i == 0 || i == args.Length || args[i].StartsWith('-') ? args : [.. args[i..], .. args[..i]];
    }

    /// <summary>
    /// The arguments the host's configuration reads. For the server, all of them; for a command, the host's options and
    /// configuration keys but none of the command's, and console logs go to standard error (standard output is the result's).
    /// </summary>
    public static string[] ForHost(string[] args)
    {
        args = CommandFirst(args);
        if (args.TakeWhile(a => !a.StartsWith('-')).FirstOrDefault() is not { } command || command == "serve")
        {
            // The server reads every argument, as it always has.
            return args;
        }

        var kept = new List<string> { "--Logging:Console:LogToStandardErrorThreshold=Trace" };

        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                continue;
            }

            var (name, value) = Split(args[i][2..]);
            if (!IsHostOption(name))
            {
                continue;
            }

            kept.Add(args[i]);
            if (value is null && i + 1 < args.Length)
            {
                kept.Add(args[++i]);
            }
        }

        return [.. kept];
    }

    /// <summary>Parses <paramref name="args"/> (what follows the command's name) against what <paramref name="command"/> declares.</summary>
    public static CommandArguments Parse(INexusCommand command, IReadOnlyList<string> args)
    {
        var parsed = new CommandArguments();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (HelpFlags.Contains(arg, StringComparer.OrdinalIgnoreCase))
            {
                parsed.flags.Add("help");
                continue;
            }

            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg == "--")
            {
                if (arg.StartsWith('-') && arg.Length > 1)
                {
                    throw new CommandUsageException($"Unknown option '{arg}'.");
                }

                parsed.positionals.Add(arg);
                continue;
            }

            var (name, value) = Split(arg[2..]);
            if (name is "json" || command.Flags.Contains(name))
            {
                if (value is not null)
                {
                    throw new CommandUsageException($"--{name} takes no value.");
                }

                parsed.flags.Add(name);
            }
            else if (command.Options.Contains(name) || IsHostOption(name))
            {
                if (value is null)
                {
                    if (i + 1 >= args.Count)
                    {
                        throw new CommandUsageException($"--{name} needs a value.");
                    }

                    value = args[++i];
                }

                if (!IsHostOption(name))
                {
                    parsed.Add(name, value);
                }
            }
            else
            {
                throw new CommandUsageException($"Unknown option '--{name}'.");
            }
        }

        if (parsed.positionals.Count > command.MaxArguments)
        {
            throw new CommandUsageException(command.MaxArguments == 0
                ? $"'{command.Name}' takes no arguments, but got '{parsed.positionals[0]}'."
                : $"Too many arguments: '{string.Join(' ', parsed.positionals.Skip(command.MaxArguments))}'.");
        }

        return parsed;
    }

    public bool Help => flags.Contains("help");

    public bool Flag(string name) => flags.Contains(name);

    /// <summary>The last value of <c>--name</c>, or null.</summary>
    public string? Option(string name) => options.TryGetValue(name, out var values) ? values[^1] : null;

    /// <summary>Every value of a repeatable option, each also split at commas; null when the option is absent.</summary>
    public string[]? List(string name) => options.TryGetValue(name, out var values)
        ? values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray()
        : null;

    /// <summary>A required option.</summary>
    public string Required(string name) => Option(name) is { Length: > 0 } value ? value : throw new CommandUsageException($"--{name} is required.");

    public int? Int(string name) => Option(name) is not { } text ? null
        : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value
        : throw new CommandUsageException($"--{name} must be a whole number, not '{text}'.");

    /// <summary>The positional argument at <paramref name="index"/>, named <paramref name="what"/> in the error when it is missing.</summary>
    public string Argument(int index, string what) =>
        index < positionals.Count && positionals[index].Length > 0 ? positionals[index] : throw new CommandUsageException($"{what} is missing.");

    public string? OptionalArgument(int index) => index < positionals.Count ? positionals[index] : null;

    private void Add(string name, string value)
    {
        if (!options.TryGetValue(name, out var values))
        {
            options[name] = values = [];
        }

        values.Add(value);
    }

    private static (string Name, string? Value) Split(string option) =>
        option.IndexOf('=', StringComparison.Ordinal) is var at and >= 0 ? (option[..at], option[(at + 1)..]) : (option, null);
}
