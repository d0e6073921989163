using Nexus.Server.Hosting;

namespace Nexus.Server.Connections;

/// <summary>
/// Where the broker may send a browser after consent. An open redirector next to an OAuth callback leaks
/// connection ids and phishes users (RFC 9700 §4.11), so return_url must match ALLOWED_RETURN_URLS: an origin
/// (any path on it) or a URL prefix (that path and below). The BASE_URL origin is always allowed. Matching is done
/// on parsed URLs, never on strings, so https://app.example.com.evil.test does not pass for https://app.example.com.
/// </summary>
internal sealed class ReturnUrlPolicy
{
    internal sealed record Entry(string Scheme, string Host, int Port, string? PathPrefix);

    private readonly List<Entry> entries = [];

    public ReturnUrlPolicy(NexusOptions options)
    {
        if (TryParseEntry(options.BaseUrl, out var baseEntry))
        {
            entries.Add(baseEntry with { PathPrefix = null });
        }

        foreach (var value in SplitEntries(options.AllowedReturnUrls))
        {
            if (TryParseEntry(value, out var entry))
            {
                entries.Add(entry);
            }
        }
    }

    public static IEnumerable<string> SplitEntries(string? value) =>
        (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static bool TryParseEntry(string value, out Entry entry)
    {
        entry = null!;
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp)
            || string.IsNullOrEmpty(uri.Host) || !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment) || !string.IsNullOrEmpty(uri.UserInfo))
        {
            return false;
        }

        entry = new Entry(uri.Scheme, uri.Host, uri.Port, uri.AbsolutePath is "" or "/" ? null : uri.AbsolutePath);
        return true;
    }

    /// <summary>Null when the URL is allowed; otherwise why not.</summary>
    public string? Check(string? returnUrl)
    {
        // The URL goes out as a Location header when the connection activates; checked now, not then. Uri.TryCreate
        // would accept (and silently drop or escape) what a header cannot carry: CR/LF, other controls, non-ASCII.
        if (returnUrl is not null && !InputText.IsVisibleAscii(returnUrl))
        {
            return "return_url may contain only printable ASCII: percent-encode spaces, control and non-ASCII characters (RFC 3986 §2.1).";
        }

        if (!Uri.TryCreate(returnUrl, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp) || string.IsNullOrEmpty(uri.Host))
        {
            return "return_url must be an absolute http(s) URL.";
        }

        if (!string.IsNullOrEmpty(uri.UserInfo) || !string.IsNullOrEmpty(uri.Fragment))
        {
            return "return_url may not contain user info or a fragment.";
        }

        var encodedStep = false;
        foreach (var e in entries)
        {
            if (e.Scheme == uri.Scheme && string.Equals(e.Host, uri.Host, StringComparison.OrdinalIgnoreCase) && e.Port == uri.Port && PathMatches(e.PathPrefix, uri.AbsolutePath))
            {
                // Under a URL prefix, no percent-encoded dot, slash or backslash in the path: Uri resolves "%2e%2e"
                // segments itself, but leaves "..%2F" and "..%5C" as they are, and a server that decodes them before
                // resolving dot segments turns "/oauth/..%2Fother", which passes the prefix "/oauth/", into "/other".
                // Refused, as the Bridge refuses them (Bridge/BridgePath.cs). An origin entry has no prefix to escape.
                if (e.PathPrefix is not null && HasEncodedPathStep(uri.AbsolutePath))
                {
                    encodedStep = true;
                    continue;
                }

                return null;
            }
        }

        return encodedStep
            ? "return_url may not contain a percent-encoded dot, slash or backslash (%2E, %2F, %5C) in its path when ALLOWED_RETURN_URLS allows it by a URL prefix: a server that decodes them could resolve the path outside the prefix."
            : "return_url is not in ALLOWED_RETURN_URLS. Add its origin (or a URL prefix) to that setting.";
    }

    private static bool HasEncodedPathStep(string path) =>
        path.Contains("%2e", StringComparison.OrdinalIgnoreCase) || path.Contains("%2f", StringComparison.OrdinalIgnoreCase) || path.Contains("%5c", StringComparison.OrdinalIgnoreCase);

    private static bool PathMatches(string? prefix, string path)
    {
        if (prefix is null)
        {
            return true;
        }

        // "/oauth/" admits /oauth/…; "/oauth" admits /oauth and /oauth/… but not /oauthevil.
        return prefix.EndsWith('/')
            ? path.StartsWith(prefix, StringComparison.Ordinal)
            : path == prefix || path.StartsWith(prefix + "/", StringComparison.Ordinal);
    }
}
