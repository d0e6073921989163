using System.Text.RegularExpressions;

namespace Nexus.Server.Providers;

/// <summary>
/// A further resource that one consent's refresh token can mint access tokens for (issue 15: Microsoft Entra ID, where
/// the refresh token of a sign-in obtains tokens for Microsoft Graph, SharePoint or Business Central by asking the
/// token endpoint for that resource's scopes). Read with <c>GET /v1/token/{id}?resource=NAME</c> and used by the Bridge
/// with the <c>Nexus-Resource</c> header; each resource's token is minted, cached and refreshed on its own.
/// </summary>
internal sealed record ProviderResource
{
    /// <summary>What the token request asks for (Entra: <c>https://graph.microsoft.com/.default</c>); may hold placeholders.</summary>
    public string[] Scopes { get; init; } = [];

    /// <summary>Where the Bridge sends requests made with this resource's token; null uses the provider's api_base_url.</summary>
    public string? ApiBaseUrl { get; init; }

    /// <summary>Plain words for people and the API reference.</summary>
    public string Description { get; init; } = "";
}

/// <summary>The rules for resource names and entries, shared by the catalog's validation and the API.</summary>
internal static partial class ProviderResources
{
    /// <summary>Why a catalog entry's resources are unusable, as messages; empty when they are fine.</summary>
    public static IEnumerable<string> Problems(CatalogEntry e)
    {
        if (e.Resources is not { Count: > 0 } resources)
        {
            yield break;
        }

        if (e.AuthMode != AuthModes.OAuth2 || e.Refresh?.Supported != true)
        {
            yield return "resources need an oauth2 entry whose refresh is supported (their tokens are minted with the refresh token).";
        }

        foreach (var (name, resource) in resources)
        {
            if (!Name().IsMatch(name))
            {
                yield return $"the resource name '{name}' must be lowercase letters, digits and '_' (at most 40), starting with a letter.";
            }

            if (resource.Scopes.Length == 0 || resource.Scopes.Any(string.IsNullOrWhiteSpace))
            {
                yield return $"the resource '{name}' needs at least one scope.";
            }

            if (string.IsNullOrWhiteSpace(resource.Description))
            {
                yield return $"the resource '{name}' needs a description.";
            }
        }
    }

    [GeneratedRegex("^[a-z][a-z0-9_]{0,39}$")]
    public static partial Regex Name();
}
