using System.Net;

namespace Nexus.Sdk.Tests.Client;

public sealed class ErrorsAndRetryTests
{
    private const string ActiveConnection = """{"connection_id":"conn_1","status":"active","provider":"p","workspace_id":"w","scopes":["a"],"created_at":1,"updated_at":2,"expires_at":3}""";

    [Fact]
    public async Task Attention_required_is_typed_carries_the_connection_and_reason_and_is_never_retried()
    {
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(FakeNexus.Problem(HttpStatusCode.Conflict, "connection_not_active",
                ""","status":"attention_required","connection_id":"conn_1","error":"invalid_grant" """)),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var error = await Assert.ThrowsAsync<NexusAttentionRequiredException>(() => client.RefreshAsync("conn_1", TestContext.Current.CancellationToken));
        Assert.Equal("conn_1", error.ConnectionId);
        Assert.Equal("invalid_grant", error.Reason);
        Assert.Single(fake.Requests);

        await Assert.ThrowsAsync<NexusAttentionRequiredException>(() => client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(2, fake.Requests.Count);
    }

    [Theory]
    [InlineData(HttpStatusCode.NotFound, "not_found", typeof(NexusNotFoundException))]
    [InlineData(HttpStatusCode.Forbidden, "credentials_not_readable", typeof(NexusForbiddenException))]
    [InlineData(HttpStatusCode.Unauthorized, "invalid_api_key", typeof(NexusUnauthorizedException))]
    [InlineData(HttpStatusCode.Conflict, "refresh_not_supported", typeof(NexusException))]
    public async Task Each_error_answer_has_its_own_type(HttpStatusCode status, string code, Type expected)
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Problem(status, code)) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var error = await Assert.ThrowsAnyAsync<NexusException>(() => client.GetConnectionAsync("conn_1", TestContext.Current.CancellationToken));
        Assert.IsType(expected, error);
        Assert.Equal(code, error.Code);
        Assert.Equal(status, error.StatusCode);
        Assert.Single(fake.Requests);
    }

    [Fact]
    public async Task Attention_required_is_a_kind_of_not_active_with_status_attention_required_as_in_the_Go_and_Python_SDKs()
    {
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(FakeNexus.Problem(HttpStatusCode.Conflict, "connection_not_active",
                ""","status":"attention_required","connection_id":"conn_1","error":"invalid_grant" """)),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var error = await Assert.ThrowsAsync<NexusAttentionRequiredException>(() => client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask());
        var notActive = Assert.IsAssignableFrom<NexusConnectionNotActiveException>(error);
        Assert.Equal("attention_required", notActive.Status);
        Assert.Equal("invalid_grant", notActive.Reason);
        Assert.Equal("conn_1", notActive.ConnectionId);
    }

    [Fact]
    public async Task A_pending_connection_is_not_active_with_its_status()
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Problem(HttpStatusCode.Conflict, "connection_not_active", ""","status":"pending" """)) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var error = await Assert.ThrowsAsync<NexusConnectionNotActiveException>(() => client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask());
        Assert.Equal("pending", error.Status);
        Assert.Equal("conn_1", error.ConnectionId);
    }

    [Theory]
    [InlineData(HttpStatusCode.ServiceUnavailable)]
    [InlineData(HttpStatusCode.TooManyRequests)]
    [InlineData(HttpStatusCode.BadGateway)]
    public async Task An_idempotent_call_is_retried_after_a_transient_answer_and_then_succeeds(HttpStatusCode status)
    {
        var calls = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(Interlocked.Increment(ref calls) < 3 ? FakeNexus.Problem(status, "refresh_unavailable") : FakeNexus.Json(ActiveConnection)),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var connection = await client.GetConnectionAsync("conn_1", TestContext.Current.CancellationToken);
        Assert.True(connection.IsActive);
        Assert.Equal(3, calls);
    }

    [Fact]
    public async Task Retries_wait_at_least_the_Retry_After_and_give_up_with_it_after_the_last_one()
    {
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(FakeNexus.Problem(HttpStatusCode.ServiceUnavailable, "refresh_unavailable", ""","connection_id":"conn_1" """, TimeSpan.FromSeconds(1))),
        };
        var options = FakeNexus.Options();
        options.MaxRetries = 1;
        using var client = new NexusClient(options, fake);

        var started = TimeProvider.System.GetTimestamp();
        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.GetCredentialsAsync("conn_1", TestContext.Current.CancellationToken).AsTask());
        Assert.True(TimeProvider.System.GetElapsedTime(started) >= TimeSpan.FromSeconds(1));
        Assert.Equal(TimeSpan.FromSeconds(1), error.RetryAfter);
        Assert.Equal("refresh_unavailable", error.Code);
        Assert.Equal(2, fake.Requests.Count);
    }

    [Fact]
    public async Task A_Retry_After_longer_than_the_longest_wait_is_not_waited_for()
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Problem(HttpStatusCode.TooManyRequests, "rate_limited", "", TimeSpan.FromMinutes(5))) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var error = await Assert.ThrowsAsync<NexusRateLimitedException>(() => client.ListConnectionsAsync("w", cancellationToken: TestContext.Current.CancellationToken));
        Assert.Equal(TimeSpan.FromMinutes(5), error.RetryAfter);
        Assert.Single(fake.Requests);
    }

    [Fact]
    public async Task A_request_that_is_not_idempotent_is_not_retried()
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Problem(HttpStatusCode.ServiceUnavailable, "unavailable")) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        await Assert.ThrowsAsync<NexusUnavailableException>(() => client.RequestConnectionAsync(
            new ConnectionRequest("w", "github", new Uri("https://app.example/return")), TestContext.Current.CancellationToken));
        Assert.Single(fake.Requests);
    }

    [Fact]
    public async Task A_network_error_is_retried_for_idempotent_calls_only()
    {
        var calls = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Interlocked.Increment(ref calls) == 1 ? throw new HttpRequestException("connection refused") : Task.FromResult(FakeNexus.Json(ActiveConnection)),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        Assert.True((await client.GetConnectionAsync("conn_1", TestContext.Current.CancellationToken)).IsActive);
        calls = 0;
        await Assert.ThrowsAsync<HttpRequestException>(() => client.SubmitCredentialsAsync("conn_1", new Dictionary<string, string> { ["api_key"] = "k" },
            TestContext.Current.CancellationToken));
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task A_forced_refresh_is_not_sent_again_after_a_network_error_because_the_first_may_have_rotated_the_refresh_token()
    {
        var fake = new FakeNexus { Respond = _ => throw new HttpRequestException("connection reset") };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        await Assert.ThrowsAsync<HttpRequestException>(() => client.RefreshAsync("conn_1", TestContext.Current.CancellationToken));
        Assert.Equal(1, fake.Count("/v1/refresh/conn_1"));
    }

    [Theory]
    [InlineData(HttpStatusCode.BadGateway)]
    [InlineData(HttpStatusCode.GatewayTimeout)]
    public async Task A_forced_refresh_is_not_sent_again_after_a_gateway_error_that_may_hide_a_refresh_done(HttpStatusCode status)
    {
        var fake = new FakeNexus { Respond = _ => Task.FromResult(FakeNexus.Problem(status, "upstream")) };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.RefreshAsync("conn_1", TestContext.Current.CancellationToken));
        Assert.Equal(status, error.StatusCode);
        Assert.Equal(1, fake.Count("/v1/refresh/conn_1"));
    }

    [Fact]
    public async Task A_forced_refresh_is_sent_again_after_Nexus_said_503_refresh_unavailable_because_then_it_stored_no_new_token()
    {
        var calls = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(Interlocked.Increment(ref calls) == 1
                ? FakeNexus.Problem(HttpStatusCode.ServiceUnavailable, "refresh_unavailable", ""","connection_id":"conn_1" """, TimeSpan.Zero)
                : FakeNexus.Json(ActiveConnection)),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);

        Assert.True((await client.RefreshAsync("conn_1", TestContext.Current.CancellationToken)).IsActive);
        Assert.Equal(2, fake.Count("/v1/refresh/conn_1"));
    }

    [Fact]
    public void Backoff_has_full_jitter_below_an_exponential_ceiling()
    {
        var options = FakeNexus.Options();
        options.RetryBaseDelay = TimeSpan.FromMilliseconds(100);
        options.MaxRetryDelay = TimeSpan.FromMilliseconds(300);
        using var client = new NexusClient(options, new FakeNexus());

        var delays = Enumerable.Range(0, 200).Select(_ => client.Backoff(2, null)).ToArray();
        Assert.All(delays, d => Assert.InRange(d.TotalMilliseconds, 0, 300));
        Assert.True(delays.Distinct().Count() > 100, "the delays are spread out");
        Assert.InRange(client.Backoff(0, TimeSpan.FromSeconds(2)).TotalMilliseconds, 2000, 2200);
    }

    [Fact]
    public void The_default_retry_options_are_3_attempts_from_250_ms_and_a_Retry_After_of_at_most_10_s()
    {
        var defaults = new NexusClientOptions();
        Assert.Equal(2, defaults.MaxRetries);
        Assert.Equal(TimeSpan.FromMilliseconds(250), defaults.RetryBaseDelay);
        Assert.Equal(TimeSpan.FromSeconds(10), defaults.MaxRetryDelay);
        using var client = new NexusClient(new NexusClientOptions { BaseUrl = new Uri("http://nexus.test"), ApiKey = FakeNexus.ApiKey }, new FakeNexus());

        Assert.All(Enumerable.Range(0, 100).Select(_ => client.Backoff(0, null)), d => Assert.InRange(d.TotalMilliseconds, 0, 250));
        Assert.All(Enumerable.Range(0, 100).Select(_ => client.Backoff(1, null)), d => Assert.InRange(d.TotalMilliseconds, 0, 500));
    }

    [Fact]
    public async Task Wait_until_active_returns_once_consent_completes_and_stops_at_the_timeout()
    {
        var polls = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(FakeNexus.Json(Interlocked.Increment(ref polls) < 3 ? ActiveConnection.Replace("\"active\"", "\"pending\"", StringComparison.Ordinal) : ActiveConnection)),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        Assert.True((await client.WaitUntilActiveAsync("conn_1", TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken)).IsActive);
        Assert.Equal(3, polls);

        fake.Respond = _ => Task.FromResult(FakeNexus.Json(ActiveConnection.Replace("\"active\"", "\"pending\"", StringComparison.Ordinal)));
        await Assert.ThrowsAsync<TimeoutException>(() => client.WaitUntilActiveAsync("conn_1", TimeSpan.FromMilliseconds(300), TestContext.Current.CancellationToken));

        fake.Respond = _ => Task.FromResult(FakeNexus.Json(ActiveConnection.Replace("\"active\"", "\"attention_required\"", StringComparison.Ordinal)));
        await Assert.ThrowsAsync<NexusAttentionRequiredException>(() => client.WaitUntilActiveAsync("conn_1", TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Wait_until_active_keeps_polling_while_a_reconnect_waits_for_consent()
    {
        // A reconnect keeps an attention_required or active status until the user completes the new consent.
        var polls = 0;
        var fake = new FakeNexus
        {
            Respond = _ => Task.FromResult(FakeNexus.Json(Interlocked.Increment(ref polls) switch
            {
                1 => ActiveConnection.Replace("\"active\"", "\"attention_required\",\"reconnecting\":true", StringComparison.Ordinal),
                2 => ActiveConnection.Replace("\"active\"", "\"active\",\"reconnecting\":true", StringComparison.Ordinal),
                _ => ActiveConnection.Replace("\"active\"", "\"active\",\"reconnecting\":false", StringComparison.Ordinal),
            })),
        };
        using var client = new NexusClient(FakeNexus.Options(), fake);
        var connection = await client.WaitUntilActiveAsync("conn_1", TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.True(connection.IsActive);
        Assert.False(connection.Reconnecting);
        Assert.Equal(3, polls);

        // A reconnect whose consent failed clears reconnecting: then attention_required ends the wait.
        polls = 0;
        fake.Respond = _ => Task.FromResult(FakeNexus.Json(ActiveConnection.Replace("\"active\"",
            Interlocked.Increment(ref polls) < 2 ? "\"attention_required\",\"reconnecting\":true" : "\"attention_required\"", StringComparison.Ordinal)));
        await Assert.ThrowsAsync<NexusAttentionRequiredException>(() => client.WaitUntilActiveAsync("conn_1", TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Equal(2, polls);
    }

    [Fact]
    public void The_client_is_configured_from_NEXUS_URL_and_NEXUS_API_KEY()
    {
        var url = Environment.GetEnvironmentVariable("NEXUS_URL");
        var key = Environment.GetEnvironmentVariable("NEXUS_API_KEY");
        try
        {
            Environment.SetEnvironmentVariable("NEXUS_URL", "http://127.0.0.1:9/");
            Environment.SetEnvironmentVariable("NEXUS_API_KEY", FakeNexus.ApiKey);
            using var client = NexusClient.FromEnvironment();
            Assert.Equal(new Uri("http://127.0.0.1:9/"), client.BaseUrl);
            Environment.SetEnvironmentVariable("NEXUS_API_KEY", null);
            var error = Assert.Throws<InvalidOperationException>(() => NexusClient.FromEnvironment());
            Assert.Contains("NEXUS_API_KEY", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("NEXUS_URL", url);
            Environment.SetEnvironmentVariable("NEXUS_API_KEY", key);
        }
    }

    [Fact]
    public async Task A_Bridge_call_stops_retrying_Nexus_503_after_MaxRetries_and_never_sends_a_stream_again_or_a_PATCH()
    {
        using var nexus = new LoopbackHost((_, response) =>
        {
            response.StatusCode = 503;
            response.ContentType = "application/problem+json";
            response.Headers["Retry-After"] = "0";
            response.OutputStream.Write("""{"type":"urn:nexus:problem:database_unavailable","title":"t","status":503,"code":"database_unavailable"}"""u8);
        });
        var options = FakeNexus.Options();
        options.BaseUrl = nexus.Url;
        options.MaxRetries = 3;
        using var client = new NexusClient(options);
        var token = TestContext.Current.CancellationToken;

        var error = await Assert.ThrowsAsync<NexusUnavailableException>(() => client.SendThroughBridgeAsync("conn_1", new HttpRequestMessage(HttpMethod.Delete, new Uri("/item", UriKind.Relative)), token));
        Assert.Equal("database_unavailable", error.Code);
        Assert.Equal(4, nexus.Requests.Count); // the first and MaxRetries more

        using var stream = new HttpRequestMessage(HttpMethod.Put, new Uri("/item", UriKind.Relative)) { Content = new StreamContent(new MemoryStream("{}"u8.ToArray())) };
        await Assert.ThrowsAsync<NexusUnavailableException>(() => client.SendThroughBridgeAsync("conn_1", stream, token));
        Assert.Equal(5, nexus.Requests.Count);

        using var patch = new HttpRequestMessage(HttpMethod.Patch, new Uri("/item", UriKind.Relative)) { Content = new StringContent("{}") };
        await Assert.ThrowsAsync<NexusUnavailableException>(() => client.SendThroughBridgeAsync("conn_1", patch, token));
        Assert.Equal(6, nexus.Requests.Count);
    }
}
