using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// Every log line written through the server's own JSON console formatter (the one Logging:Console:FormatterName=json
/// selects, with its configured options and scopes), captured instead of printed. <see cref="All"/> holds the lines as
/// written and, after them, every string in them unescaped, so that a secret the JSON writer escaped (a + or / of
/// base64) is still found.
/// </summary>
public sealed class JsonFormattedLogs(ConsoleFormatter formatter) : ILoggerProvider, ISupportExternalScope
{
    private readonly ConsoleFormatter json = formatter;

    private readonly ConcurrentQueue<string> lines = new();
    private IExternalScopeProvider? scopes;

    public string All
    {
        get
        {
            var raw = lines.ToArray();
            var decoded = raw.SelectMany(l => l.Split('\n', StringSplitOptions.RemoveEmptyEntries)).SelectMany(Strings);
            return string.Join('\n', raw) + "\n" + string.Join('\n', decoded);
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => scopes = scopeProvider;

    public void Dispose()
    {
    }

    private static IEnumerable<string> Strings(string line)
    {
        JsonElement root;
        try
        {
            root = JsonDocument.Parse(line).RootElement.Clone();
        }
        catch (JsonException)
        {
            return [line];
        }

        var found = new List<string>();
        void Walk(JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.String:
                    found.Add(e.GetString()!);
                    break;
                case JsonValueKind.Object:
                    foreach (var p in e.EnumerateObject())
                    {
                        found.Add(p.Name);
                        Walk(p.Value);
                    }

                    break;
                case JsonValueKind.Array:
                    foreach (var item in e.EnumerateArray())
                    {
                        Walk(item);
                    }

                    break;
            }
        }

        Walk(root);
        return found;
    }

    private sealed class Logger(JsonFormattedLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null; // the factory keeps scopes in the external scope provider

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            using var writer = new StringWriter();
            owner.json.Write(new LogEntry<TState>(logLevel, category, eventId, state, exception, formatter), owner.scopes, writer);
            owner.lines.Enqueue(writer.ToString());
        }
    }
}
