using Nexus.Server.Credentials;

namespace Nexus.Server.Bridge;

/// <summary>Where the Bridge may send a connection's requests, and with what.</summary>
/// <param name="ApiBase">The provider's API base URL; requests may not leave its scheme, host and port, nor its path.</param>
/// <param name="RefreshAsync">For OAuth connections: a fresh credential after the provider answered 401, or null.</param>
/// <param name="InsufficientScopeAsync">
/// For MCP servers: the answer to give instead of the provider's 403 with error="insufficient_scope" (RFC 6750 §3.1),
/// given the Bearer challenge's scope; null leaves the provider's answer as it is.
/// </param>
internal sealed record BridgeTarget(Uri ApiBase, UpstreamCredential Credential, Func<CancellationToken, Task<UpstreamCredential?>>? RefreshAsync = null,
    Func<string?, CancellationToken, Task<IResult>>? InsufficientScopeAsync = null);
