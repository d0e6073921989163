namespace Nexus.Server.Bridge;

/// <summary>
/// Builds the upstream URL of a Bridge request and refuses anything that could leave the provider's API:
/// dot segments (plain or percent-encoded), encoded slashes and backslashes, empty segments that would make a
/// scheme-relative URL, userinfo tricks, absolute URLs and control characters. The result is checked once more
/// after parsing: same scheme, host and port as the API base, and a path inside the base path.
/// </summary>
internal static class BridgePath
{
    // What every request compares against, worked out once per API base (the Bridge reuses one Uri per provider
    // row) rather than formatted out of the Uri again on every request.
    private sealed record Base(string Origin, string Path);

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Uri, Base> Bases = new();

    public static bool TryResolve(Uri apiBase, string rawPath, string? rawQuery, out Uri target, out string error)
    {
        target = apiBase;
        error = "";
        if (rawPath.Length > 0 && rawPath[0] != '/')
        {
            rawPath = "/" + rawPath;
        }

        foreach (var c in rawPath)
        {
            if (c < 0x21 || c == 0x7F || c == '\\' || c == '@')
            {
                error = "The path contains a character the Bridge does not forward (control character, space, backslash or '@').";
                return false;
            }
        }

        if (rawPath.Contains("://", StringComparison.Ordinal) || rawPath.StartsWith("//", StringComparison.Ordinal))
        {
            error = "Absolute URLs cannot be sent through the Bridge; give a path relative to the provider's API.";
            return false;
        }

        // Most paths hold no '%' at all: one scan for it spares them the six case-insensitive searches.
        if (rawPath.Contains('%') && (rawPath.Contains("%2f", StringComparison.OrdinalIgnoreCase) || rawPath.Contains("%5c", StringComparison.OrdinalIgnoreCase)
            || rawPath.Contains("%2e", StringComparison.OrdinalIgnoreCase) || rawPath.Contains("%40", StringComparison.OrdinalIgnoreCase)
            || rawPath.Contains("%25", StringComparison.OrdinalIgnoreCase) || rawPath.Contains("%00", StringComparison.OrdinalIgnoreCase)))
        {
            error = "Encoded slashes, backslashes, dots, '@', '%' and NUL are not forwarded: they are how requests escape an API's path.";
            return false;
        }

        var segments = rawPath.Split('/');
        for (var i = 1; i < segments.Length; i++)
        {
            // "..;x" is ".." to servers that strip path parameters (Tomcat, Spring), and ";x" an empty segment.
            var semicolon = segments[i].IndexOf(';');
            var name = semicolon >= 0 ? segments[i][..semicolon] : segments[i];
            if (name is "." or ".." || (name.Length == 0 && (semicolon >= 0 || i < segments.Length - 1)))
            {
                error = "Dot segments and empty segments are not forwarded.";
                return false;
            }
        }

        var known = Bases.GetValue(apiBase, static b => new Base($"{b.Scheme}://{b.Authority}", b.AbsolutePath.TrimEnd('/')));
        var basePath = known.Path;
        var composed = $"{known.Origin}{basePath}{(rawPath == "/" ? (basePath.Length == 0 ? "/" : "") : rawPath)}";
        if (!string.IsNullOrEmpty(rawQuery))
        {
            composed += rawQuery.StartsWith('?') ? rawQuery : "?" + rawQuery;
        }

        if (!Uri.TryCreate(composed, UriKind.Absolute, out var parsed)
            || parsed.Scheme != apiBase.Scheme || !string.Equals(parsed.Host, apiBase.Host, StringComparison.OrdinalIgnoreCase) || parsed.Port != apiBase.Port
            || !(parsed.AbsolutePath == basePath || parsed.AbsolutePath == basePath + "/" || parsed.AbsolutePath.StartsWith(basePath + "/", StringComparison.Ordinal) || basePath.Length == 0)
            || !string.IsNullOrEmpty(parsed.UserInfo) || !string.IsNullOrEmpty(parsed.Fragment))
        {
            error = "The request would leave the provider's API.";
            return false;
        }

        target = parsed;
        return true;
    }

    /// <summary>
    /// The inverse of <see cref="TryResolve"/>: the Bridge path (under <paramref name="bridgePrefix"/>, with the URL's
    /// query and fragment) of a provider URL inside the API base, or null for one outside it (another origin, or a
    /// path beside the base path).
    /// </summary>
    public static string? ToBridge(Uri apiBase, Uri url, string bridgePrefix)
    {
        if (!url.IsAbsoluteUri || url.Scheme != apiBase.Scheme || !string.Equals(url.Host, apiBase.Host, StringComparison.OrdinalIgnoreCase) || url.Port != apiBase.Port
            || !string.IsNullOrEmpty(url.UserInfo))
        {
            return null;
        }

        var basePath = Bases.GetValue(apiBase, static b => new Base($"{b.Scheme}://{b.Authority}", b.AbsolutePath.TrimEnd('/'))).Path;
        var path = url.AbsolutePath;
        string rest;
        if (basePath.Length == 0 || path == basePath)
        {
            rest = basePath.Length == 0 ? path : "";
        }
        else if (path.StartsWith(basePath + "/", StringComparison.Ordinal))
        {
            rest = path[basePath.Length..];
        }
        else
        {
            return null;
        }

        return bridgePrefix + rest + url.Query + url.Fragment;
    }

    /// <summary>
    /// Whether an S3 <c>x-amz-copy-source</c> (bucket/key, URL-encoded, an optional <c>?versionId=</c>) names an object
    /// inside what the connection's API base URL gives it: the bucket of a virtual-hosted base
    /// (<c>{bucket}.s3.{region}.amazonaws.com</c>) followed by its path, or the path of any other base. Through a base
    /// confined to a bucket or prefix, a copy must not read from outside it, as no request path may. A base at the root
    /// of a path-style endpoint confines nothing (the role's IAM policy does).
    /// </summary>
    public static bool CopySourceInside(Uri apiBase, string copySource)
    {
        var query = copySource.IndexOf('?', StringComparison.Ordinal);
        var source = Uri.UnescapeDataString(query < 0 ? copySource : copySource[..query]);
        if (!source.StartsWith('/'))
        {
            source = "/" + source;
        }

        if (source.Contains('\\', StringComparison.Ordinal) || source.Split('/').Any(segment => segment is "." or ".."))
        {
            return false;
        }

        var host = apiBase.Host;
        var service = Math.Max(host.LastIndexOf(".s3.", StringComparison.OrdinalIgnoreCase), host.LastIndexOf(".s3-", StringComparison.OrdinalIgnoreCase));
        var basePath = Uri.UnescapeDataString(apiBase.AbsolutePath).TrimEnd('/');
        var scope = service > 0 && host.EndsWith(".amazonaws.com", StringComparison.OrdinalIgnoreCase) ? "/" + host[..service] + basePath : basePath;
        return scope.Length == 0 || source.StartsWith(scope + "/", StringComparison.Ordinal);
    }
}
