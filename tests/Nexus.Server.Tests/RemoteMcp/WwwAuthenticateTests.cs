using Nexus.Server.RemoteMcp;

namespace Nexus.Server.Tests.RemoteMcp;

public sealed class WwwAuthenticateTests
{
    [Theory]
    [InlineData("Bearer resource_metadata=\"https://a.example/prm\", scope=\"x y\"")]
    [InlineData("Bearer scope=\"x y\", error=\"invalid_token\", resource_metadata=\"https://a.example/prm\"")]
    [InlineData("Basic realm=\"r\", Bearer scope=\"x y\",resource_metadata=https://a.example/prm")]
    [InlineData("Negotiate abc==, bearer   SCOPE = \"x y\" , Resource_Metadata=\"https://a.example/prm\"")]
    public void TheBearerChallengesParametersAreReadInAnyOrderAndBesideOtherChallenges(string field)
    {
        var bearer = WwwAuthenticate.Bearer([field]);
        Assert.NotNull(bearer);
        Assert.Equal("https://a.example/prm", bearer["resource_metadata"]);
        Assert.Equal("x y", bearer["scope"]);
    }

    [Fact]
    public void AQuotedValueKeepsItsEscapedQuotesAndCommas()
    {
        var bearer = WwwAuthenticate.Bearer(["Basic realm=\"a\"", "Bearer error_description=\"a \\\"b\\\", c\", error=\"insufficient_scope\""]);
        Assert.Equal("a \"b\", c", bearer!["error_description"]);
        Assert.Equal("insufficient_scope", bearer["error"]);
    }

    [Fact]
    public void WithoutABearerChallengeThereIsNothing() => Assert.Null(WwwAuthenticate.Bearer(["Basic realm=\"a\""]));

    [Theory]
    [InlineData("https://mcp.example/mcp", "https://mcp.example/mcp", true)]
    [InlineData("https://mcp.example/", "https://mcp.example/mcp", true)]
    [InlineData("https://mcp.example", "https://mcp.example/mcp/v1", true)]
    [InlineData("https://mcp.example/mc", "https://mcp.example/mcp", false)]
    [InlineData("https://other.example/mcp", "https://mcp.example/mcp", false)]
    [InlineData("http://mcp.example/mcp", "https://mcp.example/mcp", false)]
    [InlineData("https://mcp.example:8443/mcp", "https://mcp.example/mcp", false)]
    [InlineData("https://mcp.example/mcp/deeper", "https://mcp.example/mcp", false)]
    public void TheResourceMustBeTheServerOrASameOriginPrefixOfIt(string resource, string server, bool matches) =>
        Assert.Equal(matches, McpDiscovery.ResourceMatches(resource, new Uri(server)));
}
