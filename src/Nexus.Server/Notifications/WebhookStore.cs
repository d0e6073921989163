using Dapper;
using Nexus.Server.Data;
using Nexus.Server.Vault;

namespace Nexus.Server.Notifications;

/// <summary>
/// A webhook endpoint. <see cref="DisabledAt"/>: paused since then (no deliveries queued or sent until it is enabled
/// again); <see cref="PreviousSecretUntil"/>: the secret a rotation replaced still signs beside the new one until then.
/// </summary>
internal sealed record Webhook(string Id, string Url, IReadOnlyList<string> Events, string? WorkspaceId, DateTimeOffset CreatedAt,
    DateTimeOffset? DisabledAt = null, DateTimeOffset? PreviousSecretUntil = null);

/// <summary>What a webhook's deliveries are signed with: its secret, and the one a rotation replaced while it still signs.</summary>
internal sealed record WebhookSecrets(string Current, string? Previous);

/// <summary>
/// A delivery and its log. <see cref="Attempts"/> counts every attempt ever made; <see cref="ScheduleStart"/> is how many
/// of them came before the current retry schedule began (0, or the count when a failed delivery was sent again).
/// </summary>
internal sealed record WebhookDelivery(
    string Id, string WebhookId, string Event, string Payload, string Status, int Attempts, DateTimeOffset NextAttemptAt,
    int? LastStatusCode, string? LastError, DateTimeOffset CreatedAt, DateTimeOffset? DeliveredAt, int ScheduleStart = 0)
{
    /// <summary>
    /// The attempts of the current retry schedule so far (what <see cref="WebhookDispatcher.Backoff"/> is given). Fewer
    /// attempts than the schedule's start means a version from before migration 0021 (rolled back to) reset them on a
    /// resend: its count is then the schedule's own.
    /// </summary>
    public int AttemptsInSchedule => Attempts >= ScheduleStart ? Attempts - ScheduleStart : Attempts;
}

internal static class DeliveryStatus
{
    public const string Pending = "pending";
    public const string Delivered = "delivered";
    public const string Failed = "failed";
}

/// <summary>Webhook endpoints (signing secrets encrypted: Nexus needs them back to sign) and their delivery log.</summary>
internal sealed class WebhookStore(NexusDatabase db, KeyRing keyRing, TimeProvider time)
{
    public static readonly EncryptedColumn Column = new("webhooks", "id", "secret", "webhooks.secret:");

    /// <summary>The secret a rotation replaced, while it goes on signing (migration 0025).</summary>
    public static readonly EncryptedColumn PreviousColumn = new("webhooks", "id", "previous_secret", "webhooks.previous_secret:");

