using System.Globalization;
using System.Text;

namespace Nexus.Sdk.Tests;

/// <summary>
/// An HTTP/1.1 request parsed from its raw text: the <c>.req</c> files of the AWS SigV4 test suite
/// (lines separated by LF, <c>Name:value</c> headers) or the bytes an <see cref="HttpClient"/> sent (CRLF).
/// </summary>
internal sealed record RawHttpRequest(string Method, string Target, IReadOnlyList<KeyValuePair<string, string>> Headers, string Body)
{
    public static RawHttpRequest Parse(string raw)
    {
        var lines = raw.Split('\n');
        string requestLine = lines[0].TrimEnd('\r');

        // "METHOD target HTTP/1.1": the target is everything between the first and the last space.
        int firstSpace = requestLine.IndexOf(' ', StringComparison.Ordinal);
        int lastSpace = requestLine.LastIndexOf(' ');
        string method = requestLine[..firstSpace];
        string target = requestLine[(firstSpace + 1)..lastSpace];

        var headers = new List<KeyValuePair<string, string>>();
        int index = 1;
        for (; index < lines.Length; index++)
        {
            string line = lines[index].TrimEnd('\r');
            if (line.Length == 0)
            {
                index++;
                break;
            }

            if (line[0] is ' ' or '\t' && headers.Count > 0)
            {
                // An obsolete folded continuation line: it continues the previous header's value.
                var previous = headers[^1];
                headers[^1] = new(previous.Key, previous.Value + " " + line.Trim());
                continue;
            }

            int colon = line.IndexOf(':', StringComparison.Ordinal);
            headers.Add(new(line[..colon], line[(colon + 1)..]));
        }

        string body = index < lines.Length ? string.Join('\n', lines[index..]) : string.Empty;
        return new RawHttpRequest(method, target, headers, body);
    }

    public string? Header(string name)
    {
        foreach (var header in Headers)
        {
            if (string.Equals(header.Key, name, StringComparison.OrdinalIgnoreCase))
            {
                return header.Value.Trim();
            }
        }

        return null;
    }

    /// <summary>
    /// The absolute URI of the request, with its path and query exactly as written: .NET's own canonicalization
    /// (which removes dot segments, for instance) is disabled, so that the signer is the one doing it.
    /// </summary>
    public Uri Uri(string scheme = "https") =>
        new($"{scheme}://{Header("Host")}{Target}", new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });

    /// <summary>The signing time, from the request's <c>X-Amz-Date</c> header.</summary>
    public DateTimeOffset AmzDate =>
        DateTimeOffset.ParseExact(Header("X-Amz-Date")!, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    public byte[] BodyBytes => Encoding.UTF8.GetBytes(Body);

    public RawHttpRequest WithoutHeader(string name) =>
        this with { Headers = [.. Headers.Where(h => !string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase))] };

    public RawHttpRequest WithHeader(string name, string value) =>
        this with
        {
            Headers = [.. Headers.Select(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase) ? new(h.Key, value) : h)],
        };
}
