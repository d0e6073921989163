using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>The state that ties a provider's redirect to a connection is signed, bound, single-use and expiring.</summary>
public sealed class CallbackStateTests(BrokerFixture fixture) : IClassFixture<BrokerFixture>
{
    private BrokerKit Kit => fixture.Kit;

    private static string StateOf(string url) => QueryHelpers.ParseQuery(new Uri(url).Query)["state"].ToString();

    private static async Task AssertRefusedWithoutRedirectAsync(HttpResponseMessage response, string code)
    {
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Null(response.Headers.Location);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(code, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public async Task ATamperedStateIsRefusedAndLeavesTheConnectionPending()
    {
        var provider = await Kit.RegisterAsync("google");
        var (authUrl, id) = await Kit.RequestAsync(provider);
        var callback = await Kit.ConsentAsync(authUrl);
        var state = StateOf(callback);
        // Point the state at another connection id: the MAC no longer matches.
        var tampered = state.Replace(id, id[..^1] + (id[^1] == 'A' ? 'B' : 'A'), StringComparison.Ordinal);
        using var response = await Kit.CallbackAsync(callback.Replace(Uri.EscapeDataString(state), Uri.EscapeDataString(tampered), StringComparison.Ordinal));
        await AssertRefusedWithoutRedirectAsync(response, "invalid_state");

        using var missing = await Kit.CallbackAsync(fixture.Server.Issuer + "/auth/callback?code=abc");
        await AssertRefusedWithoutRedirectAsync(missing, "invalid_state");
        Assert.Equal("pending", (await Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}")).Body.GetProperty("status").GetString());

        // The genuine callback still works afterwards.
        using var genuine = await Kit.CallbackAsync(callback);
        Assert.Equal("active", BrokerKit.ReturnedQuery(genuine)["status"]);
    }

    [Fact]
    public async Task AReplayedStateIsRefusedAndTheConnectionStaysActive()
    {
        var provider = await Kit.RegisterAsync("google");
        var (authUrl, id) = await Kit.RequestAsync(provider);
        var callback = await Kit.ConsentAsync(authUrl);
        using (var first = await Kit.CallbackAsync(callback))
        {
            Assert.Equal("active", BrokerKit.ReturnedQuery(first)["status"]);
        }

        using var replay = await Kit.CallbackAsync(callback);
        await AssertRefusedWithoutRedirectAsync(replay, "state_already_used");
        Assert.Equal("active", (await Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}")).Body.GetProperty("status").GetString());
    }

    [Fact]
    public async Task ConcurrentCallbacksWithOneStateActivateExactlyOnce()
    {
        var provider = await Kit.RegisterAsync("google");
        var (authUrl, _) = await Kit.RequestAsync(provider);
        var callback = await Kit.ConsentAsync(authUrl);
        var responses = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Kit.CallbackAsync(callback)));
        Assert.Single(responses, r => r.StatusCode == HttpStatusCode.Redirect);
        Assert.Equal(3, responses.Count(r => r.StatusCode == HttpStatusCode.BadRequest));
    }

    [Fact]
    public async Task AStateIssuedByAnotherNexusIsRefused()
    {
        await using var otherDb = await TestDatabase.CreateAsync();
        await using var other = await NexusTestServer.StartAsync(otherDb, s => s["ALLOWED_RETURN_URLS"] = BrokerFixture.ReturnUrl);
        using var otherKit = new BrokerKit(other, fixture.Fake);
        var otherProvider = await otherKit.RegisterAsync("google");
        var (otherAuthUrl, _) = await otherKit.RequestAsync(otherProvider);

        var provider = await Kit.RegisterAsync("google");
        var (authUrl, _) = await Kit.RequestAsync(provider);
        var callback = await Kit.ConsentAsync(authUrl);
        var foreign = callback.Replace(Uri.EscapeDataString(StateOf(callback)), Uri.EscapeDataString(StateOf(otherAuthUrl)), StringComparison.Ordinal);
        using var response = await Kit.CallbackAsync(foreign);
        await AssertRefusedWithoutRedirectAsync(response, "invalid_state");
    }

    /// <summary>Goes through the consent with the fake provider answering <paramref name="error"/>; returns the callback URL.</summary>
    private async Task<string> ConsentRefusedAsync(string authUrl, string error)
    {
        fixture.Fake.AuthorizeError = error;
        try
        {
            return await Kit.ConsentAsync(authUrl);
        }
        finally
        {
            fixture.Fake.AuthorizeError = null;
        }
    }

    [Fact]
    public async Task AProviderErrorFailsTheConnectionAndTheRedirectCarriesIt()
    {
        var provider = await Kit.RegisterAsync("slack");
        var (authUrl, id) = await Kit.RequestAsync(provider);
        var callback = await ConsentRefusedAsync(authUrl, "access_denied");

        using var response = await Kit.CallbackAsync(callback);
        var returned = BrokerKit.ReturnedQuery(response);
        Assert.Equal(id, returned["connection_id"]);
        Assert.Equal("failed", returned["status"]);
        Assert.Equal("access_denied", returned["error"]);

        var connection = (await Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}")).Body;
        Assert.Equal("failed", connection.GetProperty("status").GetString());
        Assert.Equal("access_denied", connection.GetProperty("error").GetString());
        var (status, problem) = await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("failed", problem.GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("\"\"")]
    [InlineData("é")]
    [InlineData("\\")]
    public async Task AProviderErrorWithNoCharacterAnErrorCodeMayHoldFailsTheConnectionAsAnInvalidCallback(string error)
    {
        // RFC 6749 §5.2: error is %x20-21 / %x23-5B / %x5D-7E. What is left once the rest is dropped is empty, and an
        // empty error would reach the app's return URL and the connection's record as a code.
        var provider = await Kit.RegisterAsync("slack");
        var (authUrl, id) = await Kit.RequestAsync(provider);
        var callback = await ConsentRefusedAsync(authUrl, error);

        using var response = await Kit.CallbackAsync(callback);
        var returned = BrokerKit.ReturnedQuery(response);
        Assert.Equal("failed", returned["status"]);
        Assert.Equal("invalid_callback", returned["error"]);
        var connection = (await Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}")).Body;
        Assert.Equal("failed", connection.GetProperty("status").GetString());
        Assert.Equal("invalid_callback", connection.GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("google")]
    [InlineData("github")]
    [InlineData("slack")]
    public async Task ARefusedCodeExchangeFailsTheConnectionWithTheProvidersError(string flavor)
    {
        var provider = await Kit.RegisterAsync(flavor, new { client_secret = "not-the-secret" });
        var (_, returned) = await Kit.ConnectAsync(provider);
        Assert.Equal("failed", returned["status"]);
        Assert.Equal("invalid_client", returned["error"]);
    }

    [Fact]
    public async Task AMissingPkceVerifierIsRefusedByTheProvider()
    {
        // A provider registered without PKCE never sends a challenge, so this checks the fake's guard, not Nexus:
        // with PKCE on, the verifier Nexus stored encrypted is what made the exchange pass.
        var provider = await Kit.RegisterAsync("google", new { pkce = "required" });
        var (_, returned) = await Kit.ConnectAsync(provider);
        Assert.Equal("active", returned["status"]);
        Assert.True(fixture.Fake.TokenCalls.Last(c => c.Error is null).HadVerifier);
    }
}

/// <summary>Expiry needs its own server, because it moves the server's clock.</summary>
public sealed class CallbackExpiryTests
{
    [Fact]
    public async Task ALateCallbackFailsTheConnectionAsExpiredAndTellsTheApp()
    {
        await using var fake = await FakeOAuthProvider.StartAsync();
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db, s => s["ALLOWED_RETURN_URLS"] = BrokerFixture.ReturnUrl);
        using var kit = new BrokerKit(server, fake);
        var provider = await kit.RegisterAsync("google");
        var (authUrl, id) = await kit.RequestAsync(provider);
        var callback = await kit.ConsentAsync(authUrl);

        server.Time.Advance(TimeSpan.FromMinutes(11));
        using var response = await kit.CallbackAsync(callback);
        var returned = BrokerKit.ReturnedQuery(response);
        Assert.Equal("failed", returned["status"]);
        Assert.Equal("expired", returned["error"]);
        Assert.Equal("failed", (await kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}")).Body.GetProperty("status").GetString());
        // The code was never exchanged.
        Assert.DoesNotContain(fake.TokenCalls, c => c.Error is null);

        // Presented again, a late state says the same thing and still exchanges nothing.
        using var again = await kit.CallbackAsync(callback);
        Assert.Equal("expired", BrokerKit.ReturnedQuery(again)["error"]);
        Assert.DoesNotContain(fake.TokenCalls, c => c.Error is null);
    }

    [Fact]
    public async Task APendingConnectionNobodyCompletesBecomesFailedOnReadAndAtStartup()
    {
        await using var fake = await FakeOAuthProvider.StartAsync();
        await using var db = await TestDatabase.CreateAsync();
        var key = NexusTestServer.NewEncryptionKey();
        string onRead, atStartup;
        await using (var server = await NexusTestServer.StartAsync(db, s => { s["ALLOWED_RETURN_URLS"] = BrokerFixture.ReturnUrl; s["ENCRYPTION_KEY"] = key; }))
        {
            using var kit = new BrokerKit(server, fake);
            var provider = await kit.RegisterAsync("google");
            (_, onRead) = await kit.RequestAsync(provider);
            (_, atStartup) = await kit.RequestAsync(provider);
            server.Time.Advance(TimeSpan.FromMinutes(11));
            var connection = (await kit.SendAsync(HttpMethod.Get, $"/v1/connections/{onRead}")).Body;
            Assert.Equal("failed", connection.GetProperty("status").GetString());
            Assert.Equal("expired", connection.GetProperty("error").GetString());
        }

        var later = new OffsetTimeProvider();
        later.Advance(TimeSpan.FromMinutes(11));
        await using (var restarted = await NexusTestServer.StartAsync(db, s => { s["ALLOWED_RETURN_URLS"] = BrokerFixture.ReturnUrl; s["ENCRYPTION_KEY"] = key; }, later))
        {
            var events = await restarted.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={atStartup}&event=failed");
            var failed = Assert.Single(events.GetProperty("events").EnumerateArray());
            Assert.Equal("system", failed.GetProperty("actor").GetString());
        }
    }
}
