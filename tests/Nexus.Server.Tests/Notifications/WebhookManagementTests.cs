using System.Net;
using System.Text;
using Nexus.Server.Notifications;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Notifications;

/// <summary>
/// A webhook after it was added: a new signing secret with an overlap (the replaced one signs beside it, Standard
/// Webhooks' several signatures), paused and resumed, its URL and events changed (PATCH /v1/admin/webhooks/{id}).
/// </summary>
public sealed class WebhookManagementTests
{
    [Fact]
    public async Task ARotatedSecretSignsBesideTheReplacedOneUntilItsOverlapEndsAndAloneAfter()
    {
        await using var scene = await RefreshScene.StartAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var (id, first) = await scene.Kit.WebhookAsync(receiver.Url);

        var rotated = await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/secret");
        var second = rotated.GetProperty("secret").GetString()!;
        Assert.StartsWith(WebhookSignature.SecretPrefix, second, StringComparison.Ordinal);
        Assert.NotEqual(first, second);
        var until = rotated.GetProperty("previous_secret_expires_at").UnixTime();
        Assert.InRange(until - scene.Server.Time.GetUtcNow(), TimeSpan.FromHours(23.9), TimeSpan.FromDays(1) + TimeSpan.FromSeconds(1));
        // Shown once: the listing has neither secret, and the replaced one is stored encrypted like the secret.
        var listed = Assert.Single((await scene.Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/webhooks")).GetProperty("webhooks").EnumerateArray(), w => w.GetProperty("id").GetString() == id);
        Assert.False(listed.TryGetProperty("secret", out _));
        Assert.Equal(until, listed.GetProperty("previous_secret_expires_at").UnixTime());
        var stored = (byte[])(await scene.Database.ScalarAsync("SELECT previous_secret FROM webhooks WHERE id = @id", ("id", id)))!;
        Assert.DoesNotContain(first, Encoding.Latin1.GetString(stored), StringComparison.Ordinal);

        // During the overlap each delivery carries both signatures: a receiver still on the first secret, and one
        // already on the second, both verify it.
        var during = await TestEventAsync(scene, receiver, id);
        Assert.Equal(2, during.Signature.Split(' ').Length);
        Assert.True(Verifies(first, during));
        Assert.True(Verifies(second, during));

        // After it, the new secret alone.
        scene.Server.Time.Advance(TimeSpan.FromDays(1) + TimeSpan.FromMinutes(1));
        var after = await TestEventAsync(scene, receiver, id);
        Assert.Single(after.Signature.Split(' '));
        Assert.True(Verifies(second, after));
        Assert.False(Verifies(first, after));
        Assert.False((await scene.Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/webhooks")).GetProperty("webhooks").EnumerateArray()
            .Single(w => w.GetProperty("id").GetString() == id).TryGetProperty("previous_secret_expires_at", out var gone) && gone.ValueKind != System.Text.Json.JsonValueKind.Null);

        // A leaked secret is replaced without an overlap: it stops signing at once.
        var third = (await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/secret", new { overlap_seconds = 0 })).GetProperty("secret").GetString()!;
        var now = await TestEventAsync(scene, receiver, id);
        Assert.Single(now.Signature.Split(' '));
        Assert.True(Verifies(third, now));
        Assert.False(Verifies(second, now));
    }

    [Fact]
    public async Task ARotationAsksForAnOverlapOfAtMostSevenDaysOfAWebhookThatExists()
    {
        await using var scene = await RefreshScene.StartAsync();
        var (id, _) = await scene.Kit.WebhookAsync("https://hooks.example.test/nexus");

        foreach (var overlap in new[] { -1, 604_801 })
        {
            var refused = await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/secret", new { overlap_seconds = overlap }, HttpStatusCode.BadRequest);
            Assert.Equal("validation_failed", refused.GetProperty("code").GetString());
            Assert.True(refused.GetProperty("errors").TryGetProperty("overlap_seconds", out _));
        }

        var longest = await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/secret", new { overlap_seconds = 604_800 });
        Assert.InRange(longest.GetProperty("previous_secret_expires_at").UnixTime() - scene.Server.Time.GetUtcNow(), TimeSpan.FromDays(7) - TimeSpan.FromMinutes(1), TimeSpan.FromDays(7) + TimeSpan.FromSeconds(1));
        Assert.Equal("not_found", (await scene.Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/webhooks/wh_nothere/secret", expected: HttpStatusCode.NotFound)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task AWebhookWhoseSecretCannotBeDecryptedGetsANewOneWithNoOverlapAndItsDeliveriesGoOutSignedWithIt()
    {
        await using var scene = await RefreshScene.StartAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var (id, first) = await scene.Kit.WebhookAsync(receiver.Url);
        // As if its encryption key had been removed from PREVIOUS_ENCRYPTION_KEYS: sealed with a key Nexus does not have.
        var foreign = new Nexus.Server.Vault.KeyRing(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32), []).Encrypt(first, WebhookStore.Column.ContextFor(id));
        await scene.Database.ScalarAsync("UPDATE webhooks SET secret = @secret WHERE id = @id", ("secret", foreign), ("id", id));

        // The default overlap is asked for: there is nothing that can sign beside the new secret, so it signs alone.
        var rotated = await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/secret");
        Assert.True(!rotated.TryGetProperty("previous_secret_expires_at", out var until) || until.ValueKind == System.Text.Json.JsonValueKind.Null, rotated.ToString());
        var test = await TestEventAsync(scene, receiver, id);
        Assert.Single(test.Signature.Split(' '));
        Assert.True(Verifies(rotated.GetProperty("secret").GetString()!, test));
    }

    [Fact]
    public async Task AnExpiredPreviousSecretIsForgottenAtTheNextDelivery()
    {
        await using var scene = await RefreshScene.StartAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var (id, _) = await scene.Kit.WebhookAsync(receiver.Url);
        await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/secret", new { overlap_seconds = 60 });
        Assert.NotNull(await scene.Database.ScalarAsync("SELECT previous_secret FROM webhooks WHERE id = @id", ("id", id)));

        scene.Server.Time.Advance(TimeSpan.FromMinutes(2));
        await TestEventAsync(scene, receiver, id);
        Assert.Null(await scene.Database.ScalarAsync("SELECT previous_secret FROM webhooks WHERE id = @id", ("id", id)));
    }

    [Fact]
    public async Task APausedWebhookIsSentNothingNewAndWhatWaitedGoesOutWhenItIsResumed()
    {
        await using var scene = await RefreshScene.StartAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var (id, _) = await scene.Kit.WebhookAsync(receiver.Url);

        // A delivery whose first attempt failed is waiting for its retry when the webhook is paused.
        receiver.FailNext(1);
        await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/test", expected: HttpStatusCode.Accepted);
        await receiver.WaitUntilAsync(r => r.Count == 1, "the first attempt");
        var paused = await scene.Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/webhooks/{id}", new { disabled = true });
        var since = paused.GetProperty("disabled_at").UnixTime();
        // Pausing again keeps the time it was first paused.
        Assert.Equal(since, (await scene.Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/webhooks/{id}", new { disabled = true })).GetProperty("disabled_at").UnixTime());

        // Its retry falls due, and an event it listens to happens (the scene's own webhook gets it): nothing is sent
        // to the paused one, nothing new is queued for it, and a test or a resend is refused.
        scene.Server.Time.Advance(TimeSpan.FromMinutes(10));
        await scene.Kit.ConnectAsync(scene.Provider);
        await scene.Hooks.WaitForAsync(d => d.Type == "connection.active");
        var test = await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/test", expected: HttpStatusCode.Conflict);
        Assert.Equal("webhook_paused", test.GetProperty("code").GetString());
        var waiting = Assert.Single((await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/webhooks/{id}/deliveries")).GetProperty("deliveries").EnumerateArray());
        Assert.Equal(("webhook.test", "pending", 1), (waiting.GetProperty("event").GetString(), waiting.GetProperty("status").GetString(), waiting.GetProperty("attempts").GetInt32()));
        var resend = await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/deliveries/{waiting.GetProperty("id").GetString()}/retry", expected: HttpStatusCode.Conflict);
        Assert.Equal("webhook_paused", resend.GetProperty("code").GetString());
        await scene.WebhooksSettledAsync();
        Assert.Single(receiver.Received);

        // Resumed: the delivery that waited goes out; the event that happened while it was paused was never queued.
        var resumed = await scene.Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/webhooks/{id}", new { disabled = false });
        Assert.Equal(System.Text.Json.JsonValueKind.Null, resumed.TryGetProperty("disabled_at", out var d) ? d.ValueKind : System.Text.Json.JsonValueKind.Null);
        var delivered = await receiver.WaitForAsync(r => r.Type == "webhook.test");
        Assert.Equal(waiting.GetProperty("id").GetString(), delivered.Id);
        await scene.WebhooksSettledAsync();
        Assert.DoesNotContain(receiver.Received, r => r.Type == "connection.active");

        // Paused again, a delivered delivery is still "delivered" to a resend: that it was delivered is what matters.
        await scene.Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/webhooks/{id}", new { disabled = true });
        await RefreshKit.EventuallyAsync(async () => (await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/webhooks/{id}/deliveries")).GetProperty("deliveries")
            .EnumerateArray().Any(d => d.GetProperty("id").GetString() == delivered.Id && d.GetProperty("status").GetString() == "delivered"), "the delivery logged as delivered");
        var twice = await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/deliveries/{delivered.Id}/retry", expected: HttpStatusCode.Conflict);
        Assert.Equal("delivery_delivered", twice.GetProperty("code").GetString());
    }

    [Fact]
    public async Task AWebhooksUrlAndEventsChangeUnderTheRulesTheyWereAddedUnderAndWhatIsNotGivenIsKept()
    {
        await using var scene = await RefreshScene.StartAsync();
        await using var before = await WebhookReceiver.StartAsync();
        await using var after = await WebhookReceiver.StartAsync();
        var (id, secret) = await scene.Kit.WebhookAsync(before.Url, ["connection.active"], "ws_kept");

        var moved = await scene.Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/webhooks/{id}", new { url = after.Url });
        Assert.Equal((after.Url, "connection.active", "ws_kept"),
            (moved.GetProperty("url").GetString(), string.Join(" ", moved.GetProperty("events").EnumerateArray().Select(e => e.GetString())), moved.GetProperty("workspace_id").GetString()));
        var test = await TestEventAsync(scene, after, id);
        Assert.True(Verifies(secret, test));
        Assert.Empty(before.Received);

        var events = await scene.Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/webhooks/{id}", new { events = new[] { "connection.revoked", "connection.active", "connection.revoked" } });
        Assert.Equal(["connection.revoked", "connection.active"], events.GetProperty("events").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(after.Url, events.GetProperty("url").GetString());

        foreach (var (body, field) in new (object, string)[]
        {
            (new { url = "http://hooks.example.test/plain" }, "url"), (new { url = "not a url" }, "url"),
            (new { events = Array.Empty<string>() }, "events"), (new { events = new[] { "connection.unknown" } }, "events"),
        })
        {
            var refused = await scene.Server.AdminJsonAsync(HttpMethod.Patch, $"/v1/admin/webhooks/{id}", body, HttpStatusCode.BadRequest);
            Assert.True(refused.GetProperty("errors").TryGetProperty(field, out _), refused.ToString());
        }

        var unchanged = (await scene.Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/webhooks")).GetProperty("webhooks").EnumerateArray().Single(w => w.GetProperty("id").GetString() == id);
        Assert.Equal(after.Url, unchanged.GetProperty("url").GetString());
        Assert.Equal("not_found", (await scene.Server.AdminJsonAsync(HttpMethod.Patch, "/v1/admin/webhooks/wh_nothere", new { disabled = true }, HttpStatusCode.NotFound)).GetProperty("code").GetString());
    }

    /// <summary>Sends the webhook a test event and returns it as the receiver got it.</summary>
    private static async Task<WebhookReceiver.Delivery> TestEventAsync(RefreshScene scene, WebhookReceiver receiver, string id)
    {
        var seen = receiver.Received.Select(r => r.Id).ToHashSet();
        await scene.Server.AdminJsonAsync(HttpMethod.Post, $"/v1/admin/webhooks/{id}/test", expected: HttpStatusCode.Accepted);
        return await receiver.WaitForAsync(r => r.Type == "webhook.test" && !seen.Contains(r.Id));
    }

    /// <summary>What a receiver holding <paramref name="secret"/> does (Standard Webhooks), at the delivery's own time.</summary>
    private static bool Verifies(string secret, WebhookReceiver.Delivery delivery) =>
        WebhookSignature.Verify(secret, delivery.Id, delivery.Timestamp, delivery.Body, delivery.Signature, DateTimeOffset.FromUnixTimeSeconds(delivery.Timestamp));
}

/// <summary>Nexus's JSON times: Unix seconds.</summary>
internal static class UnixTimes
{
    public static DateTimeOffset UnixTime(this System.Text.Json.JsonElement element) => DateTimeOffset.FromUnixTimeSeconds(element.GetInt64());
}
