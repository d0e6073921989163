using System.Diagnostics;
using System.Diagnostics.Metrics;
using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Hosting;
using OpenTelemetry;

namespace Nexus.Server.Observability;

/// <summary>
/// Nexus's metrics (meter "Nexus"). Counters and histograms are recorded where the work happens; the gauges (connections
/// by status, key ages) are read when an exporter collects, connections from one cached GROUP BY at most every 10 s.
/// Tag values come from short fixed lists (grant types, outcomes, statuses, provider names an administrator
/// registered), never from request input, so no caller can blow up the number of series.
/// </summary>
internal sealed class NexusMetrics
{
    private static readonly TimeSpan ConnectionCountsMaxAge = TimeSpan.FromSeconds(10);

    private readonly Counter<long> tokensIssued;
    private readonly Counter<long> credentialReads;
    private readonly Counter<long> refreshes;
    private readonly Histogram<double> refreshDuration;
    private readonly Counter<long> bridgeRequests;
    private readonly Histogram<double> bridgeOverhead;
    private readonly Histogram<double> bridgeUpstream;
    private readonly Counter<long> webhookDeliveries;
    private readonly IServiceProvider services;
    private readonly object countsGate = new();
    private (long At, List<Measurement<long>> Values)? counts;

    public NexusMetrics(IMeterFactory meters, IServiceProvider services, IEnumerable<IGaugeSource> gauges)
    {
        this.services = services;
        var meter = meters.Create(NexusTelemetry.Name);
        tokensIssued = meter.CreateCounter<long>("nexus.tokens.issued", "{request}",
            "Token endpoint requests by grant type and outcome (issued, or the RFC 6749 error code).");
        credentialReads = meter.CreateCounter<long>("nexus.credentials.reads", "{read}",
            "Gateway credential reads (GET /v1/token/{id}) by outcome.");
        refreshes = meter.CreateCounter<long>("nexus.refreshes", "{refresh}",
            "Refresh-token grants sent to providers, by provider and outcome (succeeded, rejected, failed).");
        refreshDuration = meter.CreateHistogram<double>("nexus.refresh.duration", "s",
            "Duration of provider refresh calls, by provider and outcome.");
        bridgeRequests = meter.CreateCounter<long>("nexus.bridge.requests", "{request}",
            "Bridge requests by credential strategy and the provider's status code (none: no answer).");
        bridgeOverhead = meter.CreateHistogram<double>("nexus.bridge.overhead", "s",
            "Time a Bridge request spent in Nexus, excluding the wait for and the streaming of the provider's answer.");
        bridgeUpstream = meter.CreateHistogram<double>("nexus.bridge.upstream.duration", "s",
            "Time a Bridge request spent waiting for and streaming the provider's answer, by credential strategy and the provider's status code.");
        webhookDeliveries = meter.CreateCounter<long>("nexus.webhook.deliveries", "{delivery}",
            "Webhook delivery attempts by event type and outcome (delivered, failed).");
        meter.CreateObservableGauge("nexus.connections", ConnectionCounts, "{connection}", "Connections by status.");
        foreach (var gauge in gauges)
        {
            gauge.Register(meter);
        }
    }

    public void TokenRequest(string grant, string outcome) =>
        tokensIssued.Add(1, new KeyValuePair<string, object?>("grant_type", grant), new KeyValuePair<string, object?>("outcome", outcome));

    public void CredentialRead(int status) => credentialReads.Add(1, new KeyValuePair<string, object?>("outcome", ReadOutcome(status)));

    public void Refresh(string provider, string outcome, TimeSpan elapsed)
    {
        var tags = new TagList { { "provider", provider }, { "outcome", outcome } };
        refreshes.Add(1, tags);
        refreshDuration.Record(elapsed.TotalSeconds, tags);
    }

    /// <summary>
    /// One Bridge request: counted, Nexus's own time, and the provider's time (in place of HttpClient's
    /// http.client.request.duration, which the Bridge's handler does not record: <see cref="UnexportedMeters"/>).
    /// </summary>
    public void BridgeRequest(string strategy, int? upstreamStatus, TimeSpan overhead, TimeSpan upstream)
    {
        var byStrategy = new KeyValuePair<string, object?>("strategy", strategy);
        var byStatus = new KeyValuePair<string, object?>("upstream_status", upstreamStatus is { } s ? StatusText(s) : "none");
        bridgeRequests.Add(1, byStrategy, byStatus);
        bridgeOverhead.Record(overhead.TotalSeconds, byStrategy);
        if (upstreamStatus is not null)
        {
            bridgeUpstream.Record(upstream.TotalSeconds, byStrategy, byStatus);
        }
    }

    public void WebhookDelivery(string eventType, bool delivered) =>
        webhookDeliveries.Add(1, new KeyValuePair<string, object?>("event", eventType), new KeyValuePair<string, object?>("outcome", delivered ? "delivered" : "failed"));

    private static string ReadOutcome(int status) => status switch
    {
        < 300 => "ok",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "not_active",
        503 => "unavailable",
        _ => "error",
    };

    private static readonly string[] StatusTexts = [.. Enumerable.Range(0, 600).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))];

    private static string StatusText(int status) => status is >= 0 and < 600 ? StatusTexts[status] : "other";

    private IEnumerable<Measurement<long>> ConnectionCounts()
    {
        var now = Stopwatch.GetTimestamp();
        lock (countsGate)
        {
            if (counts is { } cached && Stopwatch.GetElapsedTime(cached.At, now) < ConnectionCountsMaxAge)
            {
                return cached.Values;
            }
        }

        List<Measurement<long>> values;
        try
        {
            // A collection is not a request: its query gets no span of its own.
            using var quiet = SuppressInstrumentationScope.Begin();
            values = LoadConnectionCountsAsync().WaitAsync(TimeSpan.FromSeconds(2)).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is TimeoutException || DatabaseHealth.IsOutage(e))
        {
            return counts?.Values ?? [];
        }

        lock (countsGate)
        {
            counts = (now, values);
        }

        return values;
    }

    private async Task<List<Measurement<long>>> LoadConnectionCountsAsync()
    {
        var db = services.GetRequiredService<NexusDatabase>();
        await using var connection = await db.OpenAsync();
        var rows = await connection.QueryAsync<(string Status, long Count)>("SELECT status, COUNT(*) FROM connections GROUP BY status");
        return [.. rows.Select(r => new Measurement<long>(r.Count, new KeyValuePair<string, object?>("status", r.Status)))];
    }
}
