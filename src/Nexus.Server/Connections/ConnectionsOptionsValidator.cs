using Microsoft.Extensions.Options;
using Nexus.Server.Hosting;

namespace Nexus.Server.Connections;

/// <summary>ALLOWED_RETURN_URLS, checked at startup with the other settings (NexusOptionsValidator) by the policy that applies it.</summary>
internal sealed class ConnectionsOptionsValidator : IValidateOptions<NexusOptions>
{
    public ValidateOptionsResult Validate(string? name, NexusOptions options)
    {
        foreach (var entry in ReturnUrlPolicy.SplitEntries(options.AllowedReturnUrls))
        {
            if (!ReturnUrlPolicy.TryParseEntry(entry, out _))
            {
                return ValidateOptionsResult.Fail($"ALLOWED_RETURN_URLS must be a comma-separated list of absolute http(s) origins or URL prefixes without query or fragment, such as https://app.example.com or https://app.example.com/oauth/ (got '{entry}').");
            }
        }

        return ValidateOptionsResult.Success;
    }
}
