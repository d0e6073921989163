using Nexus.Server.Hosting;
using Nexus.Server.Hosting.Commands;

namespace Nexus.Server.Notifications;

/// <summary>
/// The webhooks' commands: <c>webhooks list|deliveries|test|resend|pause|resume|rotate-secret</c>, calling what /v1/admin/webhooks calls
/// (<see cref="WebhookStore"/>, <see cref="WebhookDeliveryService"/>). A queued delivery is sent by the dispatcher of
/// a running Nexus on the same database (it looks for due deliveries every second), not by the command.
/// </summary>
internal static class NotificationsCommands
{
    public static IServiceCollection AddNotificationsCommands(this IServiceCollection services) => services
        .AddNexusCommand("webhooks list", "list the webhooks (never their secrets)", """
            Usage: Nexus.Server webhooks list [--json]
              Lists the webhooks, as GET /v1/admin/webhooks does.
              --json   {"webhooks":[{"id","url","events","workspace_id","created_at"}]}
            """, ListAsync)
        .AddNexusCommand("webhooks deliveries", "show a webhook's newest deliveries", """
            Usage: Nexus.Server webhooks deliveries ID [--json]
              The webhook's newest 100 deliveries (status, attempts, last error), as GET /v1/admin/webhooks/{id}/deliveries does.
              --json   {"deliveries":[{"id","event","status","attempts","last_status_code","last_error","created_at","delivered_at","next_attempt_at"}]}
            """, DeliveriesAsync, arguments: 1)
        .AddNexusCommand("webhooks test", "queue a webhook.test event for one webhook", """
            Usage: Nexus.Server webhooks test ID [--json]
              Queues a webhook.test event for this webhook alone, as POST /v1/admin/webhooks/{id}/test does. A running Nexus
              on this database sends it within a second or two (with no Nexus running, at the next start); see
              `webhooks deliveries ID` for what became of it.
              --json   {"webhook_id","status":"queued"}
            """, TestAsync, arguments: 1)
        .AddNexusCommand("webhooks resend", "send a webhook delivery again", """
            Usage: Nexus.Server webhooks resend ID DELIVERY_ID [--json]
              Sends a delivery again, as POST /v1/admin/webhooks/{id}/deliveries/{deliveryId}/retry does: a failed one with
              a new retry schedule, a pending one now; its attempts keep counting. A delivered one
              is never sent twice (delivery_delivered, exit 1). A running Nexus on this database sends it.
              --json   the delivery, as the API answers it
            """, ResendAsync, arguments: 2)
        .AddNexusCommand("webhooks pause", "stop sending to a webhook until it is resumed", """
            Usage: Nexus.Server webhooks pause ID [--json]
              Pauses the webhook, as PATCH /v1/admin/webhooks/{id} with {"disabled":true} does: events that happen while
              it is paused are not queued for it, and deliveries already queued wait (their retry schedule untouched)
              until it is resumed. Pausing twice is not an error.
              --json   the webhook, as the API answers it
            """, (context, ct) => PauseAsync(context, true, ct), arguments: 1)
        .AddNexusCommand("webhooks resume", "send to a paused webhook again", """
            Usage: Nexus.Server webhooks resume ID [--json]
              Resumes the webhook, as PATCH /v1/admin/webhooks/{id} with {"disabled":false} does: new events are queued
              for it again and the deliveries that waited are sent.
              --json   the webhook, as the API answers it
            """, (context, ct) => PauseAsync(context, false, ct), arguments: 1)
        .AddNexusCommand("webhooks rotate-secret", "give a webhook a new signing secret", """
            Usage: Nexus.Server webhooks rotate-secret ID [--overlap-seconds N] [--json]
              Gives the webhook a new signing secret (printed once), as POST /v1/admin/webhooks/{id}/secret does. The
              replaced secret goes on signing beside it for N seconds (default 86400, a day; at most 604800; 0 stops it
              at once, for a leaked secret): each delivery then carries both signatures, so the receiver can move to the
              new secret without missing one.
              --json   the webhook, as the API answers it, with "secret"
            """, RotateSecretAsync, arguments: 1, options: ["overlap-seconds"]);

    private static async Task<int> ListAsync(CommandContext context, CancellationToken ct)
    {
        var hooks = (await context.Get<WebhookStore>().ListAsync(ct)).Select(w => WebhookResponse.From(w)).ToList();
        return await context.ListAsync(new WebhookList(hooks), hooks, "No webhooks yet.",
            ("ID", w => w.Id), ("URL", w => w.Url), ("EVENTS", w => string.Join(",", w.Events)), ("WORKSPACE", w => w.WorkspaceId ?? "*"),
            ("CREATED", w => w.CreatedAt.ToString("u")));
    }

