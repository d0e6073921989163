using Nexus.Server.Credentials;

namespace Nexus.Server.Bridge;

/// <summary>Where the Bridge may send a connection's requests, and with what.</summary>
/// <param name="ApiBase">The provider's API base URL; requests may not leave its scheme, host and port, nor its path.</param>
/// <param name="RefreshAsync">For OAuth connections: a fresh credential after the provider answered 401, or null.</param>
/// <param name="InsufficientScopeAsync">
/// For MCP servers: what to do about the provider's 403 with error="insufficient_scope" (RFC 6750 §3.1), given the
/// Bearer challenge's scope and whether the request can be sent again (its body was buffered): the answer to give
/// instead (a step-up consent), or a token for the wider scopes to send the request once more with (a
/// machine-to-machine server), and the answer to give if the provider refuses that too. Null leaves the provider's
/// answer as it is.
/// </param>
internal sealed record BridgeTarget(Uri ApiBase, UpstreamCredential Credential, Func<CancellationToken, Task<UpstreamCredential?>>? RefreshAsync = null,
    Func<string?, bool, CancellationToken, Task<RemoteMcp.StepUpAnswer>>? InsufficientScopeAsync = null);
