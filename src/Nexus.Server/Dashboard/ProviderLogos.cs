using System.Reflection;
using System.Text.Json;
using Nexus.Server.Providers;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Dashboard;

/// <summary>
/// Provider logos for the dashboard: the SVG paths of simple-icons (CC0-1.0), bundled in Dashboard/logos.json by
/// scripts/update-logos.sh and written inline into the page, so no image is ever loaded from another site (the CSP's
/// img-src allows only 'self' and data:). A provider without a freely licensed icon keeps its letter avatar.
/// </summary>
internal static class ProviderLogos
{
    private sealed record Logo(string Title, string Hex, string Path);

    private static readonly Lazy<Dictionary<string, Logo>> Logos = new(Load);

    private static Dictionary<string, Logo> Load()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("dashboard/logos.json")
            ?? throw new InvalidOperationException("The embedded dashboard/logos.json is missing.");
        using var document = JsonDocument.Parse(stream);
        var logos = new Dictionary<string, Logo>(StringComparer.Ordinal);
        foreach (var entry in document.RootElement.GetProperty("logos").EnumerateObject())
        {
            var hex = entry.Value.GetProperty("hex").GetString()!;
            var path = entry.Value.GetProperty("path").GetString()!;
            // The data is ours, but it is still checked: a colour and an SVG path, nothing that could carry markup.
            if (System.Text.RegularExpressions.Regex.IsMatch(hex, "^[0-9A-Fa-f]{6}$") && path.All(c => char.IsAsciiDigit(c) || c is ' ' or '.' or ',' or '-' || char.IsAsciiLetter(c)))
            {
                logos[entry.Name] = new Logo(entry.Value.GetProperty("title").GetString()!, hex, path);
            }
        }

        return logos;
    }

    /// <summary>Whether the catalog entry has a bundled logo.</summary>
    public static bool Has(string? catalogKey) => catalogKey is not null && Logos.Value.ContainsKey(catalogKey);

    /// <summary>The provider's logo (decorative: the name is always written next to it), or its first letter in a circle.</summary>
    public static string Avatar(Provider? provider, string displayName)
    {
        if (provider?.CatalogKey is { } key && Logos.Value.TryGetValue(key, out var logo))
        {
            return $"<span class=\"avatar logo\" aria-hidden=\"true\" data-logo=\"{E(key)}\"><svg viewBox=\"0 0 24 24\" width=\"20\" height=\"20\" focusable=\"false\"><path fill=\"#{logo.Hex}\" d=\"{logo.Path}\"/></svg></span>";
        }

        var letter = displayName.Length == 0 ? "?" : displayName[..1].ToUpperInvariant();
        return $"<span class=\"avatar\" aria-hidden=\"true\">{E(letter)}</span>";
    }
}