    private const string WebhookColumns = "id, url, events, workspace_id, created_at, disabled_at, previous_secret_until";

    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    private sealed class WebhookRow
    {
        public string Id { get; init; } = "";
        public string Url { get; init; } = "";
        public string Events { get; init; } = "";
        public string? WorkspaceId { get; init; }
        public long CreatedAt { get; init; }
        public long? DisabledAt { get; init; }
        public long? PreviousSecretUntil { get; init; }

        /// <summary>The webhook as of <paramref name="now"/> (Unix ms): a previous secret whose overlap has ended is not shown.</summary>
        public Webhook ToWebhook(long now) => new(Id, Url, Events.Split(' ', StringSplitOptions.RemoveEmptyEntries), WorkspaceId, DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt),
            DisabledAt is { } d ? DateTimeOffset.FromUnixTimeMilliseconds(d) : null,
            PreviousSecretUntil is { } u && u > now ? DateTimeOffset.FromUnixTimeMilliseconds(u) : null);
    }

    private sealed class DeliveryRow
    {
        public string Id { get; init; } = "";
        public string WebhookId { get; init; } = "";
        public string Event { get; init; } = "";
        public string Payload { get; init; } = "";
        public string Status { get; init; } = "";
        public long Attempts { get; init; }
        public long NextAttemptAt { get; init; }
        public long? LastStatusCode { get; init; }
        public string? LastError { get; init; }
        public long CreatedAt { get; init; }
        public long? DeliveredAt { get; init; }
        public long ScheduleStart { get; init; }

        public WebhookDelivery ToDelivery() => new(Id, WebhookId, Event, Payload, Status, (int)Attempts, DateTimeOffset.FromUnixTimeMilliseconds(NextAttemptAt),
            (int?)LastStatusCode, LastError, DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt), DeliveredAt is { } d ? DateTimeOffset.FromUnixTimeMilliseconds(d) : null, (int)ScheduleStart);
    }

    private const string DeliveryColumns = "id, webhook_id, event, payload, status, attempts, next_attempt_at, last_status_code, last_error, created_at, delivered_at, schedule_start";

    public async Task<(Webhook Webhook, string Secret)> CreateAsync(string url, IReadOnlyList<string> events, string? workspaceId, CancellationToken ct)
    {
        var id = SecretGenerator.Id("wh_", 20);
        var secret = WebhookSignature.NewSecret();
        var now = Now;
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO webhooks (id, url, events, workspace_id, secret, created_at) VALUES (@id, @url, @events, @workspaceId, @secret, @now)",
            new { id, url, events = string.Join(' ', events), workspaceId, secret = keyRing.Encrypt(secret, Column.ContextFor(id)), now }, cancellationToken: ct));
        return (new Webhook(id, url, events, workspaceId, DateTimeOffset.FromUnixTimeMilliseconds(now)), secret);
    }

    public async Task<IReadOnlyList<Webhook>> ListAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return (await connection.QueryAsync<WebhookRow>(new CommandDefinition($"SELECT {WebhookColumns} FROM webhooks ORDER BY created_at", cancellationToken: ct)))
            .Select(r => r.ToWebhook(Now)).ToList();
    }

    /// <summary>A webhook, without its secret: looking one up never needs the encryption key that secret was sealed with.</summary>
    public async Task<Webhook?> FindAsync(string id, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<WebhookRow>(new CommandDefinition(
            $"SELECT {WebhookColumns} FROM webhooks WHERE id = @id", new { id }, cancellationToken: ct));
        return row?.ToWebhook(Now);
    }

    /// <summary>
    /// A webhook's signing secrets, decrypted: its secret, and the one a rotation replaced while its overlap lasts.
    /// Throws <see cref="System.Security.Cryptography.CryptographicException"/> when one was encrypted with a key that
    /// is no longer configured.
    /// </summary>
    public async Task<WebhookSecrets> SecretsAsync(string id, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var (secret, previous, until) = await connection.QuerySingleAsync<(byte[], byte[]?, long?)>(new CommandDefinition(
            "SELECT secret, previous_secret, previous_secret_until FROM webhooks WHERE id = @id", new { id }, cancellationToken: ct));
        var now = Now;
        if (previous is not null && until <= now)
        {
            // Its overlap is over: forgotten, so that it is neither kept nor re-encrypted (keys reencrypt) for nothing.
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE webhooks SET previous_secret = NULL, previous_secret_until = NULL WHERE id = @id AND previous_secret_until <= @now", new { id, now }, cancellationToken: ct));
        }

        return new(keyRing.DecryptString(secret, Column.ContextFor(id)),
            previous is not null && until > now ? keyRing.DecryptString(previous, PreviousColumn.ContextFor(id)) : null);
    }

    /// <summary>
    /// Gives the webhook a new signing secret. With an <paramref name="overlap"/>, the secret it replaces goes on signing
    /// beside it until then (Standard Webhooks: several space-separated signatures, one per secret), so receivers can
    /// move to the new one without missing a delivery; without one it stops at once (a leaked secret), and so does one
    /// that cannot be decrypted (its key was removed: it signed nothing). Only one previous secret is kept: a second
    /// rotation within the overlap ends the first's. Null when there is no such webhook.
    /// </summary>
    public async Task<(Webhook Webhook, string Secret)?> RotateSecretAsync(string id, TimeSpan overlap, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        // Compare-and-set on the ciphertext read: of two rotations at once, the later one starts over from the secret
        // the earlier wrote, so the secret that is replaced is always the one that was signing.
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var current = await connection.QuerySingleOrDefaultAsync<byte[]>(new CommandDefinition("SELECT secret FROM webhooks WHERE id = @id", new { id }, cancellationToken: ct));
            if (current is null)
            {
                return null;
            }

            var secret = WebhookSignature.NewSecret();
            byte[]? previous = null;
            if (overlap > TimeSpan.Zero)
            {
                try
                {
                    previous = keyRing.Encrypt(keyRing.DecryptString(current, Column.ContextFor(id)), PreviousColumn.ContextFor(id));
                }
                catch (System.Security.Cryptography.CryptographicException)
                {
                    // Sealed with a key no longer configured: it cannot sign (its deliveries fail), so a new secret is
                    // what fixes the webhook, and there is nothing to keep beside it.
                }
            }

            var updated = await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE webhooks SET secret = @secret, previous_secret = @previous, previous_secret_until = @until WHERE id = @id AND secret = @current",
                new
                {
                    id,
                    current,
                    secret = keyRing.Encrypt(secret, Column.ContextFor(id)),
                    previous,
                    until = previous is null ? (long?)null : time.GetUtcNow().Add(overlap).ToUnixTimeMilliseconds(),
                }, cancellationToken: ct));
            if (updated == 1)
            {
                return (await FindAsync(id, ct) ?? throw new InvalidOperationException("The webhook was deleted while its secret was rotated."), secret);
            }
        }

        throw new InvalidOperationException("The webhook's secret kept changing while it was rotated.");
    }

    /// <summary>
    /// Changes a webhook: its URL and events when given (already validated), and pauses (<paramref name="disabled"/>
    /// true: kept since when it was first paused) or resumes it. Null when there is no such webhook.
    /// </summary>
    public async Task<Webhook?> UpdateAsync(string id, string? url, IReadOnlyList<string>? events, bool? disabled, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE webhooks SET url = COALESCE(@url, url), events = COALESCE(@events, events),
                disabled_at = CASE @pause WHEN 1 THEN COALESCE(disabled_at, @now) WHEN 2 THEN NULL ELSE disabled_at END
            WHERE id = @id
            """,
            new { id, url, events = events is null ? null : string.Join(' ', events), pause = disabled switch { true => 1, false => 2, null => 0 }, now = Now },
            cancellationToken: ct));
        return await FindAsync(id, ct);
    }

    public async Task<bool> DeleteAsync(string id, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("DELETE FROM webhook_deliveries WHERE webhook_id = @id", new { id }, cancellationToken: ct));
        return await connection.ExecuteAsync(new CommandDefinition("DELETE FROM webhooks WHERE id = @id", new { id }, cancellationToken: ct)) == 1;
    }

    /// <summary>
    /// Queues one delivery per webhook that listens to the event (deployment-wide or for the workspace), or, given
    /// <paramref name="onlyWebhookId"/>, for that webhook alone whatever it listens to (its test event).
    /// </summary>
    public async Task<IReadOnlyList<string>> EnqueueAsync(string eventType, string? workspaceId, string? onlyWebhookId, Func<string, string> payloadFor, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var hooks = onlyWebhookId is not null
            ? (await connection.QueryAsync<string>(new CommandDefinition("SELECT id FROM webhooks WHERE id = @onlyWebhookId", new { onlyWebhookId }, cancellationToken: ct))).ToList()
            : (await connection.QueryAsync<WebhookRow>(new CommandDefinition(
                $"SELECT {WebhookColumns} FROM webhooks WHERE disabled_at IS NULL AND (workspace_id IS NULL OR workspace_id = @workspaceId)",
                new { workspaceId }, cancellationToken: ct))).Select(r => r.ToWebhook(Now)).Where(w => w.Events.Contains("*") || w.Events.Contains(eventType)).Select(w => w.Id).ToList();
        var now = Now;
        var queued = new List<string>(hooks.Count);
        foreach (var hook in hooks)
        {
            var id = SecretGenerator.Id("msg_", 24);
            var payload = payloadFor(id);
            int inserted;
            try
            {
                // Only while the webhook exists: one deleted since the read above is skipped, and the others still get the event.
                inserted = await connection.ExecuteAsync(new CommandDefinition(
                    "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, attempts, next_attempt_at, created_at) " +
                    "SELECT @id, id, @eventType, @payload, @pending, 0, @now, @now FROM webhooks WHERE id = @hook",
                    new { id, hook, eventType, payload, pending = DeliveryStatus.Pending, now }, cancellationToken: ct));
            }
            catch (System.Data.Common.DbException)
            {
                // Deleted between the check and the insert's foreign key check (PostgreSQL, read committed); anything
                // else is not this webhook's absence. When the probe fails too (the database went away), the insert's
                // failure is the one to report.
                bool gone;
                try
                {
                    gone = !await ExistsAsync(connection, hook, ct);
                }
                catch (System.Data.Common.DbException)
                {
                    gone = false;
                }

                if (!gone)
                {
                    throw;
                }

                inserted = 0;
            }

            if (inserted == 1)
            {
                queued.Add(id);
            }
        }

        return queued;
    }

    private static async Task<bool> ExistsAsync(System.Data.Common.DbConnection connection, string id, CancellationToken ct) =>
        await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT COUNT(*) FROM webhooks WHERE id = @id", new { id }, cancellationToken: ct)) > 0;

    /// <summary>The webhooks with at least one delivery due, paused ones left out (their deliveries wait, schedules untouched, until they are resumed).</summary>
    public async Task<IReadOnlyList<string>> DueWebhooksAsync(int limit, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return (await connection.QueryAsync<string>(new CommandDefinition(
            $"SELECT DISTINCT webhook_id FROM webhook_deliveries WHERE status = @pending AND next_attempt_at <= @now AND webhook_id IN (SELECT id FROM webhooks WHERE disabled_at IS NULL) LIMIT {limit}",
            new { pending = DeliveryStatus.Pending, now = Now }, cancellationToken: ct))).ToList();
    }

    /// <summary>One webhook's due deliveries, oldest first (queued order among those due together).</summary>
    public async Task<IReadOnlyList<WebhookDelivery>> DueAsync(string webhookId, int limit, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return (await connection.QueryAsync<DeliveryRow>(new CommandDefinition(
            $"SELECT {DeliveryColumns} FROM webhook_deliveries WHERE webhook_id = @webhookId AND status = @pending AND next_attempt_at <= @now AND (leased_until IS NULL OR leased_until <= @now) ORDER BY next_attempt_at, created_at, id LIMIT {limit}",
            new { webhookId, pending = DeliveryStatus.Pending, now = Now }, cancellationToken: ct))).Select(r => r.ToDelivery()).ToList();
    }

    /// <summary>
    /// Claims a delivery for one attempt, conditionally on the next attempt time that was read: of several instances
    /// racing, exactly one wins, on SQLite and PostgreSQL alike, without locks held. The winner holds a lease
    /// (leased_until) until it records the attempt, or until the lease runs out if it never does (a crash); a resend
    /// meanwhile moves next_attempt_at but not the lease, so nobody else claims the delivery while the attempt runs.
    /// next_attempt_at moves to the lease's end too, as versions before migration 0022 leased (a rolling upgrade).
    /// Returns the lease to record the attempt under, or null when another claim won.
    /// </summary>
    public async Task<long?> ClaimAsync(WebhookDelivery delivery, TimeSpan lease, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var now = time.GetUtcNow();
        var until = now.Add(lease).ToUnixTimeMilliseconds();
        return await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE webhook_deliveries SET next_attempt_at = @until, leased_until = @until
            WHERE id = @Id AND status = @pending AND next_attempt_at = @seen AND (leased_until IS NULL OR leased_until <= @now)
            """,
            new { delivery.Id, pending = DeliveryStatus.Pending, seen = delivery.NextAttemptAt.ToUnixTimeMilliseconds(), until, now = now.ToUnixTimeMilliseconds() },
            cancellationToken: ct)) == 1 ? until : null;
    }

    /// <summary>
    /// Records an attempt made under <paramref name="lease"/> (<see cref="ClaimAsync"/>) and ends the lease. When the
    /// delivery was sent again while the attempt ran (next_attempt_at no longer the lease's end), a failed attempt
    /// leaves it as the resend made it: pending, due now, with a new schedule from this attempt on, never failed. A
    /// delivered one is never written over. An attempt whose lease was lost (it outlasted it and another claim won)
    /// still counts, and still marks the delivery delivered when it was.
    /// </summary>
    public async Task RecordAttemptAsync(string id, long lease, bool delivered, int? statusCode, string? error, DateTimeOffset? retryAt, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        var values = new
        {
            id,
            lease,
            status = delivered ? DeliveryStatus.Delivered : retryAt is null ? DeliveryStatus.Failed : DeliveryStatus.Pending,
            pending = DeliveryStatus.Pending,
            done = DeliveryStatus.Delivered,
            statusCode,
            error,
            next = (retryAt ?? time.GetUtcNow()).ToUnixTimeMilliseconds(),
            deliveredAt = delivered ? Now : (long?)null,
        };
        var recorded = await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE webhook_deliveries SET attempts = attempts + 1, last_status_code = @statusCode, last_error = @error, leased_until = NULL,
                status = CASE WHEN @status <> @done AND next_attempt_at <> @lease THEN @pending ELSE @status END,
                schedule_start = CASE WHEN @status <> @done AND next_attempt_at <> @lease THEN attempts + 1 ELSE schedule_start END,
                next_attempt_at = CASE WHEN @status <> @done AND next_attempt_at <> @lease THEN next_attempt_at ELSE @next END,
                delivered_at = @deliveredAt
            WHERE id = @id AND status <> @done AND leased_until = @lease
            """, values, cancellationToken: ct));
        if (recorded == 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE webhook_deliveries SET attempts = attempts + 1, last_status_code = @statusCode, last_error = @error,
                    status = CASE WHEN @status = @done THEN @done ELSE status END,
                    delivered_at = CASE WHEN @status = @done THEN @deliveredAt ELSE delivered_at END
                WHERE id = @id AND status <> @done
                """, values, cancellationToken: ct));
        }
    }

    public async Task<IReadOnlyList<WebhookDelivery>> DeliveriesAsync(string webhookId, int limit, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return (await connection.QueryAsync<DeliveryRow>(new CommandDefinition(
            $"SELECT {DeliveryColumns} FROM webhook_deliveries WHERE webhook_id = @webhookId ORDER BY created_at DESC LIMIT {limit}",
            new { webhookId }, cancellationToken: ct))).Select(r => r.ToDelivery()).ToList();
    }

    /// <summary>
    /// Sends a delivery again: a failed one gets a new series of attempts (the whole retry schedule), a pending one is
    /// due now rather than at its next retry. Its attempts are not reset: the log keeps counting every attempt made,
    /// and the new schedule starts from the count it had (schedule_start). Null when the webhook has no such delivery;
    /// the delivery as it was when it had already been delivered (then nothing changes).
    /// </summary>
    public async Task<WebhookDelivery?> RetryAsync(string webhookId, string deliveryId, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE webhook_deliveries SET status = @pending, next_attempt_at = @now,
                schedule_start = CASE WHEN status = @failed THEN attempts ELSE schedule_start END
            WHERE id = @deliveryId AND webhook_id = @webhookId AND status <> @delivered
            """,
            new { deliveryId, webhookId, pending = DeliveryStatus.Pending, failed = DeliveryStatus.Failed, delivered = DeliveryStatus.Delivered, now = Now }, cancellationToken: ct));
        return await FindDeliveryAsync(connection, webhookId, deliveryId, ct);
    }

    /// <summary>One of a webhook's deliveries; null when the webhook has no such delivery.</summary>
    public async Task<WebhookDelivery?> FindDeliveryAsync(string webhookId, string deliveryId, CancellationToken ct)
    {
        await using var connection = await db.OpenAsync(ct);
        return await FindDeliveryAsync(connection, webhookId, deliveryId, ct);
    }

    private static async Task<WebhookDelivery?> FindDeliveryAsync(System.Data.Common.DbConnection connection, string webhookId, string deliveryId, CancellationToken ct) =>
        (await connection.QuerySingleOrDefaultAsync<DeliveryRow>(new CommandDefinition(
            $"SELECT {DeliveryColumns} FROM webhook_deliveries WHERE id = @deliveryId AND webhook_id = @webhookId", new { deliveryId, webhookId }, cancellationToken: ct)))?.ToDelivery();
}
