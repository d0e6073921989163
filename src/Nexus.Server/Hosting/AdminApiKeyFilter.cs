using System.Security.Cryptography;
using System.Text;

namespace Nexus.Server.Hosting;

/// <summary>
/// Guards /v1/admin with the bootstrap API_KEY sent as X-API-Key. Both sides are hashed first so that the
/// comparison is constant-time regardless of length.
/// </summary>
internal sealed class AdminApiKeyFilter : IEndpointFilter
{
    public const string HeaderName = "X-API-Key";
    private readonly byte[]? expectedHash;

    public AdminApiKeyFilter(NexusOptions options)
    {
        expectedHash = string.IsNullOrEmpty(options.ApiKey) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.ApiKey));
    }

    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next) =>
        Refuse(context.HttpContext) is { } refusal ? ValueTask.FromResult<object?>(refusal) : next(context);

    /// <summary>The 401 problem for a request without the admin API key, or null when it carries it.</summary>
    public IResult? Refuse(HttpContext http)
    {
        if (expectedHash is null)
        {
            return Problems.Create(ProblemCatalog.AdminApiDisabled, "Set API_KEY to a long random value (openssl rand -base64 32) and send it as X-API-Key.");
        }

        var presented = http.Request.Headers[HeaderName];
        if (presented.Count != 1 || string.IsNullOrEmpty(presented[0]) || !Matches(presented[0]!))
        {
            http.Response.Headers.WWWAuthenticate = "ApiKey header=\"X-API-Key\"";
            return Problems.Create(ProblemCatalog.Unauthorized, "Send the deployment's API_KEY in the X-API-Key header.", title: "A valid admin API key is required.");
        }

        return null;
    }

    private bool Matches(string presented)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        return CryptographicOperations.FixedTimeEquals(hash, expectedHash);
    }
}
