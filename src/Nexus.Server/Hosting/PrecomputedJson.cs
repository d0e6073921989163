using System.Security.Cryptography;
using System.Text;
using Microsoft.Net.Http.Headers;

namespace Nexus.Server.Hosting;

/// <summary>
/// A JSON document that changes rarely (discovery, the JWKS, health), serialized once and served from its bytes with
/// a strong ETag (RFC 9110 §8.8.3). A request whose If-None-Match names it is answered 304 Not Modified without a
/// body (RFC 9110 §13.1.2). Whoever owns the document makes a new instance when it changes (a key rotation), and so
/// a new ETag.
/// </summary>
internal sealed class PrecomputedJson
{
    private readonly byte[] bytes;

    public PrecomputedJson(string json)
    {
        Json = json;
        bytes = Encoding.UTF8.GetBytes(json);
        // 128 bits of the content's SHA-256: equal documents get equal tags on every instance.
        ETag = "\"" + Convert.ToBase64String(SHA256.HashData(bytes), 0, 16).TrimEnd('=').Replace('+', '-').Replace('/', '_') + "\"";
    }

    public string Json { get; }

    public string ETag { get; }

    /// <summary>Writes the document (or 304) with <paramref name="cacheControl"/>, if any.</summary>
    public Task WriteAsync(HttpContext context, string? cacheControl = null)
    {
        var request = context.Request;
        var response = context.Response;
        response.Headers.ETag = ETag;
        if (cacheControl is not null)
        {
            response.Headers.CacheControl = cacheControl;
        }

        // RFC 9110 §13.1.2: If-None-Match uses the weak comparison; "*" matches any current representation.
        if ((HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) && Matches(request.Headers.IfNoneMatch))
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }

        response.ContentType = "application/json";
        response.ContentLength = bytes.Length;
        return HttpMethods.IsHead(request.Method) ? Task.CompletedTask : response.Body.WriteAsync(bytes).AsTask();
    }

    private bool Matches(Microsoft.Extensions.Primitives.StringValues ifNoneMatch)
    {
        if (ifNoneMatch.Count == 0)
        {
            return false;
        }

        if (!EntityTagHeaderValue.TryParseList(ifNoneMatch, out var tags))
        {
            return false;
        }

        var mine = new EntityTagHeaderValue(ETag);
        foreach (var tag in tags)
        {
            if (tag.Equals(EntityTagHeaderValue.Any) || tag.Compare(mine, useStrongComparison: false))
            {
                return true;
            }
        }

        return false;
    }
}
