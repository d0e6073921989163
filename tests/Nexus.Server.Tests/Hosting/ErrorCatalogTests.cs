using System.Text;
using System.Text.RegularExpressions;
using Nexus.Server.Hosting;
using Nexus.Server.Hosting.Commands;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// Issue 13, item 4: every problem <c>code</c>, every OAuth <c>error</c> and every error code of the command line lives in
/// one catalog per vocabulary (src/Nexus.Server/Hosting/ProblemCatalog.cs, OAuthErrorCatalog.cs,
/// Commands/CommandErrorCatalog.cs) with its status (or exit code) and message; the code reads them from there, never as
/// a literal, and docs/errors.md lists each of them.
/// </summary>
public sealed partial class ErrorCatalogTests
{
    public const string DocumentPath = "docs/errors.md";

    private static readonly string[] CatalogFiles = ["ProblemCatalog.cs", "OAuthErrorCatalog.cs", "CommandErrorCatalog.cs"];

    /// <summary>The command line's error codes in another vocabulary, each with why it is not one.</summary>
    private static readonly Dictionary<string, string> OtherCommandVocabularies = new(StringComparer.Ordinal)
    {
        ["src/Nexus.Server/Providers/ProvidersCommands.cs: \"failed\""] = "the result of one provider of providers import (created, updated, skipped, failed)",
    };

    /// <summary>The same words in another vocabulary, each with why it is not a problem code or an OAuth error.</summary>
    private static readonly Dictionary<string, string> OtherVocabularies = new(StringComparer.Ordinal)
    {
        ["src/Nexus.Server/Observability/NexusMetrics.cs: \"unauthorized\""] = "the outcome label of the token-read metric",
        ["src/Nexus.Server/Observability/NexusMetrics.cs: \"not_found\""] = "the outcome label of the token-read metric",
        ["src/Nexus.Server/Connections/Refresh/RefreshClient.cs: \"internal_error\""] = "an error code providers send (Slack), read, never written",
        ["src/Nexus.Server/Connections/CallbackEndpoint.cs: \"invalid_callback\""] = "a connection's error (why it failed), stored and redirected to return_url",
        ["src/Nexus.Server/Connections/CallbackEndpoint.cs: \"provider_missing\""] = "a connection's error (why it failed)",
        ["src/Nexus.Server/Connections/ConnectionService.cs: \"provider_missing\""] = "a connection's error (why it failed)",
        ["src/Nexus.Server/Connections/Refresh/ConnectionRefresher.cs: \"provider_missing\""] = "a connection's error (why it failed)",
        ["src/Nexus.Server/Dashboard/ConnectionsPages.cs: \"invalid_client\""] = "an error code providers send (RFC 6749 §5.2) put in plain words, read, never written",
        ["src/Nexus.Server/Dashboard/ConnectionsPages.cs: \"unauthorized_client\""] = "an error code providers send (RFC 6749 §5.2) put in plain words, read, never written",
        ["src/Nexus.Server/Connections/Refresh/ConnectionRefresher.cs: \"invalid_client\""] = "an error code providers send (RFC 6749 §5.2): re-register the MCP client, read, never written",
        ["src/Nexus.Server/Connections/ProviderClient.cs: \"token_request_failed\""] = "a connection's error (why it failed): the provider's token endpoint refused",
        ["src/Nexus.Server/Connections/CallbackEndpoint.cs: \"token_request_failed\""] = "a connection's error (why it failed)",
        ["src/Nexus.Server/Connections/MachineGrants.cs: \"token_request_failed\""] = "a connection's error (why it failed)",
        ["src/Nexus.Server/Connections/Refresh/RefreshClient.cs: \"token_request_failed\""] = "a refresh attempt's error, stored as the connection's refresh_error",
    };

    [Fact]
    public void NoProblemCodeOrOAuthErrorIsWrittenAsALiteralOutsideItsCatalog()
    {
        var codes = ProblemCatalog.All.Select(p => p.Code).Concat(OAuthErrorCatalog.All.Select(e => e.Error)).ToHashSet(StringComparer.Ordinal);
        var quoted = new Regex($@"(?<![\w])\\?""({string.Join('|', codes.Select(Regex.Escape))})\\?""", RegexOptions.CultureInvariant);
        var found = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in SourceFiles())
        {
            var code = Comments().Replace(File.ReadAllText(file), m => m.Value.StartsWith('/') ? " " : m.Value);
            var relative = Path.GetRelativePath(Repository.Root, file);
            foreach (var literal in quoted.Matches(code).Select(m => $"{relative.Replace('\\', '/')}: {m.Value}"))
            {
                seen.Add(literal);
                if (!OtherVocabularies.ContainsKey(literal))
                {
                    found.Add(literal);
                }
            }

            if (!CatalogFiles.Contains(Path.GetFileName(file)) && EntryConstruction().Match(code) is { Success: true } construction)
            {
                found.Add($"{relative}: {construction.Value}");
            }
        }

