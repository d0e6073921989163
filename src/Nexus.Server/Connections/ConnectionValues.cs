using System.Text.Json;
using System.Text.RegularExpressions;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections;

/// <summary>
/// Per-connection values (issue 17): the placeholders a provider's URLs keep after registration ({shop}, {instance},
/// {subdomain}, {dc}, …), filled for each connection. A value is accepted only when it matches the catalog's pattern
/// for it and, where it sits in a host, is made of DNS labels and nothing else; after filling, every URL must still
/// name exactly the host the template declares. So a value can choose the tenant, never the server the client
/// secret, the codes and the tokens are sent to (RFC 9700 §4.4, §4.16: credentials go only to the endpoints registered).
/// </summary>
internal static partial class ConnectionValues
{
    public const int MaxValueLength = 253;

    private static readonly JsonSerializerOptions Json = new();

    /// <summary>The per-connection placeholders the provider declares (empty for most providers).</summary>
    public static IReadOnlyDictionary<string, CatalogPlaceholder> Declared(Provider provider) =>
        provider.Config.ConnectionPlaceholders ?? (IReadOnlyDictionary<string, CatalogPlaceholder>)new Dictionary<string, CatalogPlaceholder>();

    /// <summary>Those the person (or the app, with connection_config) supplies before consent.</summary>
    public static IEnumerable<KeyValuePair<string, CatalogPlaceholder>> AskedBeforeConsent(Provider provider) =>
        Declared(provider).Where(d => d.Value.Source == PlaceholderSources.Connection);

    public static IReadOnlyDictionary<string, string> Parse(string? json) =>
        string.IsNullOrEmpty(json) ? new Dictionary<string, string>() : JsonSerializer.Deserialize<Dictionary<string, string>>(json, Json) ?? [];

    public static string? Serialize(IReadOnlyDictionary<string, string> values) => values.Count == 0 ? null : JsonSerializer.Serialize(values, Json);

    /// <summary>The provider with the connection's values in its URLs; placeholders without a value stay as they are.</summary>
    public static Provider Apply(Provider provider, IReadOnlyDictionary<string, string> values)
    {
        if (values.Count == 0 || Declared(provider).Count == 0)
        {
            return provider;
        }

        var c = provider.Config;
        return provider with
        {
            Config = c with
            {
                AuthorizationUrl = Fill(c.AuthorizationUrl, values)!,
                TokenUrl = Fill(c.TokenUrl, values)!,
                RevocationUrl = Fill(c.RevocationUrl, values),
                RefreshUrl = Fill(c.RefreshUrl, values),
                UserinfoUrl = Fill(c.UserinfoUrl, values),
                ApiBaseUrl = Fill(c.ApiBaseUrl, values),
                Metadata = c.Metadata is null ? null : c.Metadata with { Url = Fill(c.Metadata.Url, values)! },
                Resources = c.Resources?.ToDictionary(r => r.Key, r => r.Value with
                {
                    Scopes = [.. r.Value.Scopes.Select(scope => Fill(scope, values)!)],
                    ApiBaseUrl = Fill(r.Value.ApiBaseUrl, values),
                }),
            },
        };
    }

    /// <summary>Whether a URL still holds a placeholder (a value nobody supplied yet).</summary>
    public static bool IsTemplated(string? url) => url is not null && ProviderCatalog.PlaceholderPattern().IsMatch(url);

    private static string? Fill(string? template, IReadOnlyDictionary<string, string> values) =>
        template is null ? null : ProviderCatalog.PlaceholderPattern().Replace(template, m => values.TryGetValue(m.Groups[1].Value, out var v) ? v : m.Value);

