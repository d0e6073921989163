namespace Nexus.Server.Hosting;

/// <summary>
/// A library's log entry whose level says failure where the component that uses the library knows it is a normal
/// outcome (the MCP SDK logs a tool's URL elicitation as "threw an unhandled exception", at Error with the stack).
/// A logging filter cannot tell such an entry from a real failure: filters see the category and the level, not the
/// exception. A component registers one of these; every logger <see cref="RedactingLoggerFactory"/> creates for a
/// category under <see cref="CategoryPrefix"/> asks it before the entry is written. Implementations are resolved while
/// the logger factory is built: they must not depend on logging (an <c>ILogger</c> would be a dependency cycle).
/// </summary>
internal interface ILogReclassification
{
    /// <summary>The categories it looks at: those that start with this.</summary>
    string CategoryPrefix { get; }

    /// <summary>
    /// The level to write the entry at instead, without its exception, and a sentence to add to its message; null to
    /// write it as it is.
    /// </summary>
    (LogLevel Level, string Note)? Reclassify(LogLevel level, Exception? exception);
}
