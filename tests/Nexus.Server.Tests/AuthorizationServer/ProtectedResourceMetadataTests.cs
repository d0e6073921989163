using System.Net;
using System.Text.Json;
using Nexus.Server.AuthorizationServer.Resources;
using Nexus.Server.Hosting;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>RFC 9728 metadata of the MCP server, the WWW-Authenticate helper /mcp uses, and what MCP clients need from RFC 8414 discovery.</summary>
public sealed class ProtectedResourceMetadataTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private NexusTestServer Server => fixture.Server;

    [Theory]
    [InlineData("/.well-known/oauth-protected-resource/mcp")]
    [InlineData("/.well-known/oauth-protected-resource")]
    public async Task TheMetadataNamesTheMcpResourceTheIssuerTheScopesAndTheHeaderMethod(string path)
    {
        using var response = await Server.Http.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var metadata = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(Server.Issuer + "/mcp", metadata.GetProperty("resource").GetString());
        Assert.Equal([Server.Issuer], metadata.GetProperty("authorization_servers").EnumerateArray().Select(e => e.GetString()!));
        Assert.Equal(["nexus:connections", "nexus:connect", "nexus:call"], metadata.GetProperty("scopes_supported").EnumerateArray().Select(e => e.GetString()!));
        Assert.Equal(["header"], metadata.GetProperty("bearer_methods_supported").EnumerateArray().Select(e => e.GetString()!));

        // The authorization server it names is the one whose metadata says the same issuer, character for character.
        var asMetadata = JsonDocument.Parse(await Server.Http.GetStringAsync("/.well-known/oauth-authorization-server")).RootElement;
        Assert.Equal(metadata.GetProperty("authorization_servers")[0].GetString(), asMetadata.GetProperty("issuer").GetString());
    }

    [Theory]
    [InlineData("/.well-known/oauth-authorization-server")]
    [InlineData("/.well-known/openid-configuration")]
    public async Task DiscoveryAdvertisesRegistrationMetadataDocumentsPkceAndTheMcpScopes(string path)
    {
        var metadata = JsonDocument.Parse(await Server.Http.GetStringAsync(path)).RootElement;
        Assert.Equal(Server.Issuer + "/oauth2/register", metadata.GetProperty("registration_endpoint").GetString());
        Assert.True(metadata.GetProperty("client_id_metadata_document_supported").GetBoolean());
        Assert.Equal(["S256"], metadata.GetProperty("code_challenge_methods_supported").EnumerateArray().Select(e => e.GetString()!));
        var scopes = metadata.GetProperty("scopes_supported").EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.Contains("nexus:call", scopes);
        Assert.Contains("openid", scopes);
        Assert.Contains("none", metadata.GetProperty("token_endpoint_auth_methods_supported").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public void TheChallengeHelperBuildsTheHeaderMcpClientsRead()
    {
        var options = new NexusOptions { BaseUrl = "https://nexus.example.com/" };
        Assert.Equal("https://nexus.example.com/mcp", options.McpResource);
        Assert.Equal(
            "Bearer resource_metadata=\"https://nexus.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"nexus:connections nexus:connect nexus:call\"",
            ResourceChallenge.ForMcp(options));
        Assert.Equal(
            "Bearer resource_metadata=\"https://nexus.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"nexus:connections nexus:connect nexus:call\", error=\"invalid_token\", error_description=\"The token has expired.\"",
            ResourceChallenge.ForMcp(options, ResourceChallenge.InvalidToken, "The token has expired."));

        // Step-up: the full set of scopes the call needs; a description can never break out of its quotes.
        Assert.Equal(
            "Bearer resource_metadata=\"https://nexus.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"nexus:connections nexus:call\", error=\"insufficient_scope\", error_description=\"needs 'more'''scope\"",
            ResourceChallenge.ForMcp(options, ResourceChallenge.InsufficientScope, "needs \"more\"\r\nscope", [McpScopes.Connections, McpScopes.Call]));
    }
}
