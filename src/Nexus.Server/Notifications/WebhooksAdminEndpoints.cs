using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.Hosting;

namespace Nexus.Server.Notifications;

internal sealed record WebhookRequest(string? Url, string[]? Events, string? WorkspaceId);

internal sealed record WebhookResponse(string Id, string Url, IReadOnlyList<string> Events, string? WorkspaceId, DateTimeOffset CreatedAt, string? Secret = null)
{
    public static WebhookResponse From(Webhook w, string? secret = null) => new(w.Id, w.Url, w.Events, w.WorkspaceId, w.CreatedAt, secret);
}

/// <summary>/v1/admin/webhooks: endpoints that receive connection events, their secrets (shown once) and delivery log.</summary>
internal static class WebhooksAdminEndpoints
{
    public static void MapWebhooksAdmin(this RouteGroupBuilder admin)
    {
        var hooks = admin.MapGroup("").WithTags("Webhooks");
        hooks.MapPost("/v1/admin/webhooks", CreateAsync);
        hooks.MapGet("/v1/admin/webhooks", async (WebhookStore store, CancellationToken ct) =>
            TypedResults.Ok(new { webhooks = (await store.ListAsync(ct)).Select(w => WebhookResponse.From(w)) }));
        hooks.MapDelete("/v1/admin/webhooks/{id}", DeleteAsync);
        hooks.MapGet("/v1/admin/webhooks/{id}/deliveries", async (string id, WebhookStore store, CancellationToken ct) =>
            await store.FindAsync(id, ct) is null
                ? Problems.NotFound("Webhook")
                : TypedResults.Ok(new
                {
                    deliveries = (await store.DeliveriesAsync(id, 100, ct)).Select(d => new
                    {
                        d.Id, d.Event, d.Status, d.Attempts, d.LastStatusCode, d.LastError, d.CreatedAt, d.DeliveredAt,
                        NextAttemptAt = d.Status == DeliveryStatus.Pending ? d.NextAttemptAt : (DateTimeOffset?)null,
                    }),
                }));
        hooks.MapPost("/v1/admin/webhooks/{id}/test", TestAsync);
    }

    private static async Task<Results<Created<WebhookResponse>, ProblemHttpResult>> CreateAsync(HttpRequest request, WebhookStore store, Providers.UpstreamPolicy policy, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<WebhookRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var (url, events, errors) = Validate(body!, policy);
        if (errors.Count > 0)
        {
            return Problems.TypedValidation(errors);
        }

        var (webhook, secret) = await store.CreateAsync(url!, events, string.IsNullOrWhiteSpace(body!.WorkspaceId) ? null : body.WorkspaceId.Trim(), ct);
        return TypedResults.Created($"/v1/admin/webhooks/{webhook.Id}", WebhookResponse.From(webhook, secret));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(string id, WebhookStore store, CancellationToken ct) =>
        await store.DeleteAsync(id, ct) ? TypedResults.NoContent() : Problems.TypedNotFound("Webhook");

    private static async Task<Results<Accepted, ProblemHttpResult>> TestAsync(string id, WebhookStore store, WebhookPublisher publisher, CancellationToken ct)
    {
        if (await store.FindAsync(id, ct) is not { } found)
        {
            return Problems.TypedNotFound("Webhook");
        }

        await publisher.PublishAsync(WebhookEvents.Test, found.Webhook.WorkspaceId, new { webhook_id = id, message = "Hello from Nexus" }, ct);
        return TypedResults.Accepted($"/v1/admin/webhooks/{id}/deliveries");
    }

    /// <summary>
    /// A webhook URL obeys the same rule as a provider URL (<see cref="Providers.UpstreamPolicy"/>): https, or plain
    /// http to loopback only where Nexus__AllowInsecureUpstreams allows it. Where it may connect is checked again at
    /// delivery time, after DNS resolution (<see cref="OutboundNetworkGuard"/>).
    /// </summary>
    public static (string? Url, string[] Events, Dictionary<string, string[]> Errors) Validate(WebhookRequest body, Providers.UpstreamPolicy policy)
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
        if (events.FirstOrDefault(e => e != "*" && !WebhookEvents.All.Contains(e)) is { } unknown)
        {
            errors["events"] = [$"Unknown event '{unknown}'. Known: {string.Join(", ", WebhookEvents.All)}, or * for all."];
        }

        return (url, events, errors);
    }
}
