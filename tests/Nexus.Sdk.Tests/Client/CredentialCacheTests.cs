using System.Net;

namespace Nexus.Sdk.Tests.Client;

public sealed class CredentialCacheTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_thousand_concurrent_callers_on_a_cold_entry_share_exactly_one_token_fetch()
    {
        var release = new TaskCompletionSource();
        var fake = new FakeNexus();
        fake.Respond = async _ =>
        {
            await release.Task;
            return FakeNexus.Json(FakeNexus.Token("oauth2", "\"access_token\":\"at-1\"", Start.AddHours(1).ToUnixTimeSeconds()));
        };
        using var client = new NexusClient(FakeNexus.Options(new ManualClock(Start)), fake);

        var callers = Enumerable.Range(0, 1000).Select(_ => Task.Run(() => client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask())).ToArray();
        // Every caller is waiting on the one fetch before it is allowed to answer.
        while (fake.Requests.IsEmpty)
        {
            await Task.Yield();
        }

        release.SetResult();
        var credentials = await Task.WhenAll(callers);

        Assert.Equal(1, fake.Count("/v1/token/conn_1"));
        Assert.All(credentials, c => Assert.Equal("at-1", c.AccessToken));
    }

    [Fact]
    public async Task A_thousand_concurrent_callers_on_an_expired_entry_share_exactly_one_new_fetch()
    {
        var clock = new ManualClock(Start);
        var fetches = 0;
        var release = new TaskCompletionSource();
        var fake = new FakeNexus();
        fake.Respond = async _ =>
        {
            var n = Interlocked.Increment(ref fetches);
            if (n > 1)
            {
                await release.Task;
            }

            return FakeNexus.Json(FakeNexus.Token("oauth2", $"\"access_token\":\"at-{n}\"", clock.GetUtcNow().AddMinutes(10).ToUnixTimeSeconds()));
        };
        using var client = new NexusClient(FakeNexus.Options(clock), fake);
        Assert.Equal("at-1", (await client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken)).AccessToken);

        clock.Advance(TimeSpan.FromMinutes(9.5)); // within the 60 s margin before expires_at: stale
        var callers = Enumerable.Range(0, 1000).Select(_ => Task.Run(() => client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask())).ToArray();
        while (Volatile.Read(ref fetches) < 2)
        {
            await Task.Yield();
        }

        release.SetResult();
        var credentials = await Task.WhenAll(callers);

        Assert.Equal(2, fake.Count("/v1/token/conn_1"));
        Assert.All(credentials, c => Assert.Equal("at-2", c.AccessToken));
    }

    [Fact]
    public async Task A_credential_is_served_from_the_cache_until_the_margin_before_it_expires()
    {
        var clock = new ManualClock(Start);
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Json(FakeNexus.Token("oauth2", "\"access_token\":\"at\"", Start.AddMinutes(10).ToUnixTimeSeconds()))) };
        using var client = new NexusClient(FakeNexus.Options(clock), fake);
        var ct = TestContext.Current.CancellationToken;

        await client.GetCredentialsAsync("conn_1", ct);
        clock.Advance(TimeSpan.FromMinutes(8));
        await client.GetCredentialsAsync("conn_1", ct);
        Assert.Equal(1, fake.Count("/v1/token/"));

        clock.Advance(TimeSpan.FromSeconds(61)); // 8:61 → less than 60 s left
        await client.GetCredentialsAsync("conn_1", ct);
        Assert.Equal(2, fake.Count("/v1/token/"));
    }

    [Fact]
    public async Task A_credential_that_lives_less_than_twice_the_margin_is_cached_for_half_its_remaining_life()
    {
        var clock = new ManualClock(Start);
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Json(FakeNexus.Token("oauth2", "\"access_token\":\"at\"", clock.GetUtcNow().AddSeconds(40).ToUnixTimeSeconds()))) };
        using var client = new NexusClient(FakeNexus.Options(clock), fake);
        var ct = TestContext.Current.CancellationToken;

        // 40 s left, less than the 60 s margin: the margin is 20 s, half the time left, as the server and the other SDKs have it.
        await client.GetCredentialsAsync("conn_1", ct);
        await client.GetCredentialsAsync("conn_1", ct);
        clock.Advance(TimeSpan.FromSeconds(19));
        await client.GetCredentialsAsync("conn_1", ct);
        Assert.Equal(1, fake.Count("/v1/token/"));

        clock.Advance(TimeSpan.FromSeconds(2)); // 21 s in: less than 20 s left
        await client.GetCredentialsAsync("conn_1", ct);
        Assert.Equal(2, fake.Count("/v1/token/"));
    }

    [Fact]
    public async Task A_credential_without_expiry_is_kept_for_the_max_age_only()
    {
        var clock = new ManualClock(Start);
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(FakeNexus.Json(FakeNexus.Token("api_key", "\"api_key\":\"k\"", null, ""","in":"header","name":"X-Key","prefix":null"""))),
        };
        using var client = new NexusClient(FakeNexus.Options(clock), fake);
        var ct = TestContext.Current.CancellationToken;

        await client.GetCredentialsAsync("conn_k", ct);
        clock.Advance(TimeSpan.FromMinutes(4));
        await client.GetCredentialsAsync("conn_k", ct);
        Assert.Equal(1, fake.Count("/v1/token/"));
        clock.Advance(TimeSpan.FromMinutes(2));
        await client.GetCredentialsAsync("conn_k", ct);
        Assert.Equal(2, fake.Count("/v1/token/"));
    }

    [Fact]
    public async Task A_failed_fetch_is_not_cached_and_each_connection_has_its_own_entry()
    {
        var fail = true;
        var fake = new FakeNexus
        {
            Respond = request => Task.FromResult(fail
                ? FakeNexus.Problem(HttpStatusCode.Conflict, "connection_not_active", ""","status":"pending","connection_id":"conn_1" """)
                : FakeNexus.Json(FakeNexus.Token("oauth2", $"\"access_token\":\"{request.RequestUri!.Segments[^1]}\"", null))),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        var ct = TestContext.Current.CancellationToken;

        var error = await Assert.ThrowsAsync<NexusConnectionNotActiveException>(() => client.GetCredentialsAsync("conn_1", ct).AsTask());
        Assert.Equal("pending", error.Status);
        fail = false;
        Assert.Equal("conn_1", (await client.GetCredentialsAsync("conn_1", ct)).AccessToken);
        Assert.Equal("conn_2", (await client.GetCredentialsAsync("conn_2", ct)).AccessToken);
        Assert.Equal(3, fake.Count("/v1/token/"));
    }

    [Fact]
    public async Task A_caller_that_gives_up_does_not_cancel_the_fetch_the_others_wait_for()
    {
        var release = new TaskCompletionSource();
        var fake = new FakeNexus();
        fake.Respond = async _ =>
        {
            await release.Task;
            return FakeNexus.Json(FakeNexus.Token("oauth2", "\"access_token\":\"at\"", null));
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        using var impatient = new CancellationTokenSource();

        var first = client.GetCredentialsAsync("conn_1", impatient.Token).AsTask();
        var second = client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask();
        await impatient.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        release.SetResult();

        Assert.Equal("at", (await second).AccessToken);
        Assert.Equal(1, fake.Count("/v1/token/"));
    }

    [Fact]
    public async Task A_credential_read_while_new_credentials_are_being_submitted_is_not_served_after_the_submission()
    {
        var stored = "k-old";
        var submitting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fake = new FakeNexus();
        fake.Respond = async request =>
        {
            var path = request.RequestUri!.AbsolutePath;
            if (path.StartsWith("/v1/token/", StringComparison.Ordinal))
            {
                return FakeNexus.Json(FakeNexus.Token("api_key", $"\"api_key\":\"{Volatile.Read(ref stored)}\"", null, ""","in":"header","name":"X-Key","prefix":null"""));
            }

            if (path.EndsWith("/credentials", StringComparison.Ordinal))
            {
                submitting.SetResult();
                await release.Task; // Nexus is storing the new key
                Volatile.Write(ref stored, "k-new");
                return FakeNexus.Json("""{"connection_id":"conn_1","status":"active"}""");
            }

            return FakeNexus.Json("""{"connection_id":"conn_1","status":"active","provider":"p","workspace_id":"w","scopes":[],"created_at":1,"updated_at":2}""");
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        var ct = TestContext.Current.CancellationToken;

        var submit = client.SubmitCredentialsAsync("conn_1", new Dictionary<string, string> { ["api_key"] = "k-new" }, ct);
        await submitting.Task;
        // A read during the POST gets the old key, which Nexus still holds.
        Assert.Equal("k-old", (await client.GetCredentialsAsync("conn_1", ct)).ApiKey);
        release.SetResult();
        await submit;

        Assert.Equal("k-new", (await client.GetCredentialsAsync("conn_1", ct)).ApiKey);
    }

    [Fact]
    public async Task Force_refresh_and_delete_drop_the_cached_credential()
    {
        var n = 0;
        var fake = new FakeNexus
        {
            Respond = request => Task.FromResult(request.RequestUri!.AbsolutePath switch
            {
                var p when p.StartsWith("/v1/token/", StringComparison.Ordinal) =>
                    FakeNexus.Json(FakeNexus.Token("oauth2", $"\"access_token\":\"at-{Interlocked.Increment(ref n)}\"", null)),
                var p when p.StartsWith("/v1/refresh/", StringComparison.Ordinal) =>
                    FakeNexus.Json("""{"connection_id":"conn_1","status":"active","provider":"p","workspace_id":"w","scopes":[],"created_at":1,"updated_at":2}"""),
                _ => new HttpResponseMessage(HttpStatusCode.NoContent),
            }),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        var ct = TestContext.Current.CancellationToken;

        Assert.Equal("at-1", (await client.GetCredentialsAsync("conn_1", ct)).AccessToken);
        await client.RefreshAsync("conn_1", ct);
        Assert.Equal("at-2", (await client.GetCredentialsAsync("conn_1", ct)).AccessToken);
        await client.DeleteConnectionAsync("conn_1", ct);
        Assert.Equal("at-3", (await client.GetCredentialsAsync("conn_1", ct)).AccessToken);
    }

    [Fact]
    public async Task A_credential_served_over_an_outage_is_asked_for_again_after_5_s_and_a_500_or_attention_required_is_never_masked()
    {
        var clock = new ManualClock(Start);
        var expires = Start.AddMinutes(10);
        var fetches = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(Interlocked.Increment(ref fetches) switch
            {
                1 => FakeNexus.Json(FakeNexus.Token("oauth2", "\"access_token\":\"at-1\"", expires.ToUnixTimeSeconds())),
                2 or 3 => FakeNexus.Problem(HttpStatusCode.ServiceUnavailable, "refresh_unavailable"),
                4 => FakeNexus.Problem(HttpStatusCode.InternalServerError, "internal_error"),
                _ => FakeNexus.Problem(HttpStatusCode.Conflict, "connection_not_active", ""","status":"attention_required","connection_id":"conn_1","error":"invalid_grant" """),
            }),
        };
        var options = FakeNexus.Options(clock);
        options.MaxRetries = 0;
        using var client = new NexusClient(options, fake);
        var ct = TestContext.Current.CancellationToken;

        await client.GetCredentialsAsync("conn_1", ct);
        clock.Advance(TimeSpan.FromSeconds(570));
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("at-1", (await client.GetCredentialsAsync("conn_1", ct)).AccessToken); // one fetch, then the cache for 5 s
        }

        Assert.Equal(2, fake.Count("/v1/token/"));
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal("at-1", (await client.GetCredentialsAsync("conn_1", ct)).AccessToken);
        Assert.Equal(3, fake.Count("/v1/token/"));
        clock.Advance(TimeSpan.FromSeconds(5));
        var error = await Assert.ThrowsAsync<NexusException>(() => client.GetCredentialsAsync("conn_1", ct).AsTask());
        Assert.Equal(HttpStatusCode.InternalServerError, error.StatusCode);
        await Assert.ThrowsAsync<NexusAttentionRequiredException>(() => client.GetCredentialsAsync("conn_1", ct).AsTask());
    }
}
