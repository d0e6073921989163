using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Nexus.Server.Hosting.Commands;

/// <summary>
/// What a running command has: its arguments, the services (a scope of the server's own container), and the ways to
/// answer. With <c>--json</c>, standard output carries exactly one JSON document in the API's shape (snake_case, times
/// in Unix seconds): the result, or <c>{"error":{"code","message","errors"}}</c>. Progress always goes to standard
/// error, so it never mixes with the result.
/// </summary>
internal sealed class CommandContext(IServiceProvider services, CommandArguments args, TextWriter output, TextWriter error, bool terminal)
{
    public IServiceProvider Services { get; } = services;

    public CommandArguments Args { get; } = args;

    public TextWriter Output { get; } = output;

    public TextWriter Error { get; } = error;

    public bool Json => Args.Json;

    public T Get<T>()
        where T : notnull => Services.GetRequiredService<T>();

    /// <summary>The serializer options of the HTTP API, so that a command's JSON has the same shape as the endpoint's.</summary>
    public JsonSerializerOptions JsonOptions => Services.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;

    /// <summary>Writes <paramref name="result"/> as JSON with --json, else <paramref name="text"/>; returns exit code 0.</summary>
    public async Task<int> ResultAsync(object result, string text)
    {
        await Output.WriteLineAsync(Json ? JsonSerializer.Serialize(result, JsonOptions) : text.TrimEnd());
        return ExitCodes.Ok;
    }

    /// <summary>
    /// <paramref name="result"/> (an API response record) with <paramref name="extra"/>'s members added, for the one
    /// value a command shows beyond the API's response (a generated password).
    /// </summary>
    public System.Text.Json.Nodes.JsonObject With(object result, object extra)
    {
        var merged = JsonSerializer.SerializeToNode(result, JsonOptions)!.AsObject();
        foreach (var (name, value) in JsonSerializer.SerializeToNode(extra, JsonOptions)!.AsObject().ToList())
        {
            merged[name] = value?.DeepClone();
        }

        return merged;
    }

    /// <summary>Writes <paramref name="result"/> as JSON with --json, else a table of <paramref name="rows"/>; returns 0.</summary>
    public Task<int> ListAsync<T>(object result, IReadOnlyCollection<T> rows, string empty, params (string Header, Func<T, string?> Cell)[] columns) =>
        ResultAsync(result, rows.Count == 0 ? empty : Table(rows, columns));

    /// <summary>Turns an API problem (validation errors, not found, conflict) into the command's failure, with the same code and messages.</summary>
    public static CommandFailedException Failure(IResult problem)
    {
        var (title, detail, code, errors) = problem switch
        {
            ProblemHttpResult p => (p.ProblemDetails.Title, p.ProblemDetails.Detail, p.ProblemDetails.Extensions.TryGetValue("code", out var c) ? c as string : null,
                p.ProblemDetails.Extensions.TryGetValue("errors", out var e) ? e as IDictionary<string, string[]> : null),
            _ => ("The operation failed.", null, null, null),
        };
        var message = errors is { Count: > 0 }
            ? string.Join("\n", errors.SelectMany(e => e.Value.Select(v => $"{e.Key}: {v}")))
            : string.Join(" ", new[] { title, detail }.Where(s => !string.IsNullOrEmpty(s)));
        // Every problem's code is a ProblemCatalog entry; an answer that is no problem is the command line's "failed".
        return ProblemCatalog.All.FirstOrDefault(p => p.Code == code) is { } known
            ? new CommandFailedException(message, known, errors)
            : new CommandFailedException(message, CommandErrorCatalog.Failed, errors);
    }

    /// <summary>Field errors of a service (the ones the API answers with 400 validation_failed) as the command's failure.</summary>
    public static CommandFailedException Invalid(IDictionary<string, string[]> errors) =>
        new(string.Join("\n", errors.SelectMany(e => e.Value.Select(v => $"{e.Key}: {v}"))), ProblemCatalog.ValidationFailed, errors);

    /// <summary>A progress display for <paramref name="total"/> steps: a bar on a terminal, plain lines otherwise.</summary>
    public CommandProgress Progress(string label, int total) => new(Error, label, total, terminal);

    /// <summary>Reads a file, or standard input for "-"; a clear failure when it cannot.</summary>
    public static async Task<string> ReadInputAsync(string path, CancellationToken ct)
    {
        try
        {
            return path == "-" ? await Console.In.ReadToEndAsync(ct) : await File.ReadAllTextAsync(path, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CommandFailedException($"Cannot read '{path}': {e.Message}", CommandErrorCatalog.UnreadableFile);
        }
    }

    private static string Table<T>(IEnumerable<T> rows, (string Header, Func<T, string?> Cell)[] columns)
    {
        var cells = rows.Select(r => columns.Select(c => c.Cell(r) ?? "").ToArray()).ToList();
        var widths = columns.Select((c, i) => Math.Max(c.Header.Length, cells.Count == 0 ? 0 : cells.Max(r => r[i].Length))).ToArray();
        var text = new StringBuilder();
        text.AppendLine(string.Join("  ", columns.Select((c, i) => c.Header.PadRight(widths[i]))).TrimEnd());
        foreach (var row in cells)
        {
            text.AppendLine(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        }

        return text.ToString();
    }
}

/// <summary>
/// Progress of a long operation on standard error: on a terminal a bar redrawn in place, otherwise one plain line per
/// step ("Re-encrypting: 3/7"), which reads well in a log.
/// </summary>
internal sealed class CommandProgress(TextWriter error, string label, int total, bool terminal) : IProgress<int>
{
    private const int Width = 30;
    private int last = -1;

    public void Report(int done)
    {
        done = Math.Clamp(done, 0, Math.Max(total, 0));
        if (done == last)
        {
            return;
        }

        last = done;
        if (!terminal)
        {
            error.WriteLine($"{label}: {done}/{total}");
            return;
        }

        var filled = total == 0 ? Width : done * Width / total;
        error.Write($"\r{label} [{new string('#', filled)}{new string('.', Width - filled)}] {done}/{total}");
        if (done >= total)
        {
            error.WriteLine();
        }
    }
}