        Assert.True(found.Count == 0,
            "Problem codes and OAuth errors come from Hosting/ProblemCatalog.cs and Hosting/OAuthErrorCatalog.cs "
            + $"(add an entry there, then run scripts/errors.sh):{Environment.NewLine}{string.Join(Environment.NewLine, found)}");
        var stale = OtherVocabularies.Keys.Where(k => !seen.Contains(k)).ToList();
        Assert.True(stale.Count == 0, $"Gone from the code, so remove from OtherVocabularies too: {string.Join(", ", stale)}");
    }

    /// <summary>
    /// The command line's codes: no command writes one as a literal (they come from CommandErrorCatalog, or from
    /// ProblemCatalog where the API answers the same failure), and no CommandFailedException is given a literal code.
    /// </summary>
    [Fact]
    public void NoCommandErrorCodeIsWrittenAsALiteralOutsideItsCatalog()
    {
        var codes = CommandErrorCatalog.All.Select(e => e.Code).ToList();
        var quoted = new Regex($@"(?<![\w])\\?""({string.Join('|', codes.Select(Regex.Escape))})\\?""", RegexOptions.CultureInvariant);
        var found = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in SourceFiles())
        {
            var code = Comments().Replace(File.ReadAllText(file), m => m.Value.StartsWith('/') ? " " : m.Value);
            var relative = Path.GetRelativePath(Repository.Root, file).Replace('\\', '/');
            foreach (var throwSite in LiteralCodeAtThrowSite().Matches(code).Cast<Match>())
            {
                found.Add($"{relative}: {throwSite.Value}");
            }

            // The command line's own files: the commands of each component and Hosting/Commands.
            if (!Path.GetFileName(file).EndsWith("Commands.cs", StringComparison.Ordinal) && !Path.GetFileName(file).EndsWith("Command.cs", StringComparison.Ordinal)
                && !relative.Contains("/Hosting/Commands/", StringComparison.Ordinal))
            {
                continue;
            }

            foreach (var literal in quoted.Matches(code).Select(m => $"{relative}: {m.Value}"))
            {
                seen.Add(literal);
                if (!OtherCommandVocabularies.ContainsKey(literal))
                {
                    found.Add(literal);
                }
            }
        }

        Assert.True(found.Count == 0,
            "The command line's error codes come from Hosting/Commands/CommandErrorCatalog.cs (or Hosting/ProblemCatalog.cs) "
            + $"(add an entry there, then run scripts/errors.sh):{Environment.NewLine}{string.Join(Environment.NewLine, found)}");
        var stale = OtherCommandVocabularies.Keys.Where(k => !seen.Contains(k)).ToList();
        Assert.True(stale.Count == 0, $"Gone from the code, so remove from OtherCommandVocabularies too: {string.Join(", ", stale)}");
    }

    [Fact]
    public void TheCommandLinesCodesAreSnakeCaseOnceAndNoneIsAlsoAProblemCode()
    {
        var codes = CommandErrorCatalog.All.Select(e => e.Code).ToList();
        Assert.Contains(CommandErrorCatalog.InvalidBackup, CommandErrorCatalog.All);
        Assert.Equal(typeof(CommandErrorCatalog).GetFields().Count(f => f.FieldType == typeof(CommandError)), codes.Count);
        Assert.Equal(codes.Count, codes.Distinct(StringComparer.Ordinal).Count());
        Assert.All(codes, c => Assert.Matches("^[a-z]+(_[a-z]+)*$", c));
        Assert.Empty(codes.Intersect(ProblemCatalog.All.Select(p => p.Code)));
        Assert.All(CommandErrorCatalog.All, e => Assert.True(e.ExitCode is ExitCodes.Failed or ExitCodes.Usage && e.Meaning.EndsWith('.'), e.Code));
    }

    [Fact]
    public void EachVocabularyHasEveryCodeOnceInSnakeCaseWithAStatusAndAMessage()
    {
        foreach (var codes in new[] { ProblemCatalog.All.Select(p => p.Code).ToList(), OAuthErrorCatalog.All.Select(e => e.Error).ToList() })
        {
            Assert.NotEmpty(codes);
            Assert.Equal(codes.Count, codes.Distinct(StringComparer.Ordinal).Count());
            Assert.All(codes, c => Assert.Matches("^[a-z]+(_[a-z]+)*$", c));
        }

        Assert.All(ProblemCatalog.All, p => Assert.True(p.Status is >= 400 and < 600 && (p.Title.EndsWith('.') || p.Title.EndsWith('?')), p.Code));
        Assert.All(OAuthErrorCatalog.All, e => Assert.True(e.Status is >= 400 and < 600 && e.Description.Length > 0 && e.Specification.Length > 0, e.Error));
    }

    [Fact]
    public void TheCatalogFindsTheEntriesTheCodeUses()
    {
        // The lists are read by reflection: an entry declared later than All would be missing from it.
        Assert.Contains(ProblemCatalog.ConnectionNotActive, ProblemCatalog.All);
        Assert.Contains(ProblemCatalog.AwsStsThrottled, ProblemCatalog.All);
        Assert.Contains(OAuthErrorCatalog.InsufficientScope, OAuthErrorCatalog.All);
        Assert.Equal(typeof(ProblemCatalog).GetFields().Count(f => f.FieldType == typeof(ProblemType)), ProblemCatalog.All.Count);
    }

    [Fact]
    public void EveryCatalogEntryIsDocumentedInDocsErrors()
    {
        var path = Repository.PathOf(DocumentPath);
        var text = Document();
        if (Environment.GetEnvironmentVariable("NEXUS_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(path, text);
        }

        Assert.True(File.Exists(path), $"{DocumentPath} is missing: run scripts/errors.sh");
        Assert.True(File.ReadAllText(path).ReplaceLineEndings("\n") == text,
            $"{DocumentPath} differs from the error catalogs: run scripts/errors.sh and commit {DocumentPath}.");
        Assert.Contains(DocumentPath, File.ReadAllText(Repository.PathOf("README.md")), StringComparison.Ordinal);
    }

    /// <summary>docs/errors.md, generated from the two catalogs.</summary>
    private static string Document()
    {
        var text = new StringBuilder();
        text.Append("""
            # Error codes

            Generated from `src/Nexus.Server/Hosting/ProblemCatalog.cs`, `src/Nexus.Server/Hosting/OAuthErrorCatalog.cs` and
            `src/Nexus.Server/Hosting/Commands/CommandErrorCatalog.cs` by `scripts/errors.sh`;
            `tests/Nexus.Server.Tests/Hosting/ErrorCatalogTests` fails when this file and the catalogs differ, and when the
            code writes a code or an error anywhere but in its catalog. The API reference
            (`/docs/api`, [openapi.json](openapi.json)) lists which of them each route answers with.

            ## Problem details (RFC 9457)

            Everywhere but the OAuth endpoints: `application/problem+json` with a stable `code`; `type` is
            `urn:nexus:problem:<code>`. The title below is the default; an endpoint may give a more precise one (which
            resource was not found). `detail` says what to change.

            | `code` | HTTP status | Title |
            |---|---|---|

            """.ReplaceLineEndings("\n"));
        foreach (var problem in ProblemCatalog.All)
        {
            text.Append($"| `{problem.Code}` | {problem.Status} | {problem.Title} |\n");
        }

        text.Append("""

            ## OAuth errors

            On the OAuth endpoints (`/oauth2/*`, `/nexus/oauth2/token`, `/api/v1/oauth/exchange`): the JSON body of RFC 6749
            §5.2, `{"error", "error_description"}`, or the `error` parameter of a redirect to the client (RFC 6749 §4.1.2.1).
            The status is the one of the JSON answer.

            | `error` | HTTP status | Meaning | Defined in |
            |---|---|---|---|

            """.ReplaceLineEndings("\n"));
        foreach (var error in OAuthErrorCatalog.All)
        {
            text.Append($"| `{error.Error}` | {error.Status} | {error.Description} | {error.Specification} |\n");
        }

        text.Append("""

            ## Command line

            The server binary's commands ([cli.md](cli.md)) with `--json`: `{"error":{"code","message","errors"}}` on
            standard output. Where the HTTP API answers the same failure, `code` is its problem code above
            (`validation_failed`, `not_found`, `user_exists`, `client_revoked`, …); the command line's own codes are these.

            | `code` | Exit code | Meaning |
            |---|---|---|

            """.ReplaceLineEndings("\n"));
        foreach (var error in CommandErrorCatalog.All)
        {
            text.Append($"| `{error.Code}` | {error.ExitCode} | {error.Meaning} |\n");
        }

        return text.ToString();
    }

    private static IEnumerable<string> SourceFiles() =>
        Directory.EnumerateFiles(Repository.PathOf("src", "Nexus.Server"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !CatalogFiles.Any(c => f.EndsWith(Path.Combine("Hosting", c), StringComparison.Ordinal) || f.EndsWith(Path.Combine("Hosting", "Commands", c), StringComparison.Ordinal)));

    /// <summary>Comments (replaced) and string literals (kept, matched first so that "//" inside one is no comment).</summary>
    [GeneratedRegex(@"""""""[\s\S]*?""""""|@""(?:[^""]|"""")*""|""(?:\\.|[^""\\\n])*""|'(?:\\.|[^'\\\n])+'|//[^\n]*|/\*[\s\S]*?\*/")]
    private static partial Regex Comments();

    [GeneratedRegex(@"new\s+(ProblemType|OAuthError|CommandError)\s*\(")]
    private static partial Regex EntryConstruction();

    /// <summary>A bare snake_case string given to a CommandFailedException (or a command's error record) as an argument.</summary>
    [GeneratedRegex(@"(CommandFailedException|ImportError)\s*\([^;]*?,\s*""[a-z]+(_[a-z]+)*""\s*[,)]")]
    private static partial Regex LiteralCodeAtThrowSite();
}
