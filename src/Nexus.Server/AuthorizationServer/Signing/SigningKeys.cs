using System.Text.Json.Nodes;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Signing;

/// <summary>
/// The keys this instance signs and verifies with: an immutable snapshot swapped atomically on reload, so the
/// token endpoint reads it without locks. Reloaded periodically and on an unknown kid, so a rotation made by
/// another instance is picked up.
/// </summary>
internal sealed class SigningKeys(SigningKeyStore store, NexusOptions options, TimeProvider time) : IDisposable
{
    private sealed record Snapshot(IReadOnlyDictionary<string, SigningKey> ByKid, IReadOnlyDictionary<string, SigningKey> ActiveByAlg, Hosting.PrecomputedJson Jwks);

    private static readonly Snapshot Empty = new(new Dictionary<string, SigningKey>(), new Dictionary<string, SigningKey>(), new Hosting.PrecomputedJson("{\"keys\":[]}"));

    private readonly SemaphoreSlim reloadGate = new(1, 1);
    private volatile Snapshot current = Empty;
    private long lastUnknownKidReload;

    public string JwksJson => current.Jwks.Json;

    /// <summary>The JWKS as served: its bytes and ETag change when a key is added or retired, not at every reload.</summary>
    public Hosting.PrecomputedJson Jwks => current.Jwks;

    public IReadOnlyCollection<SigningKey> Published => (IReadOnlyCollection<SigningKey>)current.ByKid.Values;

    public SigningKey ActiveFor(string alg) =>
        current.ActiveByAlg.TryGetValue(alg, out var key) ? key : throw new InvalidOperationException($"No active {alg} signing key; Nexus has not finished starting.");

    public SigningKey AccessTokenKey => ActiveFor(options.AccessTokenSigningAlgorithm);

    public async Task ReloadAsync(CancellationToken ct = default)
    {
        await reloadGate.WaitAsync(ct);
        try
        {
            var previous = current;
            var keys = await store.LoadPublishedAsync(kid => previous.ByKid.GetValueOrDefault(kid), ct);
            var active = new Dictionary<string, SigningKey>();
            foreach (var key in keys.Where(k => k.RetiredAt is null).OrderBy(k => k.CreatedAt))
            {
                active[key.Alg] = key;
            }

            var jwks = new JsonObject { ["keys"] = new JsonArray(keys.Select(k => (JsonNode)k.PublicJwk.DeepClone()).ToArray()) };
            var json = jwks.ToJsonString();
            current = new Snapshot(keys.ToDictionary(k => k.Kid), active, json == previous.Jwks.Json ? previous.Jwks : new Hosting.PrecomputedJson(json));
        }
        finally
        {
            reloadGate.Release();
        }
    }

    /// <summary>Finds a verification key; an unknown kid triggers at most one reload per second.</summary>
    public async ValueTask<SigningKey?> FindAsync(string kid, CancellationToken ct)
    {
        if (current.ByKid.TryGetValue(kid, out var key))
        {
            return key;
        }

        var now = time.GetTimestamp();
        var last = Interlocked.Read(ref lastUnknownKidReload);
        if (time.GetElapsedTime(last, now) < TimeSpan.FromSeconds(1) || Interlocked.CompareExchange(ref lastUnknownKidReload, now, last) != last)
        {
            return null;
        }

        await ReloadAsync(ct);
        return current.ByKid.GetValueOrDefault(kid);
    }

    public void Dispose() => reloadGate.Dispose();

    /// <summary>Keeps the snapshot fresh on every instance.</summary>
    internal sealed class Refresher(SigningKeys keys, NexusOptions options, TimeProvider time, Data.DatabaseHealth database, ILogger<Refresher> logger) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.SigningKeyRefreshSeconds), time);
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await keys.ReloadAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException && Data.DatabaseHealth.IsOutage(e))
                {
                    // Keep serving with the keys we have; the outage is logged once.
                    database.ReportOutage(e);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Keep serving with the keys we have; the next tick tries again.
                    logger.LogWarning(e, "Could not reload signing keys");
                }
            }
        }
    }
}
