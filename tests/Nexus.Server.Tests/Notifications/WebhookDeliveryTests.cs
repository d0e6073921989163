using System.Net;
using System.Text.Json;
using Nexus.Server.Notifications;
using Nexus.Server.Tests.Infrastructure;

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
}
