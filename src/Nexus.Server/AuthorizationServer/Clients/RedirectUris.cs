namespace Nexus.Server.AuthorizationServer.Clients;

/// <summary>How redirect URIs are validated at registration and matched at the authorization endpoint.</summary>
internal static class RedirectUris
{
    /// <summary>Schemes a private-use (native app) redirect may not use: they are not private, or a browser would run them.</summary>
    private static readonly HashSet<string> ForbiddenSchemes = new(StringComparer.OrdinalIgnoreCase)
    {
        "javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ftp", "ws", "wss", "mailto", "tel", "urn", "view-source",
    };

    /// <summary>
    /// Whether <paramref name="requested"/> matches the registered <paramref name="registered"/>. RFC 9700 §4.1.3 and
    /// OAuth 2.1 §4.1.1: exact string comparison, except that RFC 8252 §7.3 lets a native app's loopback redirect
    /// (http://127.0.0.1, http://[::1], http://localhost) use any port, chosen when the app starts listening
    /// (<paramref name="anyLoopbackPort"/>: native apps, which are public clients or registered themselves, RFC 8252 §8.4
    /// letting dynamic registration give one a secret; an administrator's web application's loopback redirect, in
    /// development, matches exactly, RFC 9700 §4.1.3 allowing the port exception for native apps only).
    /// </summary>
    public static bool Matches(string registered, string requested, bool anyLoopbackPort)
    {
        if (string.Equals(registered, requested, StringComparison.Ordinal))
        {
            return true;
        }

        return anyLoopbackPort && SplitLoopback(registered) is { } r && SplitLoopback(requested) is { } q
            && string.Equals(r.Host, q.Host, StringComparison.OrdinalIgnoreCase) && string.Equals(r.Tail, q.Tail, StringComparison.Ordinal);
    }

    /// <summary>Whether <paramref name="requested"/> matches one of the client's registered redirect URIs.</summary>
    public static bool IsRegistered(OAuthClient client, string requested) => client.RedirectUriList.Any(r => Matches(r, requested, client.IsPublic || client.IsSelfRegistered));

    /// <summary>
    /// Whether a redirect to <paramref name="redirectUri"/> can only reach its client: an https URI of a host that is not
    /// this machine. A loopback port or a private-use scheme can be taken by any app on the device (RFC 8252 §8.6, §8.4).
    /// </summary>
    public static bool ReachesOnlyItsClient(string redirectUri) =>
        Uri.TryCreate(redirectUri, UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttps && !uri.IsLoopback
        && !uri.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Splits http://{loopback host}[:port]{rest}; null when the URI is not a plain loopback http URI. Done on the
    /// string, not through System.Uri, so that no normalization can make two different strings match.
    /// </summary>
    private static (string Host, string Tail)? SplitLoopback(string uri)
    {
        const string prefix = "http://";
        if (!uri.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var authorityEnd = uri.IndexOfAny(['/', '?', '#'], prefix.Length);
        var authority = authorityEnd < 0 ? uri[prefix.Length..] : uri[prefix.Length..authorityEnd];
        var rest = authorityEnd < 0 ? "" : uri[authorityEnd..];
        string host;
        string port;
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                return null;
            }

            host = authority[..(close + 1)];
            port = authority[(close + 1)..];
        }
        else
        {
            var colon = authority.IndexOf(':', StringComparison.Ordinal);
            host = colon < 0 ? authority : authority[..colon];
            port = colon < 0 ? "" : authority[colon..];
        }

        if (port.Length > 0 && (port[0] != ':' || port.Length is < 2 or > 6 || !port.AsSpan(1).ContainsOnlyDigits()))
        {
            return null;
        }

        var loopback = host is "127.0.0.1" or "[::1]" || host.Equals("localhost", StringComparison.OrdinalIgnoreCase);
        return loopback ? (host, rest) : null;
    }

    private static bool ContainsOnlyDigits(this ReadOnlySpan<char> span)
    {
        foreach (var c in span)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// What is wrong with a redirect URI an administrator registers, or null. RFC 6749 §3.1.2 and RFC 9700 §4.1:
    /// absolute, no fragment, https except on loopback or for native app schemes.
    /// </summary>
    public static string? Problem(string? uri)
    {
        if (uri is null || uri.Length > 2000 || !Uri.TryCreate(uri, UriKind.Absolute, out var parsed))
        {
            return "must be an absolute URI.";
        }

        // Printable ASCII only: a control character (a newline splits the stored list into extra, unchecked URIs),
        // a space, a backslash or non-ASCII text has no place in a redirect URI that is compared as a string.
        if (!Hosting.InputText.IsVisibleAscii(uri, allowBackslash: false))
        {
            return "must be written in printable ASCII, without spaces or backslashes.";
        }

        if (uri.Contains('#', StringComparison.Ordinal))
        {
            return "must not contain a fragment (RFC 6749 §3.1.2).";
        }

        if (uri.Contains('*', StringComparison.Ordinal))
        {
            return "wildcards are not allowed; redirect URIs match exactly.";
        }

        if (parsed.Scheme == "http" && !parsed.IsLoopback)
        {
            return "must use https (http is allowed only for loopback addresses).";
        }

        return parsed.Scheme is "javascript" or "data" or "file" or "vbscript" ? "this scheme is not allowed." : null;
    }

    /// <summary>
    /// What is wrong with a redirect URI a client registers for itself (RFC 7591 §2, RFC 8252), or null. Stricter than
    /// <see cref="Problem"/>: https (RFC 9700 §4.1), http only on a loopback IP or localhost (RFC 8252 §7.3), or a
    /// private-use scheme of a native app (RFC 8252 §7.1, which recommends a reverse domain name such as
    /// com.example.app:/callback; single-word schemes such as cursor:// are accepted too, browser schemes are not).
    /// </summary>
    public static string? SelfRegisteredProblem(string? uri)
    {
        if (Problem(uri) is { } problem)
        {
            return problem;
        }

        var parsed = new Uri(uri!);
        if (!string.IsNullOrEmpty(parsed.UserInfo))
        {
            return "must not contain user information.";
        }

        if (parsed.Scheme == "http")
        {
            return SplitLoopback(uri!) is null ? "http is allowed only as http://127.0.0.1, http://[::1] or http://localhost (RFC 8252 §7.3)." : null;
        }

        if (parsed.Scheme == "https")
        {
            return string.IsNullOrEmpty(parsed.Host) ? "must name a host." : null;
        }

        return ForbiddenSchemes.Contains(parsed.Scheme) ? $"the scheme '{parsed.Scheme}' cannot be a private-use redirect scheme (RFC 8252 §7.1)." : null;
    }
}
