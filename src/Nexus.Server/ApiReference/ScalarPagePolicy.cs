namespace Nexus.Server.ApiReference;

/// <summary>
/// The Content-Security-Policy of /docs/api. Scalar's HTML starts the reference from one inline module script whose
/// text depends on the page's path; instead of allowing every inline script ('unsafe-inline'), the page is buffered
/// and the policy lists the SHA-256 of each inline script it carries (CSP Level 3 §8.3, hash-source), so an injected
/// script would not run. Scalar adds its styles at run time (style elements and attributes), which no hash can name:
/// style-src keeps 'unsafe-inline', which lets a page be restyled but runs nothing.
/// </summary>
internal static partial class ScalarPagePolicy
{
    private const string Rest = "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
        + "form-action 'none'; frame-ancestors 'none'";

    [System.Text.RegularExpressions.GeneratedRegex("<script(?![^>]*\\ssrc\\s*=)[^>]*>(?<body>.*?)</script>", System.Text.RegularExpressions.RegexOptions.Singleline
        | System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex InlineScript();

    /// <summary>The policy for a page whose inline scripts are those of <paramref name="html"/>.</summary>
    public static string For(string html)
    {
        var hashes = InlineScript().Matches(html)
            .Select(m => $" 'sha256-{Convert.ToBase64String(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(m.Groups["body"].Value)))}'")
            .Distinct();
        return $"default-src 'none'; script-src 'self'{string.Concat(hashes)}; {Rest}";
    }

    public static async Task ApplyAsync(HttpContext context, RequestDelegate next)
    {
        var headers = context.Response.Headers;
        headers.XFrameOptions = "DENY";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        // The scripts, the redirect to the trailing slash, an error: no inline script to allow.
        headers.ContentSecurityPolicy = For("");
        if (!HttpMethods.IsGet(context.Request.Method) || Path.HasExtension(context.Request.Path.Value))
        {
            await next(context);
            return;
        }

        var original = context.Response.Body;
        using var buffer = new MemoryStream();
        context.Response.Body = buffer;
        try
        {
            await next(context);
        }
        finally
        {
            context.Response.Body = original;
        }

        if (context.Response.ContentType?.StartsWith("text/html", StringComparison.OrdinalIgnoreCase) == true && !context.Response.HasStarted)
        {
            headers.ContentSecurityPolicy = For(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
        }

        buffer.Position = 0;
        await buffer.CopyToAsync(original, context.RequestAborted);
    }
}
