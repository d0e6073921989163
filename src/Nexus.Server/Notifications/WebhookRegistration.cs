using Nexus.Server.Hosting;

namespace Nexus.Server.Notifications;

/// <summary>A webhook as stored, with its signing secret (shown once); on failure, the field errors.</summary>
internal sealed record WebhookCreation(Webhook? Webhook, string? Secret, Dictionary<string, string[]> Errors);

/// <summary>PATCH /v1/admin/webhooks/{id}: what to change; an absent member is left as it is.</summary>
internal sealed record WebhookUpdate(string? Url = null, string[]? Events = null, bool? Disabled = null);

/// <summary>POST /v1/admin/webhooks/{id}/secret: how long the replaced secret goes on signing (default a day).</summary>
internal sealed record WebhookSecretRotation(int? OverlapSeconds = null);

/// <summary>A change to a webhook: the webhook as it now is (and its new secret, for a rotation); null when there is no such webhook, or the field errors.</summary>
internal sealed record WebhookChange(Webhook? Webhook, string? Secret, Dictionary<string, string[]> Errors);

/// <summary>
/// Adding and changing a webhook, whoever asks: /v1/admin/webhooks and the dashboard's Site management › Webhooks both
/// call this, so a URL one refuses the other refuses too.
/// </summary>
internal sealed class WebhookRegistration(WebhookStore store, UpstreamPolicy policy)
{
    /// <summary>How long a replaced secret goes on signing unless the rotation says otherwise.</summary>
    public static readonly TimeSpan DefaultOverlap = TimeSpan.FromDays(1);

    /// <summary>The longest overlap a rotation may ask for.</summary>
    public static readonly TimeSpan MaxOverlap = TimeSpan.FromDays(7);

    /// <summary>Changes the URL and events when given (the same rules as <see cref="CreateAsync"/>), and pauses or resumes the webhook.</summary>
    public async Task<WebhookChange> UpdateAsync(string id, WebhookUpdate body, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        var url = body.Url is null ? null : ValidUrl(body.Url, errors);
        var events = body.Events is null ? null : ValidEvents(body.Events, errors);
        if (errors.Count > 0)
        {
            return new(null, null, errors);
        }

        return new(await store.UpdateAsync(id, url, events, body.Disabled, ct), null, errors);
    }

    /// <summary>A new signing secret (shown once); the replaced one signs beside it for the overlap asked (0: it stops at once).</summary>
    public async Task<WebhookChange> RotateSecretAsync(string id, WebhookSecretRotation body, CancellationToken ct)
    {
        var overlap = body.OverlapSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : DefaultOverlap;
        if (overlap < TimeSpan.Zero || overlap > MaxOverlap)
        {
            return new(null, null, new() { ["overlap_seconds"] = [$"The overlap_seconds is 0 (the replaced secret stops at once) to {(int)MaxOverlap.TotalSeconds} (7 days)."] });
        }

        return await store.RotateSecretAsync(id, overlap, ct) is { } rotated ? new(rotated.Webhook, rotated.Secret, []) : new(null, null, []);
    }

    public async Task<WebhookCreation> CreateAsync(WebhookRequest body, CancellationToken ct)
    {
        var (url, events, errors) = Validate(body);
        if (errors.Count > 0)
        {
            return new(null, null, errors);
        }

        var (webhook, secret) = await store.CreateAsync(url!, events, string.IsNullOrWhiteSpace(body.WorkspaceId) ? null : body.WorkspaceId.Trim(), ct);
        return new(webhook, secret, errors);
    }

    /// <summary>
    /// A webhook URL obeys the same rule as a provider URL (<see cref="UpstreamPolicy"/>): https, or plain
    /// http to loopback only where Nexus__AllowInsecureUpstreams allows it. Where it may connect is checked again at
    /// delivery time, after DNS resolution (<see cref="OutboundNetworkGuard"/>).
    /// </summary>
    private (string? Url, string[] Events, Dictionary<string, string[]> Errors) Validate(WebhookRequest body)
    {
        var errors = new Dictionary<string, string[]>();
        var url = ValidUrl(body.Url, errors);
        var events = ValidEvents(body.Events is null || body.Events.Length == 0 ? ["*"] : body.Events, errors);

        // The same rule as every other workspace id (request-connection's, an API key's); one that breaks it matches no connection.
        if (!string.IsNullOrWhiteSpace(body.WorkspaceId) && !ApiKeys.WorkspaceIds.IsValid(body.WorkspaceId.Trim()))
        {
            errors["workspace_id"] = ["The workspace_id is 1 to 200 characters: letters, digits and _ . : @ + -."];
        }

        return (url, events, errors);
    }

    private string? ValidUrl(string? url, Dictionary<string, string[]> errors)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || policy.Check(url) is not null)
        {
            errors["url"] = [$"The url {policy.Check(url) ?? "must be an absolute https URL."}"];
            return null;
        }

        return uri.AbsoluteUri;
    }

    /// <summary>The events, each once; an empty list is refused here (a webhook listening to nothing), where creation reads it as every event.</summary>
    private static string[] ValidEvents(string[] requested, Dictionary<string, string[]> errors)
    {
        var events = requested.Distinct(StringComparer.Ordinal).ToArray();
        if (events.Length == 0)
        {
            errors["events"] = ["Name at least one event, or * for all."];
        }
        else if (events.Any(e => e is null))
        {
            // A null in the list named no event: stored, the webhook would listen to nothing.
            errors["events"] = ["Each event is a string: an event name or * for all."];
        }
        else if (events.FirstOrDefault(e => e != "*" && !WebhookEvents.All.Contains(e)) is { } unknown)
        {
            errors["events"] = [$"Unknown event '{unknown}'. Known: {string.Join(", ", WebhookEvents.All)}, or * for all."];
        }

        return events;
    }
}
