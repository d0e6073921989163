using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Resources;

/// <summary>
/// RFC 8707 resource indicators. Nexus issues tokens for two resources: its own REST API (<see cref="NexusOptions.Audience"/>,
/// the default) and its MCP server (<see cref="NexusOptions.McpResource"/>). A token is for exactly one of them: the
/// resource becomes its <c>aud</c>, and each resource accepts only its own tokens, so a token given to an MCP client
/// can never be replayed against the REST API (no token passthrough, MCP authorization §Security).
/// </summary>
internal static class ResourceIndicators
{
    public const string Parameter = "resource";

    /// <summary>
    /// Validates one requested resource; returns the canonical resource or an invalid_target description.
    /// RFC 8707 §2: an absolute URI without a fragment; anything Nexus does not serve is invalid_target.
    /// </summary>
    public static (string? Resource, string? Error) Resolve(NexusOptions options, string requested)
    {
        if (!Uri.TryCreate(requested, UriKind.Absolute, out var uri) || requested.Contains('#', StringComparison.Ordinal))
        {
            return (null, "resource must be an absolute URI without a fragment (RFC 8707 §2).");
        }

        foreach (var known in new[] { options.McpResource, options.Audience })
        {
            // A trailing slash names the same resource (MCP authorization: canonical server URI).
            if (string.Equals(requested, known, StringComparison.Ordinal) || string.Equals(requested, known + "/", StringComparison.Ordinal))
            {
                return (known, null);
            }
        }

        return (null, $"Nexus issues tokens only for {options.McpResource} (its MCP server) and {options.Audience} (its API); '{Shorten(requested)}' is not one of them.");
    }

    /// <summary>Whether a resource a grant was bound to is one this Nexus issues tokens for now.</summary>
    public static bool IsServed(NexusOptions options, string resource) =>
        string.Equals(resource, options.Audience, StringComparison.Ordinal) || string.Equals(resource, options.McpResource, StringComparison.Ordinal);

    /// <summary>The resource a grant is bound to: the one requested, or Nexus's API when none was.</summary>
    public static string Effective(NexusOptions options, string? bound) => bound ?? options.Audience;

    /// <summary>
    /// The audience of a token requested at the token endpoint for a grant bound to <paramref name="bound"/>.
    /// RFC 8707 §2.2: the client may name the resource again, or a subset of the granted ones, never another one.
    /// Nexus binds a grant to one resource, so the only narrower request is that same resource.
    /// </summary>
    public static (string? Audience, string? Error) ForTokenRequest(NexusOptions options, string? bound, string? requested)
    {
        var effective = Effective(options, bound);
        if (requested is null)
        {
            return (effective, null);
        }

        var (resource, error) = Resolve(options, requested);
        if (resource is null)
        {
            return (null, error);
        }

        return resource == effective
            ? (resource, null)
            : (null, $"This grant was authorized for {effective}; a token for {resource} would widen it (RFC 8707 §2.2).");
    }

    private static string Shorten(string value) => value.Length > 100 ? value[..100] + "…" : value;
}
