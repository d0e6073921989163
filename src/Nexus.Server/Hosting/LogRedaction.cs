using System.Collections;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Nexus.Server.Hosting;

/// <summary>
/// Keeps secrets that travel in URLs out of every log line: authorization codes, <c>state</c>, tokens, API keys,
/// client secrets and passwords in a query string (or a form-encoded text) are replaced by <c>[redacted]</c>.
/// ASP.NET Core logs the URLs it redirects to (<c>?code=…&amp;state=…</c> for an OAuth client) and the request
/// lines it serves; HttpClientFactory logs the URLs Nexus calls. RFC 9700 §4.2.4: codes must not leak through logs.
/// </summary>
internal static partial class LogRedaction
{
    public const string Redacted = "[redacted]";

    // A parameter name after ?, & or ; (and the percent-encoded forms, for a URL nested inside another URL's query),
    // then its value up to the next separator. Names are matched whole: "scope" or "code_challenge" stay visible.
    [GeneratedRegex(
        @"(?<sep>[?&;]|%3[Ff]|%26)(?<name>code|state|access_token|refresh_token|id_token|id_token_hint|token|client_secret|client_assertion|assertion|subject_token|actor_token|code_verifier|password|passwd|pwd|secret|api_key|apikey|api-key|x-api-key|key|auth|authorization|sig|signature|session_token|x-amz-signature|x-amz-credential|x-amz-security-token)(?<eq>=|%3[Dd])(?<value>(?:[^&;#\s""'<>%]|%(?!26|3[Ff]|3[Dd])[0-9A-Fa-f]{2})*)",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SensitiveParameter();

    /// <summary>The text with every sensitive parameter's value replaced; the same instance when there was none.</summary>
    public static string Redact(string text)
    {
        // Every match holds "=" or a percent-encoded one ("%3D"/"%3d"): a text with neither '=' nor '%' (one vectorised
        // pass) is returned as it is, and so is one whose only '%' escapes are not "%3…". This runs for every log line's
        // values and every string attribute of every span, most of which are plain paths and names.
        var span = text.AsSpan();
        if (span.Length < 4 || span.IndexOfAny('=', '%') < 0 || (!span.Contains('=') && !span.Contains("%3", StringComparison.Ordinal)))
        {
            return text;
        }

        return SensitiveParameter().Replace(text, static m => m.Groups["value"].Length == 0 ? m.Value : $"{m.Groups["sep"].Value}{m.Groups["name"].Value}{m.Groups["eq"].Value}{Redacted}");
    }

    /// <summary>A state value made safe to log, or null when it holds nothing to redact.</summary>
    internal static object? RedactValue(object? value) => value switch
    {
        string s => Redact(s) is var r && !ReferenceEquals(r, s) ? r : null,
        Uri u => Redact(u.OriginalString) is var r && !ReferenceEquals(r, u.OriginalString) ? r : null,
        QueryString q when q.HasValue => Redact(q.Value!) is var r && !ReferenceEquals(r, q.Value) ? r : null,
        _ => null,
    };

    /// <summary>Every logger Nexus (and ASP.NET Core, HttpClientFactory, Kestrel) creates goes through the redactor.</summary>
    public static IServiceCollection AddLogRedaction(this IServiceCollection services)
    {
        services.AddNexusRedaction();
        services.Replace(ServiceDescriptor.Singleton<ILoggerFactory>(sp => new RedactingLoggerFactory(new LoggerFactory(
            sp.GetServices<ILoggerProvider>(),
            sp.GetRequiredService<IOptionsMonitor<LoggerFilterOptions>>(),
            sp.GetService<IOptions<LoggerFactoryOptions>>(),
            sp.GetService<IExternalScopeProvider>()),
            sp.GetRequiredService<Microsoft.Extensions.Compliance.Redaction.IRedactorProvider>().GetRedactor(NexusTaxonomy.Secret),
            [.. sp.GetServices<ILogReclassification>()])));
        return services;
    }
}

internal sealed class RedactingLoggerFactory(ILoggerFactory inner, Microsoft.Extensions.Compliance.Redaction.Redactor? secrets = null,
    IReadOnlyList<ILogReclassification>? reclassifications = null) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName)
    {
        var applying = reclassifications?.Where(r => categoryName.StartsWith(r.CategoryPrefix, StringComparison.Ordinal)).ToArray();
        return new RedactingLogger(inner.CreateLogger(categoryName), secrets, applying is { Length: > 0 } ? applying : null);
    }

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    public void Dispose() => inner.Dispose();
}

