using System.Security.Claims;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using Nexus.Server.Mcp;

namespace Nexus.Server.Tests.Mcp;

/// <summary>
/// The scope check inside the SDK's pipeline (<see cref="McpResource.RequireToolScope"/>), on the tool name as the SDK
/// read it. Over HTTP the gate answers first (McpServerTests); this is what stands if a request shape ever gets past it.
/// </summary>
public sealed class McpResourceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<(bool Ran, McpProtocolException? Refused)> CallAsync(string tool, params string[] scopes)
    {
        await using var server = McpServer.Create(new StreamServerTransport(Stream.Null, Stream.Null), new McpServerOptions());
        var request = new RequestContext<CallToolRequestParams>(server, new JsonRpcRequest { Method = RequestMethods.ToolsCall }, new CallToolRequestParams { Name = tool })
        {
            User = new ClaimsPrincipal(new ClaimsIdentity([new Claim(McpGate.ScopeClaim, string.Join(' ', scopes))], McpGate.AuthenticationType)),
        };
        var ran = false;
        var filtered = McpResource.RequireToolScope((_, _) =>
        {
            ran = true;
            return ValueTask.FromResult(new CallToolResult());
        });
        try
        {
            await filtered(request, Ct);
            return (ran, null);
        }
        catch (McpProtocolException e)
        {
            return (ran, e);
        }
    }

    [Theory]
    [InlineData("call_api")]
    [InlineData("CALL_API")]
    [InlineData("Call_Remote_Tool")]
    public async Task AToolWhoseScopeTheTokenLacksIsRefusedBeforeItRuns(string tool)
    {
        var (ran, refused) = await CallAsync(tool, McpResource.ReadScope);
        Assert.False(ran);
        Assert.NotNull(refused);
        Assert.Equal(McpErrorCode.InvalidRequest, refused.ErrorCode);
        Assert.Contains(McpResource.ApiScope, refused.Message);
    }

    [Theory]
    [InlineData("call_api", McpResource.ApiScope)]
    [InlineData("list_connections", McpResource.ReadScope)]
    // A name that is no tool: the SDK answers that itself.
    [InlineData("no_such_tool", McpResource.ReadScope)]
    public async Task AToolTheTokenAllowsRuns(string tool, string scope)
    {
        var (ran, refused) = await CallAsync(tool, scope);
        Assert.True(ran);
        Assert.Null(refused);
    }
}
