using System.Net;
using Nexus.Server.Notifications;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections.Refresh;

/// <summary>
/// The failure policy: a rejected grant needs the user (attention_required, a webhook, no retries); a provider that is
/// down, failing or slow is retried with backoff while the connection stays active and reads get the current token
/// for as long as it is valid.
/// </summary>
public sealed class RefreshFailureTests
{
    [Fact]
    public async Task ARevokedGrantMakesTheConnectionAttentionRequiredWithASignedWebhookAndNoFurtherRefreshes()
    {
        await using var scene = await RefreshScene.StartAsync(background: true);
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        // The user removes the app at the provider: its refreshes now answer invalid_grant.
        scene.Upstream.RevokeFamily(await scene.Kit.TokenAsync(id));
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3601));

        var (status, _, problem) = await scene.Kit.ReadAsync(id);
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("connection_not_active", problem.GetProperty("code").GetString());
        Assert.Equal("attention_required", problem.GetProperty("status").GetString());
        Assert.Equal("invalid_grant", problem.GetProperty("error").GetString());

        var hook = await scene.Hooks.WaitForAsync(d => d.Type == "connection.attention_required");
        Assert.True(WebhookSignature.Verify(scene.WebhookSecret, hook.Id, hook.Timestamp, hook.Body, hook.Signature, scene.Server.Time.GetUtcNow()));
        Assert.Equal(id, hook.Data.GetProperty("connection_id").GetString());
        Assert.Equal("invalid_grant", hook.Data.GetProperty("error").GetString());
        Assert.Equal("ws_refresh", hook.Json.GetProperty("workspace_id").GetString());

        // Neither reads nor the background refresher (which looks every second) try again.
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.Conflict, (await scene.Kit.ReadAsync(id)).Status);
        }

        await scene.RefresherSettledAsync();
        Assert.Single(scene.Upstream.RefreshCalls);
        var connection = await scene.Kit.ConnectionAsync(id);
        Assert.Equal("attention_required", connection.GetProperty("status").GetString());
        Assert.Equal("invalid_grant", connection.GetProperty("error").GetString());
        var audit = await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}&event=attention_required");
        Assert.Equal("invalid_grant", Assert.Single(audit.GetProperty("events").EnumerateArray()).GetProperty("detail").GetProperty("error").GetString());
        Assert.Single(scene.Hooks.Received, d => d.Type == "connection.attention_required");
    }

    [Theory]
    [InlineData("connection refused")]
    [InlineData("HTTP 500")]
    [InlineData("timeout")]
    public async Task AnUnreachableProviderKeepsTheConnectionActiveBacksOffAndRecovers(string failure)
    {
        await using var scene = await RefreshScene.StartAsync(background: true, s =>
        {
            s["Nexus:UpstreamTimeoutSeconds"] = "1";
            s["Nexus:Refresh:RetryDelaySeconds"] = "1";
            s["Nexus:Refresh:MaxRetryDelaySeconds"] = "4";
        }, provider: new { refresh_margin_seconds = 120 });
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = await scene.Kit.TokenAsync(id);
        switch (failure)
        {
            case "connection refused":
                await scene.Upstream.StopAsync();
                break;
            case "HTTP 500":
                scene.Upstream.FailWithStatus = 500;
                break;
            default:
                scene.Upstream.RefreshDelay = TimeSpan.FromSeconds(3);
                break;
        }

        // Within the margin, 60 s before expiry: every refresh fails, every read still gets the valid token.
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3600 - 60));
        var until = DateTime.UtcNow.AddSeconds(6);
        var reads = 0;
        while (DateTime.UtcNow < until)
        {
            Assert.Equal(first, await scene.Kit.TokenAsync(id));
            reads++;
            await Task.Delay(20);
        }

        // Backoff: a handful of attempts in 6 s, not one per read (or per background pass).
        var failures = await scene.ColumnAsync(id, "refresh_failures");
        Assert.InRange(failures ?? 0, 2, 6);
        Assert.True(reads > 20, $"only {reads} reads");
        var attempts = scene.Upstream.RefreshCalls.Select(c => c.At).Order().ToList();
        for (var i = 1; i < attempts.Count; i++)
        {
            // After failure i the delay is at least half of min(4 s, 1 s · 2^(i-1)).
            var lowerBound = Math.Min(4000, 1000 << (i - 1)) / 2;
            Assert.True(attempts[i] - attempts[i - 1] >= lowerBound - 150, $"attempt {i + 1} came {attempts[i] - attempts[i - 1]} ms after the previous one");
        }

        // Expired: reads answer 503 with Retry-After rather than a dead token, and the connection stays active.
        scene.Server.Time.Advance(TimeSpan.FromSeconds(61));
        var (status, body, response) = await scene.Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal("refresh_unavailable", body.GetProperty("code").GetString());
        Assert.Equal("active", body.GetProperty("status").GetString());
        Assert.InRange(response.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 5);
        response.Dispose();
        Assert.Equal("active", (await scene.Kit.ConnectionAsync(id)).GetProperty("status").GetString());

        var hook = await scene.Hooks.WaitForAsync(d => d.Type == "connection.refresh_failed");
        Assert.True(WebhookSignature.Verify(scene.WebhookSecret, hook.Id, hook.Timestamp, hook.Body, hook.Signature, scene.Server.Time.GetUtcNow()));
        Assert.Equal("active", hook.Data.GetProperty("status").GetString());

        // The provider comes back: the next retry succeeds, and reads get a new token.
        switch (failure)
        {
            case "connection refused":
                await scene.Upstream.StartAgainAsync();
                break;
            case "HTTP 500":
                scene.Upstream.FailWithStatus = null;
                break;
            default:
                scene.Upstream.RefreshDelay = TimeSpan.Zero;
                break;
        }

        string? fresh = null;
        await RefreshKit.EventuallyAsync(async () => (fresh = (await scene.Kit.ReadAsync(id)).AccessToken) is not null, "a read after the provider came back", TimeSpan.FromSeconds(15));
        Assert.NotEqual(first, fresh);
        Assert.True(scene.Upstream.Accepts(fresh!, RotatingProvider.Now));
        Assert.Equal(0, await scene.ColumnAsync(id, "refresh_failures"));
        Assert.Equal(0, scene.Upstream.Reuses);
        // One webhook for the whole outage, not one per retry.
        Assert.Single(scene.Hooks.Received, d => d.Type == "connection.refresh_failed");
    }

    [Fact]
    public async Task ARateLimitedRefreshWaitsAtLeastAsLongAsTheProviderAsks()
    {
        await using var scene = await RefreshScene.StartAsync(provider: new { refresh_margin_seconds = 120 });
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = await scene.Kit.TokenAsync(id);
        scene.Upstream.FailWithStatus = 429;
        scene.Upstream.RetryAfterSeconds = 30;
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3600 - 60));

        Assert.Equal(first, await scene.Kit.TokenAsync(id));
        Assert.Equal(first, await scene.Kit.TokenAsync(id));
        Assert.Single(scene.Upstream.RefreshCalls);
        Assert.InRange((await scene.ColumnAsync(id, "next_refresh_at") ?? 0) - scene.NexusNow, 29_000, 31_000);
    }

    [Fact]
    public async Task AProviderThatRejectsNexussClientIsRetriedWithoutBlamingTheUser()
    {
        // Without caches, so that the provider change applies at once (it otherwise does within ConnectionCacheSeconds).
        await using var scene = await RefreshScene.StartAsync(configure: s => s["Nexus:ConnectionCacheSeconds"] = "0", provider: new { refresh_margin_seconds = 120 });
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var first = await scene.Kit.TokenAsync(id);
        // An administrator pastes a wrong client secret: the provider answers invalid_client.
        await scene.Kit.ExpectAsync(HttpMethod.Patch, $"/v1/providers/{scene.Provider}", new { client_secret = "wrong" }, HttpStatusCode.OK);
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3600 - 60));

        Assert.Equal(first, await scene.Kit.TokenAsync(id));
        Assert.Equal("active", (await scene.Kit.ConnectionAsync(id)).GetProperty("status").GetString());
        var hook = await scene.Hooks.WaitForAsync(d => d.Type == "connection.refresh_failed");
        Assert.Equal("invalid_client", hook.Data.GetProperty("error").GetString());

        await scene.Kit.ExpectAsync(HttpMethod.Patch, $"/v1/providers/{scene.Provider}", new { client_secret = scene.Upstream.ClientSecret }, HttpStatusCode.OK);
        await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/refresh/{id}", null, HttpStatusCode.OK);
        Assert.NotEqual(first, await scene.Kit.TokenAsync(id));
    }

    [Fact]
    public async Task ARefreshAnswerThatStopsHalfWayFailsWithinTheUpstreamTimeoutInsteadOfHoldingTheConnection()
    {
        // HttpClient.Timeout covers the headers only; the body of the refresh answer gets the same bound.
        await using var scene = await RefreshScene.StartAsync(configure: s => s["Nexus:UpstreamTimeoutSeconds"] = "2");
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        scene.Upstream.StallRefreshBody = true;
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3601));

        // Unbounded, the read would wait on the refresh for ever (and every later read would join it): the bound here
        // only keeps a failing run from hanging.
        var (status, _, problem) = await scene.Kit.ReadAsync(id).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal("provider_timeout", problem.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await scene.Kit.ReadAsync(id).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken)).Status);
    }

    [Fact]
    public async Task AnExpiredTokenWithoutARefreshTokenNeedsTheUserAgain()
    {
        await using var scene = await RefreshScene.StartAsync();
        scene.Upstream.RefreshTokenOnConsent = false;
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        await scene.Kit.TokenAsync(id);
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3601));

        var (status, _, problem) = await scene.Kit.ReadAsync(id);
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("attention_required", problem.GetProperty("status").GetString());
        Assert.Equal("token_expired", problem.GetProperty("error").GetString());
        Assert.Empty(scene.Upstream.RefreshCalls);
        await scene.Hooks.WaitForAsync(d => d.Type == "connection.attention_required" && d.Data.GetProperty("error").GetString() == "token_expired");
    }

    [Fact]
    public async Task AManualRefreshBringsBackAConnectionWhoseProviderAcceptsTheGrantAgain()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        scene.Upstream.RejectWith = "invalid_request"; // an outage that looks like a rejection
        scene.Server.Time.Advance(TimeSpan.FromSeconds(3601));
        Assert.Equal(HttpStatusCode.Conflict, (await scene.Kit.ReadAsync(id)).Status);

        scene.Upstream.RejectWith = null;
        var connection = await scene.Kit.ExpectAsync(HttpMethod.Post, $"/v1/refresh/{id}", null, HttpStatusCode.OK);
        Assert.Equal("active", connection.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await scene.Kit.ReadAsync(id)).Status);
        var hook = await scene.Hooks.WaitForAsync(d => d.Type == "connection.active" && d.Data.GetProperty("reason").GetString() == "refreshed");
        Assert.Equal(id, hook.Data.GetProperty("connection_id").GetString());
    }
}
