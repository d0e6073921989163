using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Connections;
using Nexus.Server.Mcp;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Mcp;

/// <summary>Which connection call_api and call_remote_tool use for a person and a service (McpApiCalls.CurrentAsync).</summary>
public sealed class McpApiCallsTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private static Connection Row(string person, string status) =>
        new("conn_" + Guid.NewGuid().ToString("N"), person, "github", status, "", "", null, 0, null, null, null, null, null, null, null, null, "test", 0, 0);

    [Theory]
    [InlineData("""{"echo":"ab/c+d=="}""")]
    [InlineData("""{"echo":"ab\/c+d=="}""")]
    [InlineData("""{"echo":"ab\/c\u002Bd\u003D\u003D"}""")]
    [InlineData("""{"echo":"ab/c\u002Bd\u003D\u003D"}""")]
    [InlineData("""{"echo":"ab\/c\u002bd=\u003d"}""")]
    [InlineData("echo=ab%2Fc%2Bd%3D%3D")]
    [InlineData("echo=ab%2fc+d==")]
    public void ACredentialInAnAnswerIsBlankedAsItIsAndAsJsonOrAUrlEscapesIt(string answer)
    {
        var blanked = McpApiCalls.Blank(answer, ["ab/c+d=="]);
        Assert.Contains("[credential removed by Nexus]", blanked, StringComparison.Ordinal);
        Assert.DoesNotContain("ab", blanked, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"echo":"pa\"ss\\w0rd\n!"}""")]
    [InlineData("""{"echo":"pa\u0022ss\u005cw0rd\u000a!"}""")]
    public void ACredentialWithQuotesBackslashesOrControlCharactersIsBlankedInJsonsShortEscapesToo(string answer)
    {
        var blanked = McpApiCalls.Blank(answer, ["pa\"ss\\w0rd\n!"]);
        Assert.Equal("""{"echo":"[credential removed by Nexus]"}""", blanked);
    }

    [Fact]
    public async Task CallsMadeAtOnceAllSeeAConnectionThatIsNotActiveNotOnlyTheOneThatLookedItUp()
    {
        var calls = fixture.Server.Services.GetRequiredService<McpApiCalls>();
        var person = "usr_" + Guid.NewGuid().ToString("N");
        var needsAttention = Row(person, ConnectionStatus.AttentionRequired);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lookups = 0;
        var firstStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        async Task<Connection?> Find()
        {
            if (Interlocked.Increment(ref lookups) == 1)
            {
                firstStarted.SetResult();
                await gate.Task;
            }

            return needsAttention;
        }

        // The second call arrives while the first one's lookup is in flight, and shares it.
        var first = calls.CurrentAsync(person, "github", Find, TestContext.Current.CancellationToken);
        await firstStarted.Task;
        var second = calls.CurrentAsync(person, "github", Find, TestContext.Current.CancellationToken);
        gate.SetResult();

        Assert.Equal(needsAttention.Id, (await first)?.Id);
        Assert.Equal(needsAttention.Id, (await second)?.Id);
    }
}
