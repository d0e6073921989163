using System.Globalization;
using System.Text;
using System.Text.Json;
using Nexus.Server.Providers;

namespace Nexus.Server.Tests.Providers;

/// <summary>
/// Writes the generated half of docs/provider-catalog.md from the catalog the server ships (ProviderCatalog.LoadEmbedded):
/// everything after <see cref="Marker"/> is produced here; everything before it (the field reference) is written by hand
/// and kept as it is. CatalogDocumentTests fails when the checked-in file differs; scripts/regenerate-catalog-doc.sh
/// rewrites it.
/// </summary>
internal static class CatalogDocument
{
    public const string RelativePath = "docs/provider-catalog.md";

    public const string Marker = "<!-- Generated from src/Nexus.Server/Providers/catalog.json: do not edit below this line. Edit the catalog, then run scripts/regenerate-catalog-doc.sh. -->";

    /// <summary>The whole document: the hand-written part of <paramref name="current"/> up to and including the marker, then the generated part.</summary>
    public static string Render(string current, ProviderCatalog catalog)
    {
        var at = current.IndexOf(Marker, StringComparison.Ordinal);
        if (at < 0)
        {
            throw new InvalidOperationException($"{RelativePath} has lost its generated-section marker; put this line back where the provider list starts:\n{Marker}");
        }

        var sb = new StringBuilder(current[..(at + Marker.Length)].Replace("\r\n", "\n", StringComparison.Ordinal)).Append("\n\n");
        Summary(sb, catalog);
        foreach (var (key, entry) in catalog.Entries)
        {
            Entry(sb, key, entry);
        }

        return sb.ToString().TrimEnd('\n') + "\n";
    }

    private static void Summary(StringBuilder sb, ProviderCatalog catalog)
    {
        var entries = catalog.Entries;
        var byMode = string.Join(", ", AuthModes.All.Select(m => $"{entries.Values.Count(e => e.AuthMode == m)} `{m}`"));
        sb.Append(CultureInfo.InvariantCulture, $"The catalog lists **{entries.Count} providers** ({byMode}).\n\n");
        var categories = entries.Values.SelectMany(e => e.Categories).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        sb.Append("Categories in use: ").Append(string.Join(", ", categories.Select(c => $"`{c}`"))).Append(".\n\n");
        sb.Append("| Key | Display name | Mode | Categories | Placeholders |\n| --- | --- | --- | --- | --- |\n");
        foreach (var (key, e) in entries)
        {
            var placeholders = string.Join(", ", (e.Placeholders ?? []).Keys.Select(p => $"`{p}`"));
            sb.Append(CultureInfo.InvariantCulture, $"| [`{key}`](#{key}) | {Cell(e.DisplayName)} | `{e.AuthMode}` | {string.Join(", ", e.Categories)} | {placeholders} |\n");
        }

        sb.Append('\n');
    }

    private static void Entry(StringBuilder sb, string key, CatalogEntry e)
    {
        sb.Append(CultureInfo.InvariantCulture, $"### {key}\n\n**{Cell(e.DisplayName)}** · `{e.AuthMode}` · {string.Join(", ", e.Categories)} · [documentation]({e.DocsUrl})\n\n");
        var rows = new List<(string Field, string Value)> { ("API base URL", Code(e.ApiBaseUrl)) };
        if (e.AuthMode == AuthModes.OAuth2)
        {
            rows.Add(("Authorization URL", Code(e.AuthorizationUrl)));
            rows.Add(("Token URL", Code(e.TokenUrl)));
            rows.Add(("Revocation URL", e.RevocationUrl is null ? "none in the catalog (see notes)" : $"{Code(e.RevocationUrl)} ({e.RevocationFormat ?? RevocationFormats.Rfc7009})"));
            rows.Add(("Userinfo URL", e.UserinfoUrl is null ? "none" : Code(e.UserinfoUrl)));
            rows.Add(("Default scopes", e.DefaultScopes is { Length: > 0 } d ? string.Join(" ", d.Select(Code)) : "none"));
            rows.Add(("Scope separator", e.ScopeSeparator == "," ? "comma" : "space"));
            rows.Add(("PKCE", e.Pkce ?? PkceModes.Supported));
            rows.Add(("Token endpoint auth", Code(e.TokenEndpointAuth ?? ClientAuthMethods.Post)));
            rows.Add(("Token request body", e.TokenRequestFormat ?? TokenRequestFormats.Form));
            rows.Add(("Refresh", e.Refresh?.Supported == false ? "not supported" : e.RefreshUrl is null ? "supported" : $"supported, at {Code(e.RefreshUrl)}"));
            if (e.ClientIdParam is { } clientIdParam)
            {
                rows.Add(("Client id parameter", Code(clientIdParam)));
            }

            if (e.ApiAuthScheme is { } scheme)
            {
                rows.Add(("API Authorization scheme", Code(scheme)));
            }

            if (e.ApiRequestHeaders is { Count: > 0 } apiHeaders)
            {
                rows.Add(("Extra API request headers", Pairs(apiHeaders)));
            }

            if (e.AuthorizationParams is { Count: > 0 } ap)
            {
                rows.Add(("Extra authorize parameters", Pairs(ap)));
            }

            if (e.TokenRequestHeaders is { Count: > 0 } th)
            {
                rows.Add(("Extra token request headers", Pairs(th)));
            }

            if (e.TokenResponse is { } tr && TokenResponseQuirks(tr) is { Length: > 0 } quirks)
            {
                rows.Add(("Token response", quirks));
            }
        }

        if (e.ApiKey is { } k)
        {
            rows.Add(("Key sent in", $"{k.In} {Code(k.Name)}" + (k.Prefix is null ? "" : $" with the prefix {Code(k.Prefix)}")));
        }

        if (e.Aws is { Count: > 0 } aws)
        {
            rows.Add(("AWS signing", Pairs(aws)));
        }

        if (e.Verify is { } v)
        {
            rows.Add(("Verify", $"{Code(v.Method + " " + v.Path)} expects {v.ExpectStatus.ToString(CultureInfo.InvariantCulture)}"));
        }

        sb.Append("| Field | Value |\n| --- | --- |\n");
        foreach (var (field, value) in rows)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| {field} | {value} |\n");
        }

