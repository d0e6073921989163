namespace Nexus.Server.Hosting;

/// <summary>
/// A list of exact browser origins (such as /mcp's <c>Nexus:Mcp:AllowedOrigins</c>, beside BASE_URL's own). An
/// origin is compared as browsers send it (RFC 6454 §6.2: scheme://host[:port], lower case, the default port left
/// out), so a configured <c>https://App.example.com:443/</c> matches the header <c>https://app.example.com</c>.
/// </summary>
internal static class BrowserOrigins
{
    /// <summary>The configured origins in their serialized form; <paramref name="bad"/> names the first entry that is not one.</summary>
    public static IReadOnlyList<string> Parse(string? value, out string? bad)
    {
        bad = null;
        var origins = new List<string>();
        foreach (var entry in (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (Serialize(entry) is not { } origin)
            {
                bad = entry;
                return [];
            }

            origins.Add(origin);
        }

        return origins;
    }

    /// <summary>The RFC 6454 serialization of an http(s) origin written alone (a trailing / is tolerated), else null.</summary>
    private static string? Serialize(string entry)
    {
        if (!Uri.TryCreate(entry, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || !string.IsNullOrEmpty(uri.UserInfo)
            || uri.AbsolutePath != "/" || !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment)
            || entry.Contains('*') || !Hosting.InputText.IsVisibleAscii(entry))
        {
            return null;
        }

        // A path of "/" is the only one allowed: "https://a.example/x" has AbsolutePath "/x" and was refused above.
        return uri.GetLeftPart(UriPartial.Authority).ToLowerInvariant();
    }
}
