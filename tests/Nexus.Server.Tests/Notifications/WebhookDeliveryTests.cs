using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Nexus.Server.Notifications;
using Nexus.Server.Tests.Infrastructure;
using Nexus.Server.Vault;

namespace Nexus.Server.Tests.Notifications;

/// <summary>Connection events reach webhook receivers signed (Standard Webhooks), retried, and logged.</summary>
public sealed class WebhookDeliveryTests
{
    [Fact]
    public async Task ConnectionEventsArriveSignedAndOnlyTheRightSecretAndAFreshTimestampVerify()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider, "ws_hooks");
        var token = await scene.Kit.TokenAsync(id);
        await scene.Kit.ExpectAsync(HttpMethod.Delete, $"/v1/connections/{id}", null, HttpStatusCode.NoContent);

        var active = await scene.Hooks.WaitForAsync(d => d.Type == "connection.active");
        var revoked = await scene.Hooks.WaitForAsync(d => d.Type == "connection.revoked");
        var now = DateTimeOffset.UtcNow;
        foreach (var hook in new[] { active, revoked })
        {
            // What a receiver does (README, "Webhooks"): HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}".
            Assert.True(WebhookSignature.Verify(scene.WebhookSecret, hook.Id, hook.Timestamp, hook.Body, hook.Signature, now));
            Assert.StartsWith("v1,", hook.Signature, StringComparison.Ordinal);
            Assert.Equal(hook.Id, hook.Json.GetProperty("id").GetString());
            Assert.Equal("ws_hooks", hook.Json.GetProperty("workspace_id").GetString());
            Assert.Equal(id, hook.Data.GetProperty("connection_id").GetString());
            Assert.Equal(scene.Provider, hook.Data.GetProperty("provider").GetString());
            Assert.DoesNotContain(token, hook.Body, StringComparison.Ordinal);

            Assert.False(WebhookSignature.Verify(scene.WebhookSecret, hook.Id, hook.Timestamp, hook.Body.Replace(id, "conn_forged", StringComparison.Ordinal), hook.Signature, now));
            Assert.False(WebhookSignature.Verify(WebhookSignature.NewSecret(), hook.Id, hook.Timestamp, hook.Body, hook.Signature, now));
            // A captured delivery replayed later than the tolerance is refused even with its genuine signature.
            Assert.False(WebhookSignature.Verify(scene.WebhookSecret, hook.Id, hook.Timestamp, hook.Body, hook.Signature, now.AddMinutes(6)));
        }

        Assert.Equal("active", active.Data.GetProperty("status").GetString());
        Assert.Equal("connected", active.Data.GetProperty("reason").GetString());
        Assert.Equal("active", revoked.Data.GetProperty("previous_status").GetString());
        Assert.Equal("refresh_token:200 access_token:200", revoked.Data.GetProperty("provider_revocation").GetString());
    }

    [Fact]
    public async Task AFailingReceiverGetsTheSameDeliveryAgainAfterABackoffAndTheLogShowsEveryAttempt()
    {
        await using var scene = await RefreshScene.StartAsync();
        scene.Hooks.FailNext(1);
        await scene.Kit.ConnectAsync(scene.Provider);

        var delivered = await scene.Hooks.WaitForAsync(d => d.Type == "connection.active");
        var attempts = scene.Hooks.Received.Where(d => d.Id == delivered.Id).ToList();
        Assert.Equal([500, 200], attempts.Select(d => d.Answered));
        // The same message id and body every time, so that a receiver can de-duplicate; signed anew per attempt.
        Assert.Equal(attempts[0].Body, attempts[1].Body);
        Assert.True(attempts[1].ReceivedAt > attempts[0].ReceivedAt);

        var hooks = await scene.Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/webhooks");
        var webhookId = Assert.Single(hooks.GetProperty("webhooks").EnumerateArray()).GetProperty("id").GetString();
        // The receiver has answered 200; Nexus records the outcome right after that answer reaches it, so the log is
        // read until it shows the delivery as delivered (on a busy machine it may still say pending for a moment).
        JsonElement entry = default;
        await RefreshKit.EventuallyAsync(async () =>
        {
            var log = await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/webhooks/{webhookId}/deliveries");
            entry = Assert.Single(log.GetProperty("deliveries").EnumerateArray(), d => d.GetProperty("id").GetString() == delivered.Id);
            return entry.GetProperty("status").GetString() == "delivered";
        }, "the delivery logged as delivered");
        Assert.Equal("connection.active", entry.GetProperty("event").GetString());
        Assert.Equal(2, entry.GetProperty("attempts").GetInt32());
        Assert.Equal(200, entry.GetProperty("last_status_code").GetInt32());
        Assert.True(entry.TryGetProperty("delivered_at", out _));

        // A receiver that keeps failing: the log shows the failure and when Nexus tries next.
        scene.Hooks.FailNext(100);
        await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{webhookId}/test", expected: HttpStatusCode.Accepted);
        await RefreshKit.EventuallyAsync(async () =>
        {
            var deliveries = (await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/webhooks/{webhookId}/deliveries")).GetProperty("deliveries").EnumerateArray();
            return deliveries.Any(d => d.GetProperty("event").GetString() == "webhook.test" && d.GetProperty("attempts").GetInt32() >= 1
                && d.GetProperty("status").GetString() == "pending" && d.GetProperty("last_error").GetString() == "HTTP 500" && d.TryGetProperty("next_attempt_at", out _));
        }, "a failed test delivery in the log");
    }

    [Fact]
    public async Task AWorkspaceWebhookHearsOnlyItsOwnWorkspace()
    {
        await using var scene = await RefreshScene.StartAsync();
        await using var other = await WebhookReceiver.StartAsync();
        var (_, secret) = await scene.Kit.WebhookAsync(other.Url, ["connection.active"], "ws_mine");
        var mine = await scene.Kit.ConnectAsync(scene.Provider, "ws_mine");
        await scene.Kit.ConnectAsync(scene.Provider, "ws_theirs");

        // The deployment-wide webhook hears both; the workspace one only its own.
        await scene.Hooks.WaitForAsync(d => d.Json.GetProperty("workspace_id").GetString() == "ws_theirs");
        var hook = await other.WaitForAsync(_ => true);
        Assert.Equal(mine, hook.Data.GetProperty("connection_id").GetString());
        Assert.True(WebhookSignature.Verify(secret, hook.Id, hook.Timestamp, hook.Body, hook.Signature, DateTimeOffset.UtcNow));
        await scene.WebhooksSettledAsync();
        Assert.Single(other.Received);
    }

    [Fact]
    public async Task AReceiverDownForMostOfADayStillGetsTheDeliveryOnTheRetryScheduleAndAFailedOneSentAgainGetsANewScheduleWhileTheLogKeepsCountingAttempts()
    {
        await using var scene = await RefreshScene.StartAsync();
        var webhookId = await WebhookIdAsync(scene, scene.Hooks.Url);
        scene.Hooks.FailNext(int.MaxValue);
        await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{webhookId}/test", expected: HttpStatusCode.Accepted);

        // Each failed attempt is followed by the next wait of the schedule (±20% jitter); Nexus's clock is moved over it.
        var waited = TimeSpan.Zero;
        for (var attempt = 1; attempt <= WebhookDispatcher.MaxAttempts; attempt++)
        {
            var entry = await DeliveryAfterAsync(scene, webhookId, attempt);
            Assert.Equal("HTTP 500", entry.GetProperty("last_error").GetString());
            if (attempt == WebhookDispatcher.MaxAttempts)
            {
                Assert.Equal("failed", entry.GetProperty("status").GetString());
                Assert.False(entry.TryGetProperty("next_attempt_at", out _));
                break;
            }

            Assert.Equal("pending", entry.GetProperty("status").GetString());
            var wait = DateTimeOffset.FromUnixTimeSeconds(entry.GetProperty("next_attempt_at").GetInt64()) - scene.Server.Time.GetUtcNow();
            var planned = WebhookDispatcher.RetryDelays[attempt - 1];
            Assert.InRange(wait, (planned * 0.8) - TimeSpan.FromSeconds(5), planned * 1.2);
            scene.Server.Time.Advance(wait + TimeSpan.FromSeconds(1));
            waited += wait;
        }

        Assert.Equal(WebhookDispatcher.MaxAttempts, scene.Hooks.Received.Count(d => d.Type == "webhook.test"));
        // Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about a day (27.5 h planned) before it gives up.
        Assert.InRange(waited, TimeSpan.FromHours(20), TimeSpan.FromHours(34));

        // The receiver is coming back: an administrator sends the failed delivery again, with a whole new schedule. The
        // log keeps counting: the 8 attempts made stay in it, and the resend's attempts come after them.
        scene.Hooks.FailNext(1);
        var deliveryId = (await DeliveryAfterAsync(scene, webhookId, WebhookDispatcher.MaxAttempts)).GetProperty("id").GetString();
        var retried = await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{webhookId}/deliveries/{deliveryId}/retry", expected: HttpStatusCode.Accepted);
        Assert.Equal("pending", retried.GetProperty("status").GetString());
        Assert.Equal(WebhookDispatcher.MaxAttempts, retried.GetProperty("attempts").GetInt32());

        // Its first attempt fails once more: the new schedule's first wait follows (5 s, not "failed" for good).
        var resent = await DeliveryAfterAsync(scene, webhookId, WebhookDispatcher.MaxAttempts + 1);
        Assert.Equal("pending", resent.GetProperty("status").GetString());
        var firstWait = DateTimeOffset.FromUnixTimeSeconds(resent.GetProperty("next_attempt_at").GetInt64()) - scene.Server.Time.GetUtcNow();
        Assert.InRange(firstWait, (WebhookDispatcher.RetryDelays[0] * 0.8) - TimeSpan.FromSeconds(5), WebhookDispatcher.RetryDelays[0] * 1.2);
        scene.Server.Time.Advance(firstWait + TimeSpan.FromSeconds(1));
        await scene.Hooks.WaitForAsync(d => d.Id == deliveryId);
        var delivered = await DeliveryAfterAsync(scene, webhookId, WebhookDispatcher.MaxAttempts + 2);
        Assert.Equal("delivered", delivered.GetProperty("status").GetString());
        Assert.Equal(WebhookDispatcher.MaxAttempts + 2, scene.Hooks.Received.Count(d => d.Id == deliveryId));

        // Delivered is final; an unknown delivery, or another webhook's, is not found.
        var again = await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{webhookId}/deliveries/{deliveryId}/retry", expected: HttpStatusCode.Conflict);
        Assert.Equal("delivery_delivered", again.GetProperty("code").GetString());
        await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{webhookId}/deliveries/msg_unknown/retry", expected: HttpStatusCode.NotFound);
        await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/wh_unknown/deliveries/{deliveryId}/retry", expected: HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData(3, 0, 3)] // never sent again
    [InlineData(8, 8, 0)] // sent again after its 8 attempts, none since
    [InlineData(10, 8, 2)] // two attempts into the new schedule
    [InlineData(1, 8, 1)] // reset to 0 by a version before migration 0021 (rolled back to), one attempt since
    public void WhereAnAttemptFallsInTheRetryScheduleCountsFromTheScheduleStart(int attempts, int scheduleStart, int inSchedule)
    {
        var delivery = new WebhookDelivery("msg_1", "wh_1", WebhookEvents.Test, "{}", DeliveryStatus.Pending, attempts, DateTimeOffset.UnixEpoch, null, null,
            DateTimeOffset.UnixEpoch, null, scheduleStart);
        Assert.Equal(inSchedule, delivery.AttemptsInSchedule);
    }

    [Fact]
    public async Task ADeliverySentAgainWhileItsLastScheduledAttemptIsInFlightIsNotLostWhenThatAttemptFails()
    {
        await using var scene = await RefreshScene.StartAsync(services: s => s.AddHttpClient(Nexus.Server.Notifications.WebhookDispatcher.HttpClientName, c => c.Timeout = TimeSpan.FromMinutes(5)));
        await using var receiver = await WebhookReceiver.StartAsync();
        var (webhookId, _) = await scene.Kit.WebhookAsync(receiver.Url);
        var store = scene.Server.Services.GetRequiredService<WebhookStore>();

        // A test event whose first attempt fails; then, as if seven had failed, the next attempt is the schedule's last.
        receiver.FailNext(1);
        await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/admin/webhooks/{webhookId}/test", null, HttpStatusCode.Accepted);
        await RefreshKit.EventuallyAsync(async () => (await store.DeliveriesAsync(webhookId, 10, CancellationToken.None)).Any(d => d.Attempts == 1), "the first attempt refused");
        var delivery = Assert.Single(await store.DeliveriesAsync(webhookId, 10, CancellationToken.None));
        var gate = new Gate();
        receiver.Hold = gate;
        receiver.FailNext(1);
        var db = scene.Server.Services.GetRequiredService<Nexus.Server.Data.NexusDatabase>();
        await using (var connection = await db.OpenAsync())
        {
            await Dapper.SqlMapper.ExecuteAsync(connection, "UPDATE webhook_deliveries SET attempts = 7, next_attempt_at = 0 WHERE id = @id", new { id = delivery.Id });
        }

        scene.Server.Services.GetRequiredService<WebhookDispatcher>().Wake();
        try
        {
            // The last attempt is in flight (held by the receiver) when an administrator sends the delivery again.
            await gate.Arrived;
            var resent = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/admin/webhooks/{webhookId}/deliveries/{delivery.Id}/retry", null, HttpStatusCode.Accepted);
            Assert.Equal("pending", resent.GetProperty("status").GetString());
        }
        finally
        {
            gate.Release();
        }

        // The held attempt fails; the resend still stands and is sent, once, and delivered.
        await receiver.WaitForAsync(d => d.Type == "webhook.test");
        await RefreshKit.EventuallyAsync(async () => (await store.DeliveriesAsync(webhookId, 10, CancellationToken.None)).Single().Status == DeliveryStatus.Delivered, "delivered");
        var final = Assert.Single(await store.DeliveriesAsync(webhookId, 10, CancellationToken.None));
        Assert.Equal(9, final.Attempts);
        Assert.Equal([500, 500, 200], receiver.Received.Where(d => d.Type == "webhook.test").Select(d => d.Answered));
    }

    [Fact]
    public async Task AReceiverThatHangsDoesNotHoldUpAnotherWebhooksDeliveriesWhichArriveInTheOrderTheyWereQueued()
    {
        // The delivery timeout (10 s) lengthened for this test: the hanging receiver's first attempt must still be in
        // flight when the checks run, however long a busy machine takes to get there (waiting on events, not on time).
        await using var scene = await RefreshScene.StartAsync(services: s => s.AddHttpClient(Nexus.Server.Notifications.WebhookDispatcher.HttpClientName, c => c.Timeout = TimeSpan.FromMinutes(5)));
        await using var hanging = await WebhookReceiver.StartAsync();
        var gate = new Gate();
        hanging.Hold = gate;
        await scene.Kit.WebhookAsync(hanging.Url);
        try
        {
            var connections = new List<string>();
            for (var i = 0; i < 3; i++)
            {
                connections.Add(await scene.Kit.ConnectAsync(scene.Provider));
            }

            // The hanging receiver holds Nexus's first attempt: the other webhook's three events arrive meanwhile (one
            // after another on one lane, they waited behind it, 10 s each at the default timeout).
            await gate.Arrived;
            await scene.Hooks.WaitUntilAsync(received => received.Count(d => d.Type == "connection.active" && d.Answered == 200) == 3,
                "the other receiver's three deliveries while the first hangs", TimeSpan.FromSeconds(60));
            Assert.Equal(connections, scene.Hooks.Received.Where(d => d.Type == "connection.active").Select(d => d.Data.GetProperty("connection_id").GetString()));
            // One attempt at a time per webhook: the hanging receiver has been sent only its first.
            Assert.Single(hanging.Received);
        }
        finally
        {
            gate.Release();
        }
    }

    [Fact]
    public async Task AReceiverThatAnswersWithAnEndlessBodyIsDeliveredByItsStatusWithoutNexusReadingTheBody()
    {
        await using var scene = await RefreshScene.StartAsync();
        const long body = 256L * 1024 * 1024;
        scene.Hooks.StreamBytes = body;
        var webhookId = await WebhookIdAsync(scene, scene.Hooks.Url);
        await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{webhookId}/test", expected: HttpStatusCode.Accepted);

        // Nexus reads the status and drops the connection: the receiver could not send its body (a buffered read took it all, up to 2 GB).
        var (sent, cutOff) = await scene.Hooks.Streamed.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(cutOff, $"Nexus read the receiver's answer to its end ({sent} bytes of {body}) instead of dropping the connection");
        var entry = await DeliveryAfterAsync(scene, webhookId, 1);
        Assert.Equal("delivered", entry.GetProperty("status").GetString());
        Assert.Equal(200, entry.GetProperty("last_status_code").GetInt32());
    }

    [Fact]
    public async Task AWebhookDeletedWhileAnEventIsQueuedIsSkippedAndEveryOtherWebhookStillGetsTheEvent()
    {
        await using var scene = await RefreshScene.StartAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await scene.Kit.WebhookAsync(receiver.Url, ["connection.active"])).Id);
        }

        var store = scene.Server.Services.GetRequiredService<WebhookStore>();
        var db = scene.Server.Services.GetRequiredService<Nexus.Server.Data.NexusDatabase>();
        await using var admin = await db.OpenAsync();
        var victim = ids[1];
        var deleted = false;

        // The webhooks are read, then an administrator deletes one before its delivery is inserted.
        var queued = await store.EnqueueAsync("connection.active", "ws_any", null, id =>
        {
            if (!deleted)
            {
                deleted = true;
                Dapper.SqlMapper.Execute(admin, "DELETE FROM webhook_deliveries WHERE webhook_id = @victim; DELETE FROM webhooks WHERE id = @victim", new { victim });
            }

            return "{}";
        }, CancellationToken.None);

        // The scene's own webhook (all events) and the two that remain: one delivery each, none for the deleted one.
        Assert.Equal(3, queued.Count);
        foreach (var id in ids.Where(id => id != victim))
        {
            Assert.Single(await store.DeliveriesAsync(id, 10, CancellationToken.None));
        }

        Assert.Empty(await store.DeliveriesAsync(victim, 10, CancellationToken.None));
    }

    [Fact]
    public async Task WhenQueueingFailsAndTheWebhooksCannotBeReadEitherTheFailureReportedIsTheQueueings()
    {
        await using var scene = await RefreshScene.StartAsync();
        var store = scene.Server.Services.GetRequiredService<WebhookStore>();
        var db = scene.Server.Services.GetRequiredService<Nexus.Server.Data.NexusDatabase>();
        await using var admin = await db.OpenAsync();
        var dropped = false;

        // The insert fails, and so does the probe that asks whether the webhook was deleted meanwhile.
        var failure = await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => store.EnqueueAsync("connection.active", "ws_any", null, _ =>
        {
            if (!dropped)
            {
                dropped = true;
                Dapper.SqlMapper.Execute(admin, "DROP TABLE webhook_deliveries");
                Dapper.SqlMapper.Execute(admin, "DROP TABLE webhooks");
            }

            return "{}";
        }, CancellationToken.None));

        // The insert's exception, not the probe's (the probe is the store's only scalar query here).
        Assert.Contains("SqlMapper.ExecuteImplAsync", failure.StackTrace, StringComparison.Ordinal);
        Assert.DoesNotContain("ExecuteScalar", failure.StackTrace, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TestingOneWebhookSendsTheTestEventToThatWebhookAlone()
    {
        await using var scene = await RefreshScene.StartAsync();
        await using var other = await WebhookReceiver.StartAsync();
        var (otherId, _) = await scene.Kit.WebhookAsync(other.Url);

        await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{otherId}/test", expected: HttpStatusCode.Accepted);
        var test = await other.WaitForAsync(d => d.Type == "webhook.test");
        Assert.Equal(otherId, test.Data.GetProperty("webhook_id").GetString());
        await scene.WebhooksSettledAsync();
        Assert.DoesNotContain(scene.Hooks.Received, d => d.Type == "webhook.test");
    }

    [Fact]
    public async Task AWebhookWhoseSecretCannotBeDecryptedFailsItsAttemptsInTheLogSaysSoOnceAndHoldsUpNoOtherWebhook()
    {
        var logs = new CapturedLogs();
        await using var scene = await RefreshScene.StartAsync(services: s => s.AddSingleton<ILoggerProvider>(logs));
        await using var orphan = await WebhookReceiver.StartAsync();
        var (orphanId, secret) = await scene.Kit.WebhookAsync(orphan.Url);
        // As if its encryption key had been removed from PREVIOUS_ENCRYPTION_KEYS: sealed with a key Nexus does not have.
        var foreign = new KeyRing(RandomNumberGenerator.GetBytes(32), []).Encrypt(secret, WebhookStore.Column.ContextFor(orphanId));
        await scene.Database.ScalarAsync("UPDATE webhooks SET secret = @secret WHERE id = @id", ("secret", foreign), ("id", orphanId));

        await scene.Kit.ConnectAsync(scene.Provider);
        await scene.Kit.ConnectAsync(scene.Provider);
        await scene.Hooks.WaitUntilAsync(received => received.Count(d => d.Type == "connection.active") == 2, "the other webhook's deliveries");

        JsonElement[] entries = [];
        await RefreshKit.EventuallyAsync(async () =>
        {
            entries = [.. (await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/webhooks/{orphanId}/deliveries")).GetProperty("deliveries").EnumerateArray()];
            return entries.Length == 2 && entries.All(e => e.GetProperty("attempts").GetInt32() == 1);
        }, "both deliveries with a failed attempt");
        foreach (var entry in entries)
        {
            Assert.Equal("pending", entry.GetProperty("status").GetString());
            Assert.Equal(WebhookDispatcher.UndecryptableSecret, entry.GetProperty("last_error").GetString());
            Assert.Equal(JsonValueKind.Number, entry.GetProperty("next_attempt_at").ValueKind);
        }

        Assert.Empty(orphan.Received);
        Assert.Single(logs.Lines, l => l.Contains("cannot be decrypted", StringComparison.Ordinal) && l.Contains(orphanId, StringComparison.Ordinal));
        Assert.DoesNotContain(secret, logs.All, StringComparison.Ordinal);
    }

    private static async Task<string> WebhookIdAsync(RefreshScene scene, string url) =>
        (await scene.Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/webhooks")).GetProperty("webhooks").EnumerateArray()
            .Single(w => w.GetProperty("url").GetString() == url).GetProperty("id").GetString()!;

    /// <summary>The webhook's newest delivery once its log shows <paramref name="attempts"/> attempts (each recorded right after the receiver's answer).</summary>
    private static async Task<JsonElement> DeliveryAfterAsync(RefreshScene scene, string webhookId, int attempts)
    {
        JsonElement entry = default;
        await RefreshKit.EventuallyAsync(async () =>
        {
            var log = await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/webhooks/{webhookId}/deliveries");
            entry = log.GetProperty("deliveries").EnumerateArray().FirstOrDefault();
            return entry.ValueKind == JsonValueKind.Object && entry.GetProperty("attempts").GetInt32() == attempts
                && (attempts > 1 || entry.GetProperty("status").GetString() != "pending" || entry.TryGetProperty("last_error", out var e) && e.ValueKind == JsonValueKind.String);
        }, $"a delivery with {attempts} attempts in the log");
        return entry;
    }
}