        sb.Append('\n');
        if (e.Placeholders is { Count: > 0 } placeholders)
        {
            sb.Append("| Placeholder | Meaning | Pattern | Default |\n| --- | --- | --- | --- |\n");
            foreach (var (name, p) in placeholders)
            {
                sb.Append(CultureInfo.InvariantCulture, $"| `{{{name}}}` | {Cell(p.Description)} | {Code(p.Pattern)} | {(p.Default is null ? "none" : Code(p.Default))} |\n");
            }

            sb.Append('\n');
        }

        if (e.Scopes is { Count: > 0 } scopes)
        {
            sb.Append("| Scope | What it allows |\n| --- | --- |\n");
            foreach (var (scope, meaning) in scopes)
            {
                sb.Append(CultureInfo.InvariantCulture, $"| {Code(scope)} | {Cell(meaning)} |\n");
            }

            sb.Append('\n');
        }

        if (e.Resources is { Count: > 0 } resources)
        {
            sb.Append("| Resource (`?resource=`, `Nexus-Resource`) | What it is | Scopes | API base URL |\n| --- | --- | --- | --- |\n");
            foreach (var (name, resource) in resources)
            {
                sb.Append(CultureInfo.InvariantCulture,
                    $"| `{name}` | {Cell(resource.Description)} | {string.Join(" ", resource.Scopes.Select(Code))} | {(resource.ApiBaseUrl is null ? "the provider's" : Code(resource.ApiBaseUrl))} |\n");
            }

            sb.Append('\n');
        }

        if (e.CredentialSchema is { ValueKind: JsonValueKind.Object } schema && schema.TryGetProperty("properties", out var properties))
        {
            var required = schema.TryGetProperty("required", out var r) ? r.EnumerateArray().Select(x => x.GetString()).ToHashSet(StringComparer.Ordinal) : [];
            sb.Append("| Credential field | Label | Required | Secret | Description |\n| --- | --- | --- | --- | --- |\n");
            foreach (var p in properties.EnumerateObject())
            {
                var secret = p.Value.TryGetProperty("x-secret", out var s) && s.ValueKind == JsonValueKind.True;
                sb.Append(CultureInfo.InvariantCulture, $"| `{p.Name}` | {Cell(Text(p.Value, "title"))} | {(required.Contains(p.Name) ? "yes" : "no")} | {(secret ? "yes" : "no")} | {Cell(Text(p.Value, "description"))} |\n");
            }

            sb.Append('\n');
        }

        if (!string.IsNullOrWhiteSpace(e.Notes))
        {
            sb.Append(Prose(e.Notes.Trim())).Append("\n\n");
        }
    }

    private static string TokenResponseQuirks(CatalogTokenResponse tr) => string.Join("; ", new[]
    {
        tr.RefreshTokenRotates ? "refresh tokens rotate (each refresh returns a new one)" : null,
        tr.ExpiresInMissing ? "usually no expires_in" : null,
        tr.FormEncoded ? "may answer form-encoded" : null,
    }.OfType<string>());

    private static string Pairs(Dictionary<string, string> pairs) => string.Join(", ", pairs.Select(p => Code($"{p.Key}: {p.Value}")));

    private static string Text(JsonElement element, string name) => element.TryGetProperty(name, out var value) ? value.GetString() ?? "" : "";

    /// <summary>Inline code that survives a table cell: backticks inside are doubled around, pipes escaped.</summary>
    private static string Code(string? value) =>
        value is null ? "" : (value.Contains('`', StringComparison.Ordinal) ? $"`` {value} ``" : $"`{value}`").Replace("|", "\\|", StringComparison.Ordinal);

    private static string Cell(string value) => Prose(value).Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);

    /// <summary>Free text from the catalog: angle brackets ("Authorization: Client &lt;secret&gt;") would otherwise read as HTML tags.</summary>
    private static string Prose(string value) => value.Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}
