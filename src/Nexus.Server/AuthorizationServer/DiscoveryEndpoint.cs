using System.Text.Json.Nodes;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// RFC 8414 authorization server metadata, also served at the OpenID Connect discovery path (RFC 8414 §5).
/// It lists only what this server implements today, so client libraries never try a feature that is not there.
/// </summary>
internal static class DiscoveryEndpoint
{
    public static void MapDiscovery(this IEndpointRouteBuilder app)
    {
        app.MapGet("/.well-known/oauth-authorization-server", Metadata).WithTags("OAuth").WithoutSession();
        app.MapGet("/.well-known/openid-configuration", Metadata).WithTags("OAuth").WithoutSession();
    }

    private static Task Metadata(HttpContext context, Document document) => document.Json.WriteAsync(context, "public, max-age=300");

    /// <summary>The document depends only on the settings, so it is serialized once per instance, with an ETag.</summary>
    internal sealed class Document(NexusOptions options)
    {
        private readonly Lazy<PrecomputedJson> json = new(() => new PrecomputedJson(Build(options)));

        public PrecomputedJson Json => json.Value;
    }

    private static string Build(NexusOptions options)
    {
        var issuer = options.Issuer;
        var metadata = new JsonObject
        {
            // RFC 8414 §3.3: issuer MUST be identical to the URL the metadata was derived from.
            ["issuer"] = issuer,
            ["authorization_endpoint"] = issuer + AuthorizeEndpoint.Path,
            ["token_endpoint"] = issuer + TokenEndpoint.Path,
            ["jwks_uri"] = issuer + JwksEndpoint.Path,
            ["userinfo_endpoint"] = issuer + UserInfoEndpoint.Path,
            ["introspection_endpoint"] = issuer + IntrospectionEndpoint.Path,
            ["revocation_endpoint"] = issuer + RevocationEndpoint.Path,
            ["end_session_endpoint"] = issuer + EndSessionEndpoint.Path,
            ["scopes_supported"] = new JsonArray([.. Clients.ClientMetadata.SelfRegisteredScopes.Select(s => (JsonNode)s)]),
            ["response_types_supported"] = new JsonArray("code"),
            ["response_modes_supported"] = new JsonArray("query"),
            ["grant_types_supported"] = new JsonArray("authorization_code", "client_credentials", "refresh_token"),
            ["token_endpoint_auth_methods_supported"] = new JsonArray("client_secret_basic", "client_secret_post", "none"),
            ["introspection_endpoint_auth_methods_supported"] = new JsonArray("client_secret_basic", "client_secret_post"),
            ["revocation_endpoint_auth_methods_supported"] = new JsonArray("client_secret_basic", "client_secret_post", "none"),
            // RFC 7636 / RFC 9700 §2.1.1: S256 only.
            ["code_challenge_methods_supported"] = new JsonArray("S256"),
            // RFC 9207: authorization responses carry iss.
            ["authorization_response_iss_parameter_supported"] = true,
            ["subject_types_supported"] = new JsonArray("public"),
            ["id_token_signing_alg_values_supported"] = new JsonArray(Signing.IdTokenIssuer.Algorithm),
            ["claims_supported"] = new JsonArray("sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp", "email", "email_verified", "name", "preferred_username"),
            ["prompt_values_supported"] = new JsonArray("none", "login", "consent", "select_account"),
            // OpenID Connect Discovery §3: request_uri_parameter_supported is true when omitted; neither is supported.
            ["request_parameter_supported"] = false,
            ["request_uri_parameter_supported"] = false,
            // Client ID Metadata Document draft: an https client_id with a path is fetched as the client's metadata.
            ["client_id_metadata_document_supported"] = options.Registration.MetadataDocuments,
        };
        if (RegistrationEndpoint.IsEnabled(options))
        {
            // RFC 8414 §2 and RFC 7591 §3.
            metadata["registration_endpoint"] = issuer + RegistrationEndpoint.Path;
        }

        return metadata.ToJsonString();
    }
}
