using System.Text.Json;
using System.Text.RegularExpressions;
using Nexus.Server.Hosting;
using Nexus.Server.Hosting.Commands;

namespace Nexus.Server.Providers;

/// <summary>
/// The providers' commands: <c>providers list|export|import</c>. An export is a JSON document of the registrations in
/// the request shape of POST /v1/providers, so an import registers them through the same validation. Client secrets
/// never leave in clear: an export names an environment variable instead (<c>"${NEXUS_PROVIDER_GITHUB_CLIENT_SECRET}"</c>)
/// that the import reads.
/// </summary>
internal static partial class ProvidersCommands
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static IServiceCollection AddProvidersCommands(this IServiceCollection services) => services
        .AddNexusCommand("providers list", "list the registered providers (never a secret)", """
            Usage: Nexus.Server providers list [--json]
              Lists the registered providers, as GET /v1/providers does (has_client_secret, never the secret).
              --json   {"providers":[{"name","catalog","display_name","auth_mode","client_id","has_client_secret",…}]}
            """, ListAsync)
        .AddNexusCommand("providers export", "write the provider registrations as JSON (secrets as ${ENV} references)", """
            Usage: Nexus.Server providers export [FILE] [--json]
              Writes every provider registration as {"providers":[…]}, each in the request shape of POST /v1/providers,
              to FILE (or standard output). A client secret is never exported: its place holds a reference such as
              "${NEXUS_PROVIDER_GITHUB_CLIENT_SECRET}" that `providers import` reads from the environment.
              --json   with FILE: {"file","providers":N}; without FILE the document itself is the output
            """, ExportAsync, arguments: 1)
        .AddNexusCommand("providers import", "register providers from a JSON file (an export, or hand-written)", """
            Usage: Nexus.Server providers import FILE|- [--update] [--json]
              Registers each provider of FILE ({"providers":[…]} or a bare array; - reads standard input), each object in
              the request shape of POST /v1/providers, with the same validation (and, for an issuer, the same OpenID
              Connect discovery). A client_secret of the form "${NEXUS_PROVIDER_…}" is read from that environment variable
              (no other variable is read: a file from elsewhere must not send this deployment's secrets to its token URL).
              Providers that exist are skipped, or changed with --update (PATCH semantics). Exit code 1 when any failed.
              --json   {"providers":[{"name","result":"created|updated|skipped|failed","error"}],"created","updated","skipped","failed"}
            """, ImportAsync, flags: ["update"], arguments: 1);

    private static async Task<int> ListAsync(CommandContext context, CancellationToken ct)
    {
        var providers = (await context.Get<ProviderRegistry>().ListAsync(ct)).Select(ProviderResponse.From).ToList();
        return await context.ListAsync(new { providers }, providers, "No providers yet.",
            ("NAME", p => p.Name), ("DISPLAY_NAME", p => p.DisplayName), ("AUTH_MODE", p => p.AuthMode), ("CATALOG", p => p.Catalog ?? "(custom)"),
            ("CLIENT_ID", p => p.ClientId), ("SECRET", p => p.HasClientSecret ? "stored" : ""));
    }

    /// <summary>The environment variable an export names for a provider's client secret.</summary>
    public static string SecretVariable(string provider) => $"{SecretVariablePrefix}{provider.ToUpperInvariant().Replace('-', '_')}_CLIENT_SECRET";

    /// <summary>What every environment variable an import may read starts with.</summary>
    public const string SecretVariablePrefix = "NEXUS_PROVIDER_";

    private static async Task<int> ExportAsync(CommandContext context, CancellationToken ct)
    {
        var providers = await context.Get<ProviderRegistry>().ListAsync(ct);
        var document = JsonSerializer.SerializeToNode(new { providers = providers.Select(Export) }, context.JsonOptions)!.ToJsonString(Indented);
        if (context.Args.OptionalArgument(0) is not { } file)
        {
            await context.Output.WriteLineAsync(document);
            return ExitCodes.Ok;
        }

        await File.WriteAllTextAsync(file, document + "\n", ct);
        return await context.ResultAsync(new { file = Path.GetFullPath(file), providers = providers.Count },
            $"Exported {providers.Count} provider(s) to {file}." + (providers.Any(p => p.ClientSecret is not null)
                ? " Client secrets are not in it: set the NEXUS_PROVIDER_…_CLIENT_SECRET variables it names before importing." : ""));
    }

    /// <summary>A provider as the request that registers it again: the catalog entry's name and choices, or the full custom description.</summary>
    private static ProviderRequest Export(Provider p)
    {
        var secret = p.ClientSecret is null ? null : "${" + SecretVariable(p.Name) + "}";
        var clientId = p.ClientId.Length == 0 ? null : p.ClientId;
        var c = p.Config;
        if (p.AuthMode == AuthModes.McpOAuth2)
        {
            return Empty(p.Name) with
            {
                AuthMode = p.AuthMode, DisplayName = p.DisplayName, McpUrl = c.Mcp?.Url, SendResource = c.Mcp?.SendResource, Scopes = [.. p.Scopes],
                ClientId = c.Mcp?.Registration == McpRegistrationKinds.PreRegistered ? clientId : null,
                ClientSecret = c.Mcp?.Registration == McpRegistrationKinds.PreRegistered ? secret : null,
            };
        }

        if (p.CatalogKey is not null)
        {
            return Empty(p.Name) with
            {
                Catalog = p.CatalogKey, DisplayName = p.DisplayName, ClientId = clientId, ClientSecret = secret, Scopes = [.. p.Scopes],
                Placeholders = p.Placeholders.Count == 0 ? null : p.Placeholders, RefreshMarginSeconds = c.RefreshMarginSeconds,
            };
        }

        return Empty(p.Name) with
        {
            DisplayName = p.DisplayName, AuthMode = p.AuthMode, Issuer = c.Issuer, AuthorizationUrl = NullIfEmpty(c.AuthorizationUrl), TokenUrl = NullIfEmpty(c.TokenUrl),
            RevocationUrl = c.RevocationUrl, UserinfoUrl = c.UserinfoUrl, ApiBaseUrl = c.ApiBaseUrl, ClientId = clientId, ClientSecret = secret, Scopes = [.. p.Scopes],
            Pkce = AuthModes.IsOAuth(p.AuthMode) ? JsonSerializer.SerializeToElement(c.Pkce) : null,
            TokenEndpointAuth = AuthModes.IsOAuth(p.AuthMode) ? c.TokenEndpointAuth : null,
            TokenRequestFormat = AuthModes.IsOAuth(p.AuthMode) ? c.TokenRequestFormat : null,
            RevocationFormat = AuthModes.IsOAuth(p.AuthMode) ? c.RevocationFormat : null,
            ScopeSeparator = AuthModes.IsOAuth(p.AuthMode) ? c.ScopeSeparator : null,
            AuthorizationParams = c.AuthorizationParams.Count == 0 ? null : c.AuthorizationParams,
            TokenRequestHeaders = c.TokenRequestHeaders.Count == 0 ? null : c.TokenRequestHeaders,
            Placeholders = p.Placeholders.Count == 0 ? null : p.Placeholders,
            RefreshSupported = AuthModes.IsOAuth(p.AuthMode) ? c.RefreshSupported : null,
            ApiKey = c.ApiKey, Aws = c.Aws, CredentialSchema = c.CredentialSchema is null ? null : JsonSerializer.SerializeToElement(c.CredentialSchema),
            Verify = c.Verify, RefreshMarginSeconds = c.RefreshMarginSeconds,
        };
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;

    private static ProviderRequest Empty(string name) => new(name, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null);

    private static async Task<int> ImportAsync(CommandContext context, CancellationToken ct)
    {
        var file = context.Args.Argument(0, "FILE (a providers export, or - for standard input)");
        var entries = Entries(await CommandContext.ReadInputAsync(file, ct), file);
        var update = context.Args.Flag("update");
        var results = new List<ImportResult>();
        var progress = context.Progress("Importing providers", entries.Count);
        progress.Report(0);
        foreach (var (entry, index) in entries.Select((e, i) => (e, i)))
        {
            results.Add(await ImportOneAsync(context, entry, index, update, ct));
            progress.Report(index + 1);
        }

        int Count(string result) => results.Count(r => r.Result == result);
        var summary = new { providers = results, created = Count("created"), updated = Count("updated"), skipped = Count("skipped"), failed = Count("failed") };
        var text = string.Join("\n", results.Select(r => $"{r.Name}: {r.Result}{(r.Error is null ? "" : " - " + r.Error.Message.Replace("\n", "; ", StringComparison.Ordinal))}"))
            + $"\n{summary.created} created, {summary.updated} updated, {summary.skipped} skipped, {summary.failed} failed.";
        await context.ResultAsync(summary, text);
        return summary.failed > 0 ? ExitCodes.Failed : ExitCodes.Ok;
    }

    internal sealed record ImportError(string Code, string Message, IDictionary<string, string[]>? Errors);

    internal sealed record ImportResult(string Name, string Result, ImportError? Error = null);

    private static List<JsonElement> Entries(string text, string file)
    {
        try
        {
            var root = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = 64 }).RootElement;
            var array = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("providers", out var inner) ? inner : root;
            return array.ValueKind == JsonValueKind.Array ? [.. array.EnumerateArray()]
                : throw new CommandFailedException($"{file} holds no list of providers: expected {{\"providers\":[…]}} or […].", ProblemCatalog.InvalidJson);
        }
        catch (JsonException e)
        {
            throw new CommandFailedException($"{file} is not valid JSON (line {e.LineNumber + 1}).", ProblemCatalog.InvalidJson);
        }
    }

    private static async Task<ImportResult> ImportOneAsync(CommandContext context, JsonElement entry, int index, bool update, CancellationToken ct)
    {
        var label = entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : $"#{index + 1}";
        var (body, error) = JsonBody.Parse<ProviderRequest>(JsonSerializer.SerializeToUtf8Bytes(entry), context.JsonOptions);
        if (body is null)
        {
            return new ImportResult(label, "failed", new ImportError(ProblemCatalog.InvalidJson.Code, error!, null));
        }

        var registration = context.Get<ProviderRegistration>();
        var existing = body.Name is null ? null : await context.Get<ProviderRegistry>().FindAsync(body.Name, ct);
        if (existing is not null && !update)
        {
            return new ImportResult(label, "skipped");
        }

        if (body.ClientSecret is { } secret && SecretReference().Match(secret) is { Success: true } reference)
        {
            var variable = reference.Groups[1].Value;
            if (!variable.StartsWith(SecretVariablePrefix, StringComparison.Ordinal))
            {
                // An import file travels between deployments: read from it, "${ENCRYPTION_KEY}" or "${DATABASE_URL}" would
                // become a client secret sent to whatever token_url the file's author chose. Only the variables an export
                // names are read.
                return new ImportResult(label, "failed", new ImportError(CommandErrorCatalog.SecretMissing.Code,
                    $"client_secret may name only a {SecretVariablePrefix}… environment variable (as providers export writes them), not {variable}.", null));
            }

            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value)
            {
                body = body with { ClientSecret = value };
            }
            else if (existing is not null)
            {
                // An update without the variable keeps the stored secret (PATCH semantics: an absent field keeps its value).
                body = body with { ClientSecret = null };
            }
            else
            {
                return new ImportResult(label, "failed", new ImportError(CommandErrorCatalog.SecretMissing.Code, $"client_secret names the environment variable {variable}, which is not set.", null));
            }
        }

        if (existing is not null)
        {
            // A discovered provider (mcp_oauth2) takes only what can change; the file names its mode and server again.
            var change = registration.IsDiscovered(existing) ? body with { Name = null, AuthMode = null, McpUrl = null } : body with { Name = null };
            var (_, failure, _) = await registration.UpdateAsync(existing.Name, change, ct);
            return failure is null ? new ImportResult(label, "updated") : Failed(label, failure);
        }

        var (_, registerFailure, _) = await registration.RegisterAsync(body, ct);
        return registerFailure is null ? new ImportResult(label, "created") : Failed(label, registerFailure);
    }

    private static ImportResult Failed(string label, IResult problem)
    {
        var failure = CommandContext.Failure(problem);
        return new ImportResult(label, "failed", new ImportError(failure.Code, failure.Message, failure.Errors));
    }

    [GeneratedRegex(@"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")]
    private static partial Regex SecretReference();
}
