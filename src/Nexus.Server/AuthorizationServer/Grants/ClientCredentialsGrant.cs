using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.AuthorizationServer.Resources;
using Nexus.Server.Hosting;
using Nexus.Server.AuthorizationServer.Signing;

namespace Nexus.Server.AuthorizationServer.Grants;

/// <summary>RFC 6749 §4.4: the client acts on its own behalf, so the token's subject is the client.</summary>
internal static class ClientCredentialsGrant
{
    public static TokenResult Handle(OAuthForm form, OAuthClient client, AccessTokenIssuer issuer, NexusOptions options)
    {
        if (form[ResourceIndicators.Parameter] is { } resource)
        {
            // RFC 8707 §2: a client acting for itself gets tokens for Nexus's API only; MCP tokens speak for a person.
            var (known, error) = ResourceIndicators.Resolve(options, resource);
            if (known != options.Audience)
            {
                return TokenResult.Fail(OAuthErrorCatalog.InvalidTarget, error ?? $"A client acting on its own behalf can get tokens only for {options.Audience}; {options.McpResource} needs a person's authorization.");
            }
        }

        string? scope;
        if (form["scope"] is { } requested)
        {
            // RFC 6749 §3.3: the server may narrow but never widen; anything outside the client's scopes is refused.
            var scopes = ScopeSyntax.Parse(requested);
            if (scopes is null || scopes.Count == 0)
            {
                return TokenResult.Fail(OAuthErrorCatalog.InvalidScope, "The scope parameter is malformed.");
            }

            if (scopes.FirstOrDefault(s => !client.Scopes.Contains(s)) is { } notGranted)
            {
                return TokenResult.Fail(OAuthErrorCatalog.InvalidScope, $"The scope '{notGranted}' is not granted to this App Client.");
            }

            scope = string.Join(' ', scopes);
        }
        else
        {
            scope = client.Scopes.Count == 0 ? null : string.Join(' ', client.Scopes);
        }

        var token = issuer.Issue(client.ClientId, client.ClientId, scope, client.AccessTokenLifetimeSeconds);
        return new TokenResult(200, AccessToken: token.Token, ExpiresIn: token.ExpiresIn, Scope: scope);
    }
}
