using System.Globalization;

namespace Nexus.Server.Hosting;

/// <summary>Adds Retry-After (RFC 9110 §10.2.3) to a problem response.</summary>
internal sealed class RetryAfterResult(int seconds, IResult inner) : IResult
{
    public Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        return inner.ExecuteAsync(httpContext);
    }
}
