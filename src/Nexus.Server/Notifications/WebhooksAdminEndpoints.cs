using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.Hosting;

namespace Nexus.Server.Notifications;

internal sealed record WebhookRequest(string? Url, string[]? Events, string? WorkspaceId);

/// <summary>
/// A webhook. <c>disabled_at</c>: paused since then (null while it is sent events); <c>previous_secret_expires_at</c>:
/// the secret a rotation replaced signs beside the new one until then; <c>secret</c> only when it was just made.
/// </summary>
internal sealed record WebhookResponse(string Id, string Url, IReadOnlyList<string> Events, string? WorkspaceId, DateTimeOffset CreatedAt,
    DateTimeOffset? DisabledAt = null, DateTimeOffset? PreviousSecretExpiresAt = null, string? Secret = null)
{
    public static WebhookResponse From(Webhook w, string? secret = null) => new(w.Id, w.Url, w.Events, w.WorkspaceId, w.CreatedAt, w.DisabledAt, w.PreviousSecretUntil, secret);
}

/// <summary>GET /v1/admin/webhooks: every webhook.</summary>
internal sealed record WebhookList(IEnumerable<WebhookResponse> Webhooks);

/// <summary>GET /v1/admin/webhooks/{id}/deliveries: the newest 100 deliveries.</summary>
internal sealed record WebhookDeliveryList(IEnumerable<WebhookDeliveryResponse> Deliveries);

/// <summary>A delivery: attempts counts every attempt made (a resend does not reset it); next_attempt_at only while it is pending.</summary>
internal sealed record WebhookDeliveryResponse(
    string Id, string Event, string Status, int Attempts, int? LastStatusCode, string? LastError, DateTimeOffset CreatedAt, DateTimeOffset? DeliveredAt, DateTimeOffset? NextAttemptAt)
{
    public static WebhookDeliveryResponse From(WebhookDelivery d) =>
        new(d.Id, d.Event, d.Status, d.Attempts, d.LastStatusCode, d.LastError, d.CreatedAt, d.DeliveredAt, d.Status == DeliveryStatus.Pending ? d.NextAttemptAt : null);
}

/// <summary>/v1/admin/webhooks: endpoints that receive connection events, their secrets (shown once) and delivery log.</summary>
internal static class WebhooksAdminEndpoints
{
    public static void MapWebhooksAdmin(this RouteGroupBuilder admin)
    {
        var hooks = admin.MapGroup("").WithTags("Webhooks");
        hooks.MapPost("/v1/admin/webhooks", CreateAsync);
        hooks.MapGet("/v1/admin/webhooks", async (WebhookStore store, CancellationToken ct) =>
            TypedResults.Ok(new WebhookList((await store.ListAsync(ct)).Select(w => WebhookResponse.From(w)))));
        hooks.MapPatch("/v1/admin/webhooks/{id}", UpdateAsync);
        hooks.MapPost("/v1/admin/webhooks/{id}/secret", RotateSecretAsync);
        hooks.MapDelete("/v1/admin/webhooks/{id}", DeleteAsync);
        hooks.MapGet("/v1/admin/webhooks/{id}/deliveries", DeliveriesAsync);
        hooks.MapPost("/v1/admin/webhooks/{id}/test", TestAsync);
        hooks.MapPost("/v1/admin/webhooks/{id}/deliveries/{deliveryId}/retry", RetryAsync);
    }

    private static async Task<Results<Ok<WebhookDeliveryList>, ProblemHttpResult>> DeliveriesAsync(string id, WebhookStore store, CancellationToken ct) =>
        await store.FindAsync(id, ct) is null
            ? Problems.TypedNotFound("Webhook")
            : TypedResults.Ok(new WebhookDeliveryList((await store.DeliveriesAsync(id, 100, ct)).Select(WebhookDeliveryResponse.From)));

