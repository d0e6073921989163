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
    /// <summary>The parameter <paramref name="name"/>, a whole path segment of the matched route, decoded once; null when there is none.</summary>
    public static string? Get(HttpContext context, string name)
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
        if (index < 0 || string.IsNullOrEmpty(raw) || raw[0] != '/')
        {
            return null;
        }

        var path = raw.AsSpan();
        if (path.IndexOfAny('?', '#') is var end and >= 0)
        {
            path = path[..end];
        }

        // The path base (a proxy's prefix) comes first in the raw target; it holds no encoded slash either.
        var skip = index + (context.Request.PathBase.HasValue ? context.Request.PathBase.Value!.Count(c => c == '/') : 0);
        var segments = path[1..].ToString().Split('/');
        return skip < segments.Length ? Uri.UnescapeDataString(segments[skip]) : null;
    }
}
