using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Connections;
using Nexus.Server.Providers;
using Nexus.Server.RemoteMcp;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.RemoteMcp;

/// <summary>
/// The scopes an MCP server names in its 403 insufficient_scope challenge are held to the rule an administrator's
/// are (at most 100 scope tokens, RFC 6749 §3.3): a hostile challenge arms no consent and changes nothing stored.
/// </summary>
public sealed class StepUpChallengeRulesTests(BrokerFixture shared) : IClassFixture<BrokerFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("more than 100 scopes")]
    [InlineData("a scope with a quote")]
    [InlineData("a scope of 201 characters")]
    public async Task AChallengeNamingScopesNexusWouldNotRequestIsRefusedAndTheConnectionStaysAsItWas(string challenge)
    {
        var provider = await shared.Kit.RegisterAsync("google");
        var (id, _) = await shared.Kit.ConnectAsync(provider, workspace: "ws-step-up-rules");
        var store = shared.Server.Services.GetRequiredService<ConnectionStore>();
        var before = (await store.FindAsync(id, Ct))!;
        var registered = (await shared.Server.Services.GetRequiredService<ProviderRegistry>().FindAsync(provider, Ct))!;
        var operation = await store.FindAuthorizationOperationAsync(id, Ct);
        var scope = challenge switch
        {
            // With the connection's own: 101.
            "more than 100 scopes" => string.Join(' ', Enumerable.Range(0, 101 - before.ScopeList.Count).Select(i => "scope" + i)),
            "a scope with a quote" => "files:read files\"write",
            _ => new string('s', 201),
        };

        var answer = Assert.IsType<ProblemHttpResult>((await shared.Server.Services.GetRequiredService<McpStepUp>()
            .StartAsync(before, registered, scope, canResend: false, Ct)).Answer);

        Assert.Equal("step_up_limit", answer.ProblemDetails.Extensions["code"]!.ToString());
        Assert.Equal(id, answer.ProblemDetails.Extensions["connection_id"]!.ToString());
        var after = (await store.FindAsync(id, Ct))!;
        Assert.Equal((before.Status, before.StateNonce, before.StateExpiresAt), (after.Status, after.StateNonce, after.StateExpiresAt));
        Assert.Equal(before.ScopeList, after.ScopeList);
        // No authorization round was counted for it.
        Assert.Equal(operation, await store.FindAuthorizationOperationAsync(id, Ct));
    }

    [Fact]
    public async Task AChallengeOfOneHundredScopesWithTheConnectionsIsStillAStepUp()
    {
        var provider = await shared.Kit.RegisterAsync("google");
        var (id, _) = await shared.Kit.ConnectAsync(provider, workspace: "ws-step-up-rules");
        var store = shared.Server.Services.GetRequiredService<ConnectionStore>();
        var before = (await store.FindAsync(id, Ct))!;
        var registered = (await shared.Server.Services.GetRequiredService<ProviderRegistry>().FindAsync(provider, Ct))!;
        var scope = string.Join(' ', Enumerable.Range(0, 100 - before.ScopeList.Count).Select(i => "scope" + i));

        var answer = Assert.IsType<ProblemHttpResult>((await shared.Server.Services.GetRequiredService<McpStepUp>()
            .StartAsync(before, registered, scope, canResend: false, Ct)).Answer);

        Assert.Equal("insufficient_scope", answer.ProblemDetails.Extensions["code"]!.ToString());
        Assert.NotNull(answer.ProblemDetails.Extensions["auth_url"]);
    }
}
