using Microsoft.Extensions.DependencyInjection;
namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// One refresh test's world: a <see cref="RotatingProvider"/>, a Nexus test server (own database, a clock the test
/// can move) with a provider registered for it, and a webhook receiver subscribed to every event.
/// </summary>
public sealed class RefreshScene : IAsyncDisposable
{
    private RefreshScene(RotatingProvider upstream, TestDatabase database, NexusTestServer server, WebhookReceiver hooks)
    {
        Upstream = upstream;
        Database = database;
        Server = server;
        Hooks = hooks;
        Kit = RefreshKit.For(server);
    }

    public RotatingProvider Upstream { get; }

    public TestDatabase Database { get; }

    public NexusTestServer Server { get; }

    public RefreshKit Kit { get; }

    public WebhookReceiver Hooks { get; }

    /// <summary>The signing secret of the webhook pointing at <see cref="Hooks"/>.</summary>
    public string WebhookSecret { get; private set; } = "";

    /// <summary>The name of the provider registered for <see cref="Upstream"/>.</summary>
    public string Provider { get; private set; } = "";

    /// <summary>
    /// Starts everything. The background refresher is off unless <paramref name="background"/>, so that a test
    /// sees exactly the refreshes its reads cause; when on, it looks every second.
    /// </summary>
    public static async Task<RefreshScene> StartAsync(bool background = false, Action<Dictionary<string, string?>>? configure = null, object? provider = null,
        Action<Microsoft.Extensions.DependencyInjection.IServiceCollection>? services = null)
    {
        var upstream = await RotatingProvider.StartAsync();
        var database = await TestDatabase.CreateAsync();
        var server = await NexusTestServer.StartAsync(database, s =>
        {
            s["ALLOWED_RETURN_URLS"] = BrokerFixture.ReturnUrl;
            s["Nexus:Refresh:BackgroundEnabled"] = background ? "true" : "false";
            s["Nexus:Refresh:IntervalSeconds"] = "1";
            configure?.Invoke(s);
        }, services: services);
        var hooks = await WebhookReceiver.StartAsync();
        var scene = new RefreshScene(upstream, database, server, hooks);
        (_, scene.WebhookSecret) = await scene.Kit.WebhookAsync(hooks.Url);
        scene.Provider = await scene.Kit.RegisterAsync(upstream, provider);
        return scene;
    }

    /// <summary>
    /// Waits until the background refresher has made two full passes from now and has no refresh in flight: the
    /// second pass started after the call, so it saw the current state; anything it started has finished. After this,
    /// "no refresh happened" is an observation, not a guess.
    /// </summary>
    public async Task RefresherSettledAsync()
    {
        var worker = Server.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<Nexus.Server.Connections.Refresh.RefreshWorker>().Single();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await worker.Passes.WaitAsync(2, timeout.Token);
        await RefreshKit.EventuallyAsync(() => Task.FromResult(worker.Running == 0), "no refresh in flight");
    }

    /// <summary>Waits until the webhook dispatcher has made two full rounds from now: every delivery due before the call has been attempted.</summary>
    public async Task WebhooksSettledAsync()
    {
        var dispatcher = Server.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<Nexus.Server.Notifications.WebhookDispatcher>().Single();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await dispatcher.Passes.WaitAsync(2, timeout.Token);
    }

    /// <summary>One column of a connection's row, as stored (the refresh bookkeeping is not part of the API).</summary>
    public async Task<long?> ColumnAsync(string connectionId, string column) =>
        await Database.ScalarAsync($"SELECT {column} FROM connections WHERE id = @id", ("id", connectionId)) is { } value ? Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture) : null;

    /// <summary>Nexus's clock, in Unix ms (it may have been moved forward).</summary>
    public long NexusNow => Server.Time.GetUtcNow().ToUnixTimeMilliseconds();

    public async ValueTask DisposeAsync()
    {
        Kit.Dispose();
        await Server.DisposeAsync();
        await Database.DisposeAsync();
        await Hooks.DisposeAsync();
        await Upstream.DisposeAsync();
    }
}
