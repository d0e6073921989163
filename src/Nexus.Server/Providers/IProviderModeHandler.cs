using Microsoft.AspNetCore.Http.HttpResults;

namespace Nexus.Server.Providers;

/// <summary>
/// A component that owns an auth mode whose providers are found out rather than described (RemoteMcp's
/// <c>mcp_oauth2</c>: an MCP server given by URL alone). The admin API hands registrations and changes of such providers
/// to it, so Providers does not depend on the components built on top of it.
/// </summary>
internal interface IProviderModeHandler
{
    /// <summary>The <c>auth_mode</c> this handler owns.</summary>
    string AuthMode { get; }

    Task<(Provider? Provider, ProblemHttpResult? Failure)> RegisterAsync(ProviderRequest body, CancellationToken ct);

    Task<(Provider? Provider, ProblemHttpResult? Failure)> UpdateAsync(Provider existing, ProviderRequest body, CancellationToken ct);

    /// <summary>The provider's token endpoint answered <c>invalid_client</c>: a registration Nexus made itself is made anew for the next consent.</summary>
    Task ClientRejectedAsync(Provider provider, CancellationToken ct);
}