    /// <summary>
    /// Why a value of the placeholder <paramref name="name"/> is refused, in plain words; null when it is accepted.
    /// </summary>
    public static string? Problem(Provider provider, string name, string? value)
    {
        if (!Declared(provider).TryGetValue(name, out var declaration))
        {
            return $"'{provider.Name}' takes no per-connection value '{name}'.";
        }

        if (string.IsNullOrEmpty(value) || value.Length > MaxValueLength)
        {
            return $"{name} needs 1 to {MaxValueLength} characters: {declaration.Description}";
        }

        bool matches;
        try
        {
            matches = Regex.IsMatch(value, declaration.Pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (RegexMatchTimeoutException)
        {
            matches = false;
        }

        if (!matches)
        {
            return $"{name} must match {declaration.Pattern}: {declaration.Description}";
        }

        // Beyond the pattern (which a catalog entry might write too loosely): a value in a host is DNS labels
        // (RFC 1123 §2.1) and nothing else, no '/', '@', ':', '..'; one in a path is a single plain segment.
        if (InHost(provider, name) ? !HostLabels().IsMatch(value) : !PathSegment().IsMatch(value) || value is "." or "..")
        {
            return $"{name} may only hold {(InHost(provider, name) ? "host name labels (letters, digits and '-', separated by single dots)" : "letters, digits, '-', '_', '.' and '~'")}: {declaration.Description}";
        }

        return null;
    }

    /// <summary>
    /// Checks the filled URLs of a connection: each must be usable (<see cref="UpstreamPolicy"/>) and name exactly the
    /// host its template declares with the values in place. Null when they do; otherwise what is wrong.
    /// </summary>
    public static string? UrlProblem(Provider provider, IReadOnlyDictionary<string, string> values, UpstreamPolicy policy)
    {
        var c = provider.Config;
        foreach (var (field, template) in new[] { ("authorization_url", c.AuthorizationUrl), ("token_url", c.TokenUrl), ("revocation_url", c.RevocationUrl),
                     ("refresh_url", c.RefreshUrl), ("userinfo_url", c.UserinfoUrl), ("api_base_url", c.ApiBaseUrl), ("metadata.url", c.Metadata?.Url) }.Concat(ResourceTemplates(c)))
        {
            if (string.IsNullOrEmpty(template) || !IsTemplated(template) || Fill(template, values) is not { } filled || IsTemplated(filled))
            {
                continue;
            }

            if (policy.Check(filled) is { } problem)
            {
                return $"{field} {problem}";
            }

            var expectedHost = ExpectedHost(template, values);
            if (!Uri.TryCreate(filled, UriKind.Absolute, out var uri) || !string.Equals(uri.IdnHost, expectedHost, StringComparison.OrdinalIgnoreCase))
            {
                return $"{field} would not go to the host the provider declares.";
            }
        }

        return null;
    }

    /// <summary>
    /// Reads a placeholder's value out of what a provider answered after consent: the field's value itself (Mailchimp's
    /// "dc"), or, when the field holds a URL (Salesforce's instance_url, Pipedrive's api_domain), the part of its host
    /// the template's host leaves to the placeholder. Null when it is missing or does not fit.
    /// </summary>
    public static string? Capture(Provider provider, string name, string? raw, IReadOnlyDictionary<string, string> known)
    {
        if (string.IsNullOrEmpty(raw) || raw.Length > 2048)
        {
            return null;
        }

        if (!raw.Contains("://", StringComparison.Ordinal))
        {
            return raw;
        }

        if (!Uri.TryCreate(raw, UriKind.Absolute, out var uri) || !string.IsNullOrEmpty(uri.UserInfo))
        {
            return null;
        }

        var c = provider.Config;
        var template = new[] { c.ApiBaseUrl, c.RevocationUrl, c.UserinfoUrl }.FirstOrDefault(t => t is not null && HostTemplate(t).Contains("{" + name + "}", StringComparison.Ordinal));
        if (template is null)
        {
            return null;
        }

        // The template's host as a pattern: literal parts must match exactly, the placeholder captures labels.
        var pattern = "^" + string.Concat(ProviderCatalog.PlaceholderPattern().Split(HostTemplate(template)).Select((part, i) =>
            i % 2 == 0 ? Regex.Escape(part) : part == name ? "(?<value>[A-Za-z0-9.-]+)" : known.TryGetValue(part, out var v) ? Regex.Escape(v) : "[A-Za-z0-9.-]+")) + "$";
        var match = Regex.Match(uri.IdnHost, pattern, RegexOptions.CultureInvariant | RegexOptions.IgnoreCase, TimeSpan.FromSeconds(1));
        return match.Success ? match.Groups["value"].Value : null;
    }

    /// <summary>Whether the placeholder sits in the host of any of the provider's URLs.</summary>
    /// <summary>A provider's resources' base URLs, and those scopes that are URLs (Entra's https://host/.default).</summary>
    private static IEnumerable<(string Field, string? Template)> ResourceTemplates(ProviderConfig c) =>
        (c.Resources ?? []).SelectMany(r => r.Value.Scopes.Where(s => s.Contains("://", StringComparison.Ordinal)).Select(s => ($"resources.{r.Key}.scopes", (string?)s))
            .Append(($"resources.{r.Key}.api_base_url", r.Value.ApiBaseUrl)));

    private static bool InHost(Provider provider, string name)
    {
        var c = provider.Config;
        return new[] { c.AuthorizationUrl, c.TokenUrl, c.RevocationUrl, c.RefreshUrl, c.UserinfoUrl, c.ApiBaseUrl, c.Metadata?.Url }
            .Concat(ResourceTemplates(c).Select(r => r.Template))
            .Any(t => t is not null && HostTemplate(t).Contains("{" + name + "}", StringComparison.Ordinal));
    }

    /// <summary>The host part of a URL template (between "://" and the port, path, query or end).</summary>
    private static string HostTemplate(string template)
    {
        var start = template.IndexOf("://", StringComparison.Ordinal);
        if (start < 0)
        {
            return "";
        }

        var rest = template[(start + 3)..];
        var end = rest.IndexOfAny(['/', '?', '#']);
        var authority = end < 0 ? rest : rest[..end];
        var colon = authority.LastIndexOf(':');
        return colon >= 0 && authority[(colon + 1)..].All(char.IsAsciiDigit) ? authority[..colon] : authority;
    }

    private static string ExpectedHost(string template, IReadOnlyDictionary<string, string> values) => Fill(HostTemplate(template), values)!;

    [GeneratedRegex(@"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")]
    private static partial Regex HostLabels();

    [GeneratedRegex(@"^[A-Za-z0-9._~-]+$")]
    private static partial Regex PathSegment();
}
