using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Nexus.Server.Connections;
using Nexus.Server.Connections.Refresh;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections.Refresh;

/// <summary>
/// Stopping an instance while a refresh is with the provider: the refresh runs detached from the request that started
/// it, and the provider that rotated the refresh token has used up the stored one, so the stop waits for the new one
/// to be stored.
/// </summary>
public sealed class RefreshShutdownTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task StoppingWhileARequestsRefreshIsWithTheProviderWaitsForItAndTheRotatedRefreshTokenIsKept()
    {
        var waiting = new LogSignal("refreshes in flight before stopping");
        await using var scene = await RefreshScene.StartAsync(configure: s => s["Logging:LogLevel:Nexus.Server.Connections.Refresh"] = "Information",
            services: s => s.AddSingleton<ILoggerProvider>(waiting));
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var family = Assert.Single(scene.Upstream.Families.Values);

        // A forced refresh (as after the Bridge's 401) whose caller gives up once the provider has rotated the tokens.
        var gate = scene.Upstream.RefreshGate = new Gate();
        var connection = await scene.Server.Services.GetRequiredService<ConnectionStore>().FindAsync(id, Ct);
        using var gaveUp = new CancellationTokenSource();
        var refresh = scene.Server.Services.GetRequiredService<ConnectionRefresher>().ForceRefreshAsync(connection!, gaveUp.Token);
        await gate.Arrived.WaitAsync(Patience, Ct);
        var rotated = family.Chain.Last();
        await gaveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => refresh);

        // The instance stops: it waits for the refresh, which has the provider's answer still to come.
        await StopWaitingForAsync(scene.Server, waiting, gate);

        // Another instance serves the rotated tokens and refreshes with the rotated refresh token.
        await using var next = await NexusTestServer.StartAsync(scene.Database, s =>
        {
            s["ENCRYPTION_KEY"] = scene.Server.EncryptionKey;
            s["API_KEY"] = scene.Server.ApiKey;
            s["ALLOWED_RETURN_URLS"] = BrokerFixture.ReturnUrl;
            s["Nexus:Refresh:BackgroundEnabled"] = "false";
        });
        using var kit = RefreshKit.For(next);
        Assert.Equal(rotated.AccessToken, await kit.TokenAsync(id));
        await kit.ExpectAsync(HttpMethod.Post, $"/v1/refresh/{id}", null, HttpStatusCode.OK);
        var last = scene.Upstream.RefreshCalls.Last();
        Assert.Equal(("rotated", rotated.RefreshToken), (last.Outcome, last.Presented?.RefreshToken));
        Assert.Equal(0, scene.Upstream.Reuses);
    }

    [Fact]
    public async Task StoppingWhileAResourceTokensMintIsWithTheAuthorizationServerWaitsForItAndTheRotatedRefreshTokenIsKept()
    {
        // Entra's further resources: a mint redeems the connection's single-use refresh token, like a refresh.
        var waiting = new LogSignal("refreshes in flight before stopping");
        var entra = new ResourceTokensTests.EntraFixture
        {
            Configure = s => s["Logging:LogLevel:Nexus.Server.Connections.Refresh"] = "Information",
            Services = s => s.AddSingleton<ILoggerProvider>(waiting),
        };
        await entra.InitializeAsync();
        await using var _ = entra;
        var (id, _) = await entra.Kit.ConnectAsync(ResourceTokensTests.EntraFixture.Provider, workspace: "ws-" + Guid.NewGuid().ToString("N")[..8]);

        // A read of the short-lived resource's token whose caller gives up once the mint is at the authorization server.
        var gate = entra.Entra.MintGate = new Gate();
        using var gaveUp = new CancellationTokenSource();
        using var request = entra.Kit.Gateway(HttpMethod.Get, $"/v1/token/{id}?resource=short");
        var read = entra.Server.Http.SendAsync(request, gaveUp.Token);
        await gate.Arrived.WaitAsync(Patience, Ct);
        await gaveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read);

        // The instance stops: it waits for the mint, whose answer (and rotated refresh token) is still to come.
        await StopWaitingForAsync(entra.Server, waiting, gate);

        // Another instance mints with the rotated refresh token: none is presented twice.
        await using var next = await NexusTestServer.StartAsync(entra.Database, s =>
        {
            s["ENCRYPTION_KEY"] = entra.Server.EncryptionKey;
            s["API_KEY"] = entra.Server.ApiKey;
            s["ALLOWED_RETURN_URLS"] = "https://app.example.test/oauth/";
            s["Nexus:Refresh:BackgroundEnabled"] = "false";
        }, services: s => s.AddSingleton(entra.Catalog));
        var (status, body) = await new BrokerKit(next, null!).SendAsync(HttpMethod.Get, $"/v1/token/{id}?resource=short");
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.StartsWith("at-short-", body.GetProperty("credentials").GetProperty("access_token").GetString());
        Assert.Equal(0, entra.Entra.ReusedRefreshTokens);
    }

    /// <summary>
    /// Stops the server while <paramref name="gate"/> holds a call to the provider: the stop says it waits and does not
    /// end; once the gate lets the call go on, the stop ends.
    /// </summary>
    private static async Task StopWaitingForAsync(NexusTestServer server, LogSignal waiting, Gate gate)
    {
        var stopping = server.DisposeAsync().AsTask();
        Assert.Same(waiting.Logged, await Task.WhenAny(waiting.Logged, stopping).WaitAsync(Patience, Ct));
        Assert.False(stopping.IsCompleted);
        gate.Release();
        await stopping.WaitAsync(Patience, Ct);
    }

    /// <summary>Completes when a log line containing the text is written.</summary>
    private sealed class LogSignal(string text) : ILoggerProvider, ILogger
    {
        private readonly TaskCompletionSource logged = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Logged => logged.Task;

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (formatter(state, exception).Contains(text, StringComparison.Ordinal))
            {
                logged.TrySetResult();
            }
        }

        public void Dispose()
        {
        }
    }
}
