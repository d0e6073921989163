using System.Security.Cryptography;
using System.Text;

namespace Nexus.Server.Hosting;

/// <summary>
/// The deployment's bootstrap API_KEY, sent as X-API-Key: the admin API's credential (the ApiKey authentication
/// handler of ApiKeys/ reads it for the <see cref="NexusPolicies.AdminApiKey"/> policy, Observability for /metrics).
/// Both sides are hashed first so that the comparison is constant-time regardless of length.
/// </summary>
internal sealed class AdminApiKey
{
    public const string HeaderName = "X-API-Key";
    public const string Challenge = "ApiKey header=\"X-API-Key\"";
    private readonly byte[]? expectedHash;

    public AdminApiKey(NexusOptions options)
    {
        expectedHash = string.IsNullOrEmpty(options.ApiKey) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.ApiKey));
    }

    /// <summary>False when API_KEY is not set: the admin API is off.</summary>
    public bool IsConfigured => expectedHash is not null;

    /// <summary>The 401 problem for a request without the admin API key, or null when it carries it.</summary>
    public IResult? Refuse(HttpContext http) => IsPresented(http) ? null : Refusal(http);

    /// <summary>Whether the request carries the admin API key (one X-API-Key header with it).</summary>
    public bool IsPresented(HttpContext http)
    {
        var presented = http.Request.Headers[HeaderName];
        return expectedHash is not null && presented.Count == 1 && !string.IsNullOrEmpty(presented[0]) && Matches(presented[0]!);
    }

    /// <summary>Whether <paramref name="presented"/> is the admin API key.</summary>
    public bool Matches(string presented)
    {
        if (expectedHash is null)
        {
            return false;
        }

        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        return CryptographicOperations.FixedTimeEquals(hash, expectedHash);
    }

    /// <summary>The admin API's 401: admin_api_disabled while API_KEY is not set, otherwise unauthorized with the challenge.</summary>
    public IResult Refusal(HttpContext http)
    {
        if (expectedHash is null)
        {
            return Problems.Create(ProblemCatalog.AdminApiDisabled, "Set API_KEY to a long random value (openssl rand -base64 32) and send it as X-API-Key.");
        }

        http.Response.Headers.WWWAuthenticate = Challenge;
        return Problems.Create(ProblemCatalog.Unauthorized, "Send the deployment's API_KEY in the X-API-Key header.", title: "A valid admin API key is required.");
    }
}
