using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.Hosting;

namespace Nexus.Server.Providers;

/// <summary>
/// Validates a custom provider of one auth mode (<c>oauth2</c>, <c>api_key</c>, <c>basic_auth</c>, <c>aws_sigv4</c>)
/// and resolves it into its configuration; <see cref="ProviderRegistration"/> picks the validator by auth_mode.
/// </summary>
internal interface IProviderModeValidator
{
    string AuthMode { get; }

    /// <summary>Turns a request (and, for PATCH, the stored provider) into a resolved configuration, adding field errors.</summary>
    Task<ProviderResolution> ResolveAsync(ProviderRequest body, Provider? existing, string[]? scopes, Dictionary<string, string[]> errors, CancellationToken ct);
}

/// <summary>A provider's resolved configuration, or the problem to answer (Error) when the configuration could not be found out.</summary>
internal sealed record ProviderResolution(ProblemHttpResult? Error, ProviderConfig? Config, string? DisplayName, Dictionary<string, string>? Placeholders, string[]? Scopes,
    string? AuthMode = AuthModes.OAuth2)
{
    public static readonly ProviderResolution None = new(null, null, null, null, null);
}

/// <summary>Rules more than one auth mode applies.</summary>
internal static class ProviderRules
{
    /// <summary>Headers Nexus sets itself or that would change the meaning of the token request.</summary>
    public static readonly HashSet<string> ReservedHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Authorization", "Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection", "Cookie",
    };

    /// <summary>Authorization parameters that the broker owns; letting a registration override them would break the flow.</summary>
    public static readonly HashSet<string> ReservedAuthorizationParams = new(StringComparer.Ordinal)
    {
        "response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method",
    };

    public static void AddAwsRoleErrors(Dictionary<string, string> aws, UpstreamPolicy policy, Dictionary<string, string[]> errors)
    {
        foreach (var (field, message) in AwsRoleConfig.Problems(aws, policy.Check))
        {
            errors[field] = [message];
        }
    }
}