    private static async Task<int> DeliveriesAsync(CommandContext context, CancellationToken ct)
    {
        var id = WebhookId(context);
        var store = context.Get<WebhookStore>();
        _ = await store.FindAsync(id, ct) ?? throw NoWebhook(id);
        var deliveries = (await store.DeliveriesAsync(id, 100, ct)).Select(WebhookDeliveryResponse.From).ToList();
        return await context.ListAsync(new WebhookDeliveryList(deliveries), deliveries, "No deliveries yet.",
            ("ID", d => d.Id), ("EVENT", d => d.Event), ("STATUS", d => d.Status), ("ATTEMPTS", d => d.Attempts.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("LAST ERROR", d => d.LastError), ("CREATED", d => d.CreatedAt.ToString("u")));
    }

    private static async Task<int> TestAsync(CommandContext context, CancellationToken ct)
    {
        var id = WebhookId(context);
        switch ((await context.Get<WebhookDeliveryService>().SendTestAsync(id, ct)).Outcome)
        {
            case ResendOutcome.Paused:
                throw Paused(id);
            case not ResendOutcome.Queued:
                throw NoWebhook(id);
        }

        return await context.ResultAsync(new { webhook_id = id, status = "queued" },
            $"Queued a webhook.test event for {id}. A running Nexus sends it; `webhooks deliveries {id}` shows what became of it.");
    }

    private static async Task<int> ResendAsync(CommandContext context, CancellationToken ct)
    {
        var id = WebhookId(context);
        var deliveryId = context.Args.Argument(1, "DELIVERY_ID (the delivery's id, from `webhooks deliveries ID`)");
        var resend = await context.Get<WebhookDeliveryService>().ResendAsync(id, deliveryId, ct);
        return resend.Outcome switch
        {
            ResendOutcome.Queued => await context.ResultAsync(WebhookDeliveryResponse.From(resend.Delivery!),
                $"Queued delivery {deliveryId} ({resend.Delivery!.Event}) again after {resend.Delivery.Attempts} attempt{(resend.Delivery.Attempts == 1 ? "" : "s")}. A running Nexus sends it."),
            ResendOutcome.AlreadyDelivered => throw new CommandFailedException(
                $"Delivery {deliveryId} was delivered already; a delivered message is never sent twice.", ProblemCatalog.DeliveryDelivered),
            ResendOutcome.Paused => throw Paused(id),
            _ => throw new CommandFailedException($"Webhook {id} has no delivery '{deliveryId}'. See `webhooks deliveries {id}`.", ProblemCatalog.NotFound),
        };
    }

    private static async Task<int> PauseAsync(CommandContext context, bool pause, CancellationToken ct)
    {
        var id = WebhookId(context);
        var (webhook, _, _) = await context.Get<WebhookRegistration>().UpdateAsync(id, new WebhookUpdate(null, null, pause), ct);
        return webhook is null
            ? throw NoWebhook(id)
            : await context.ResultAsync(WebhookResponse.From(webhook), pause
                ? $"Paused {id}: nothing is queued or sent to it until `webhooks resume {id}`."
                : $"Resumed {id}: new events are queued for it, and the deliveries that waited are sent by a running Nexus.");
    }

    private static async Task<int> RotateSecretAsync(CommandContext context, CancellationToken ct)
    {
        var id = WebhookId(context);
        var (webhook, secret, errors) = await context.Get<WebhookRegistration>().RotateSecretAsync(id, new WebhookSecretRotation(context.Args.Int("overlap-seconds")), ct);
        if (errors.Count > 0)
        {
            throw new CommandFailedException(string.Join(" ", errors.SelectMany(e => e.Value)), ProblemCatalog.ValidationFailed, errors);
        }

        return webhook is null
            ? throw NoWebhook(id)
            : await context.ResultAsync(WebhookResponse.From(webhook, secret), webhook.PreviousSecretUntil is { } until
                ? $"New signing secret for {id} (shown once):\n{secret}\nThe replaced secret signs beside it until {until:u}."
                : $"New signing secret for {id} (shown once):\n{secret}\nThe replaced secret no longer signs.");
    }

    private static string WebhookId(CommandContext context) => context.Args.Argument(0, "ID (the webhook's id, from `webhooks list`)");

    private static CommandFailedException Paused(string id) =>
        new($"Webhook {id} is paused; nothing is sent to it until `webhooks resume {id}`.", ProblemCatalog.WebhookPaused);

    private static CommandFailedException NoWebhook(string id) =>
        new($"There is no webhook '{id}'. See `webhooks list`.", ProblemCatalog.NotFound);
}