/// <summary>
/// Passes a log call through unchanged when neither its message nor its values carry a sensitive URL parameter
/// (the common case costs one extra formatting of a line that is written anyway); otherwise logs a copy whose
/// message and values are redacted, keeping the original template so structured sinks still group it.
/// </summary>
internal sealed class RedactingLogger(ILogger inner, Microsoft.Extensions.Compliance.Redaction.Redactor? secrets = null,
    ILogReclassification[]? reclassifications = null) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull
    {
        var redacted = RedactedState.TryCreate(state, null, secrets, out var copy) ? copy : null;
        return redacted is null ? inner.BeginScope(state) : inner.BeginScope(redacted);
    }

    public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        (LogLevel Level, string Note)? reclassified = null;
        if (reclassifications is not null)
        {
            foreach (var reclassification in reclassifications)
            {
                if ((reclassified = reclassification.Reclassify(logLevel, exception)) is not null)
                {
                    break;
                }
            }
        }

        if (!inner.IsEnabled(reclassified?.Level ?? logLevel))
        {
            return;
        }

        if (reclassified is { } instead)
        {
            logLevel = instead.Level;
            var note = string.IsNullOrEmpty(instead.Note) ? "" : " " + instead.Note;
            var noted = formatter(state, null) + note;
            var values = WithNotedTemplate(state as IReadOnlyList<KeyValuePair<string, object?>> ?? [], note);
            if (!RedactedState.TryCreate(values, noted, secrets, out var redacted))
            {
                redacted = new RedactedState(values, noted);
            }

            inner.Log(logLevel, eventId, redacted, null, static (s, _) => s.Message);
            return;
        }

        var message = formatter(state, exception);
        if (RedactedState.TryCreate(state, message, secrets, out var copy))
        {
            inner.Log(logLevel, eventId, copy, exception, static (s, _) => s.Message);
        }
        else
        {
            inner.Log(logLevel, eventId, state, exception, formatter);
        }
    }

    /// <summary>
    /// The values with the note after the message template too: a structured sink (the OTLP log exporter) takes an
    /// entry's body from <c>{OriginalFormat}</c>, not from the formatted message, and would say the SDK's "threw an
    /// unhandled exception" at Debug without saying why. A constant suffix, so entries still group by template.
    /// </summary>
    private static IReadOnlyList<KeyValuePair<string, object?>> WithNotedTemplate(IReadOnlyList<KeyValuePair<string, object?>> values, string note)
    {
        for (var i = 0; note.Length > 0 && i < values.Count; i++)
        {
            if (values[i] is { Key: "{OriginalFormat}", Value: string template })
            {
                var noted = values.ToList();
                noted[i] = new(values[i].Key, template + note);
                return noted;
            }
        }

        return values;
    }
}

internal sealed class RedactedState(IReadOnlyList<KeyValuePair<string, object?>> values, string message) : IReadOnlyList<KeyValuePair<string, object?>>
{
    public string Message { get; } = message;

    public KeyValuePair<string, object?> this[int index] => values[index];

    public int Count => values.Count;

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => values.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => Message;

    /// <summary>A redacted copy of <paramref name="state"/> when its message (or, for a scope, its text) or a value needs it.</summary>
    public static bool TryCreate<TState>(TState state, string? message, Microsoft.Extensions.Compliance.Redaction.Redactor? secrets, out RedactedState copy)
    {
        copy = null!;
        var text = message ?? state?.ToString() ?? "";
        var redactedText = LogRedaction.Redact(text);
        List<KeyValuePair<string, object?>>? pairs = null;
        if (state is IReadOnlyList<KeyValuePair<string, object?>> list)
        {
            for (var i = 0; i < list.Count; i++)
            {
                var (key, value) = list[i];
                if (secrets is not null && value is not null && NexusTaxonomy.Classify(key) is not null
                    && value.ToString() is { Length: > 0 } secret && secrets.Redact(secret) is var marked)
                {
                    // Classified by its name as a secret (NexusTaxonomy): the value goes, from the values and the message.
                    pairs ??= [.. list];
                    pairs[i] = new(key, marked);
                    redactedText = redactedText.Replace(secret, marked, StringComparison.Ordinal);
                }
                else if (LogRedaction.RedactValue(value) is { } safe)
                {
                    pairs ??= [.. list];
                    pairs[i] = new(key, safe);
                }
            }
        }

        if (pairs is null && ReferenceEquals(redactedText, text))
        {
            return false;
        }

        copy = new RedactedState(pairs ?? (state as IReadOnlyList<KeyValuePair<string, object?>>) ?? [], redactedText);
        return true;
    }
}
