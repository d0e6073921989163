using Nexus.Server.Connections;
using Nexus.Server.RemoteMcp;

namespace Nexus.Server.Tests.RemoteMcp;

/// <summary>
/// How McpStepUp tells whether a step-up continues the connection's authorization operation or begins a new one
/// (issue 15: at most 3 authorization rounds per operation). The rounds through the Bridge, counted in the database,
/// are in RemoteMcpConnectTests; the conformance suite's auth/scope-retry-limit runs them against its own server.
/// </summary>
public sealed class McpStepUpTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 5, 8, 0, 0, TimeSpan.Zero);

    private static AuthorizationOperation Connect(string scopes) => new() { Scopes = scopes, Rounds = 1, RoundAt = Start.ToUnixTimeMilliseconds() };

    [Fact]
    public void AChallengeForScopesTheOperationAlreadyAskedForContinuesItUntilTheFourthRoundIsRefused()
    {
        // auth/scope-retry-limit: the connect asked for mcp:admin, and every challenge names mcp:admin again.
        var operation = Connect("mcp:admin offline_access");
        var second = McpStepUp.NextRound(operation, ["mcp:admin"], ["mcp:admin", "offline_access"], Start.AddMinutes(1))!;
        Assert.Equal(2, second.Rounds);
        var third = McpStepUp.NextRound(second, ["mcp:admin"], ["mcp:admin", "offline_access"], Start.AddMinutes(2))!;
        Assert.Equal(3, third.Rounds);
        Assert.Null(McpStepUp.NextRound(third, ["mcp:admin"], ["mcp:admin", "offline_access"], Start.AddMinutes(3)));
        // A challenge without scope asks for nothing new: the same operation.
        Assert.Null(McpStepUp.NextRound(third, [], ["mcp:admin"], Start.AddMinutes(3)));
    }

    [Fact]
    public void AChallengeForAScopeTheOperationNeverAskedForBeginsANewOperation()
    {
        var exhausted = new AuthorizationOperation { Scopes = "files:read", Rounds = 3, RoundAt = Start.ToUnixTimeMilliseconds() };
        var next = McpStepUp.NextRound(exhausted, ["files:read", "files:write"], ["files:read", "files:write"], Start.AddMinutes(1))!;
        Assert.Equal(1, next.Rounds);
        Assert.Equal("files:read files:write", next.Scopes);
        Assert.Equal(Start.AddMinutes(1).ToUnixTimeMilliseconds(), next.RoundAt);

        // The new operation's scopes are what its round asked for; a repeat of the same need continues it.
        Assert.Equal(2, McpStepUp.NextRound(next, ["files:write"], ["files:read", "files:write"], Start.AddMinutes(2))!.Rounds);
    }

    [Fact]
    public void AnOperationWhoseLatestRoundBeganLongerAgoThanTheWindowIsOverAndTheSameNeedBeginsANewOne()
    {
        var exhausted = new AuthorizationOperation { Scopes = "mcp:admin", Rounds = 3, RoundAt = Start.ToUnixTimeMilliseconds() };
        Assert.Null(McpStepUp.NextRound(exhausted, ["mcp:admin"], ["mcp:admin"], Start + McpStepUp.OperationWindow - TimeSpan.FromSeconds(1)));
        Assert.Equal(1, McpStepUp.NextRound(exhausted, ["mcp:admin"], ["mcp:admin"], Start + McpStepUp.OperationWindow)!.Rounds);
        Assert.Equal(1, McpStepUp.NextRound(exhausted, ["mcp:admin"], ["mcp:admin"], Start.AddDays(1))!.Rounds);
    }

    [Fact]
    public void AConnectionWithoutAnOperationBeginsOne()
    {
        // Connections made before rounds were counted per operation (migration 0014), or without a connect round.
        var next = McpStepUp.NextRound(new AuthorizationOperation(), ["a"], ["a", "b"], Start)!;
        Assert.Equal(1, next.Rounds);
        Assert.Equal("a b", next.Scopes);
    }
}
