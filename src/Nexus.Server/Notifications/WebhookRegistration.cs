using Nexus.Server.Hosting;

namespace Nexus.Server.Notifications;

/// <summary>A webhook as stored, with its signing secret (shown once); on failure, the field errors.</summary>
internal sealed record WebhookCreation(Webhook? Webhook, string? Secret, Dictionary<string, string[]> Errors);

/// <summary>
/// Adding a webhook, whoever asks: POST /v1/admin/webhooks and the dashboard's Site management › Webhooks both call
/// this, so a URL one refuses the other refuses too.
/// </summary>
internal sealed class WebhookRegistration(WebhookStore store, UpstreamPolicy policy)
{
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
        string? url = null;
        if (!Uri.TryCreate(body.Url, UriKind.Absolute, out var uri) || policy.Check(body.Url) is not null)
        {
            errors["url"] = [$"The url {policy.Check(body.Url) ?? "must be an absolute https URL."}"];
        }
        else
        {
            url = uri.AbsoluteUri;
        }

        var events = body.Events is null || body.Events.Length == 0 ? ["*"] : body.Events.Distinct(StringComparer.Ordinal).ToArray();
        if (events.Any(e => e is null))
        {
            // A null in the list named no event: stored, the webhook would listen to nothing.
            errors["events"] = ["Each event is a string: an event name or * for all."];
        }
        else if (events.FirstOrDefault(e => e != "*" && !WebhookEvents.All.Contains(e)) is { } unknown)
        {
            errors["events"] = [$"Unknown event '{unknown}'. Known: {string.Join(", ", WebhookEvents.All)}, or * for all."];
        }

        // The same rule as every other workspace id (request-connection's, an API key's); one that breaks it matches no connection.
        if (!string.IsNullOrWhiteSpace(body.WorkspaceId) && !ApiKeys.WorkspaceIds.IsValid(body.WorkspaceId.Trim()))
        {
            errors["workspace_id"] = ["The workspace_id is 1 to 200 characters: letters, digits and _ . : @ + -."];
        }

        return (url, events, errors);
    }
}
