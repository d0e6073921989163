using Microsoft.AspNetCore.Http.Features;

namespace Nexus.Server.Hosting;

/// <summary>
/// A route parameter decoded exactly once from the request's raw target. The server decodes a path before routing
/// except for %2F (so that an encoded slash cannot split a segment), which leaves a value that held both "%2F" and
/// "%25" ambiguous: a client ID metadata document's client_id is a URL, and "https://x/a%41" sent as
/// "https%3A%2F%2Fx%2Fa%2541" reaches the route as "https:%2F%2Fx%2Fa%41", which a second decoding turns into
/// another id ("https://x/aA"). Reading the segment as sent and decoding it once gives the id back.
/// </summary>
internal static class RawRouteValue
{
    /// <summary>
    /// The parameter <paramref name="name"/> (a whole path segment of the matched route, whose routed value is
    /// <paramref name="routed"/>) decoded once from the raw target. When the raw target cannot be lined up with the
    /// routed path (dot segments the server removed, an absolute-form target it could not read), the routed value
    /// decoded once more, as before: right for every id without a "%25".
    /// </summary>
    public static string Get(HttpContext context, string name, string routed) => FromRaw(context, name, routed) ?? Uri.UnescapeDataString(routed);

    private static string? FromRaw(HttpContext context, string name, string routed)
    {
        if (context.GetEndpoint() is not RouteEndpoint { RoutePattern: var pattern })
        {
            return null;
        }

        var index = -1;
        for (var i = 0; i < pattern.PathSegments.Count; i++)
        {
            if (pattern.PathSegments[i].Parts is [Microsoft.AspNetCore.Routing.Patterns.RoutePatternParameterPart { Name: var parameter }]
                && string.Equals(parameter, name, StringComparison.OrdinalIgnoreCase))
            {
                index = i;
                break;
            }
        }

        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (index < 0 || string.IsNullOrEmpty(raw))
        {
            return null;
        }

        // An absolute-form target (a request line "GET http://host/path", RFC 9112 §3.2.2): its path.
        if (raw[0] != '/' && Uri.TryCreate(raw, UriKind.Absolute, out var absolute))
        {
            raw = absolute.GetComponents(UriComponents.Path | UriComponents.KeepDelimiter, UriFormat.UriEscaped);
        }

        var path = raw.AsSpan();
        if (path.IsEmpty || path[0] != '/')
        {
            return null;
        }

        if (path.IndexOfAny('?', '#') is var end and >= 0)
        {
            path = path[..end];
        }

        // The path base (a proxy's prefix) comes first in the raw target; it holds no encoded slash either.
        var skip = index + (context.Request.PathBase.HasValue ? context.Request.PathBase.Value!.Count(c => c == '/') : 0);
        // RFC 3986 §5.2.4, as the server did before routing: "." and ".." segments (encoded dots included) removed, so
        // that the positions are the routed path's ("/A/../B" routes to B, whose position "A" holds in the raw target).
        var segments = new List<string>();
        foreach (var part in path[1..].ToString().Split('/'))
        {
            switch (DecodeAsServer(part))
            {
                case ".":
                    break;
                case "..":
                    if (segments.Count > 0)
                    {
                        segments.RemoveAt(segments.Count - 1);
                    }

                    break;
                default:
                    segments.Add(part);
                    break;
            }
        }

        if (skip >= segments.Count)
        {
            return null;
        }

        // Only when this is the segment routing read: decoded as the server decodes a path (all but %2F), it must be the
        // routed value. Dot segments in the raw target, which the server removed before routing, shift the positions.
        var segment = segments[skip];
        return string.Equals(DecodeAsServer(segment), routed, StringComparison.Ordinal) ? Uri.UnescapeDataString(segment) : null;
    }

    /// <summary>A raw path segment decoded as the server decodes a path: every escape but an encoded slash, kept as sent.</summary>
    private static string DecodeAsServer(string segment)
    {
        var decoded = new System.Text.StringBuilder(segment.Length);
        var from = 0;
        for (var at = segment.IndexOf("%2F", StringComparison.OrdinalIgnoreCase); at >= 0; at = segment.IndexOf("%2F", from, StringComparison.OrdinalIgnoreCase))
        {
            decoded.Append(Uri.UnescapeDataString(segment[from..at])).Append(segment, at, 3);
            from = at + 3;
        }

        return decoded.Append(Uri.UnescapeDataString(segment[from..])).ToString();
    }
}