    private static async Task<Results<Created<WebhookResponse>, ProblemHttpResult>> CreateAsync(HttpRequest request, WebhookRegistration registration, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<WebhookRequest>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var (webhook, secret, errors) = await registration.CreateAsync(body!, ct);
        request.HttpContext.Response.Headers.CacheControl = "no-store";
        return webhook is null ? Problems.TypedValidation(errors) : TypedResults.Created($"/v1/admin/webhooks/{webhook.Id}", WebhookResponse.From(webhook, secret));
    }

    /// <summary>Changes the URL or the events, or pauses (<c>"disabled": true</c>) or resumes the webhook; absent members are kept.</summary>
    private static async Task<Results<Ok<WebhookResponse>, ProblemHttpResult>> UpdateAsync(string id, HttpRequest request, WebhookRegistration registration, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync<WebhookUpdate>(request, ct);
        if (error is not null)
        {
            return error;
        }

        var (webhook, _, errors) = await registration.UpdateAsync(id, body!, ct);
        return errors.Count > 0 ? Problems.TypedValidation(errors) : webhook is null ? Problems.TypedNotFound("Webhook") : TypedResults.Ok(WebhookResponse.From(webhook));
    }

    /// <summary>A new signing secret, shown once; the replaced one signs beside it for overlap_seconds (default a day, 0: stops at once).</summary>
    private static async Task<Results<Ok<WebhookResponse>, ProblemHttpResult>> RotateSecretAsync(string id, HttpRequest request, WebhookRegistration registration, CancellationToken ct)
    {
        var rotation = new WebhookSecretRotation(null);
        // The body is optional: read when the request can have one (HTTP/1.1 with a length or chunks; HTTP/2 and 3 without END_STREAM on the headers).
        if (request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? request.ContentLength is > 0)
        {
            var (body, error) = await JsonBody.ReadAsync<WebhookSecretRotation>(request, ct);
            if (error is not null)
            {
                return error;
            }

            rotation = body!;
        }

        var (webhook, secret, errors) = await registration.RotateSecretAsync(id, rotation, ct);
        // The answer holds the new secret: no cache keeps it (as for a new webhook's).
        request.HttpContext.Response.Headers.CacheControl = "no-store";
        return errors.Count > 0 ? Problems.TypedValidation(errors) : webhook is null ? Problems.TypedNotFound("Webhook") : TypedResults.Ok(WebhookResponse.From(webhook, secret));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(string id, WebhookStore store, CancellationToken ct) =>
        await store.DeleteAsync(id, ct) ? TypedResults.NoContent() : Problems.TypedNotFound("Webhook");

    private static async Task<Results<Accepted, ProblemHttpResult>> TestAsync(string id, WebhookDeliveryService deliveries, CancellationToken ct) =>
        (await deliveries.SendTestAsync(id, ct)).Outcome switch
        {
            ResendOutcome.Queued => TypedResults.Accepted($"/v1/admin/webhooks/{id}/deliveries"),
            ResendOutcome.Paused => Problems.Typed(ProblemCatalog.WebhookPaused),
            _ => Problems.TypedNotFound("Webhook"),
        };

    /// <summary>Sends a delivery again (<see cref="WebhookDeliveryService.ResendAsync"/>): 202 with the delivery as it now stands, 409 once delivered.</summary>
    private static async Task<Results<Accepted<WebhookDeliveryResponse>, ProblemHttpResult>> RetryAsync(string id, string deliveryId, WebhookDeliveryService deliveries,
        CancellationToken ct)
    {
        var resend = await deliveries.ResendAsync(id, deliveryId, ct);
        return resend.Outcome switch
        {
            ResendOutcome.Queued => TypedResults.Accepted($"/v1/admin/webhooks/{id}/deliveries", WebhookDeliveryResponse.From(resend.Delivery!)),
            ResendOutcome.AlreadyDelivered => Problems.Typed(ProblemCatalog.DeliveryDelivered),
            ResendOutcome.Paused => Problems.Typed(ProblemCatalog.WebhookPaused),
            _ => Problems.TypedNotFound("Delivery"),
        };
    }
}
