using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Nexus.Server.Tests.Infrastructure;
using static Nexus.Server.Tests.AuthorizationServer.OAuthAppHelpers;

namespace Nexus.Server.Tests.AuthorizationServer;

/// <summary>
/// Revocation checks answer from memory (AuthorizationServer/Grants/RevocationList): at once for revocations made on
/// the same instance, within the documented bound (2 × Nexus:Revocation:PollSeconds) for revocations made on another
/// instance over the same database, and on PostgreSQL at once through LISTEN/NOTIFY.
/// </summary>
public sealed class RevocationListTests(RevocationListTests.Fixture fixture) : IClassFixture<RevocationListTests.Fixture>
{
    /// <summary>Polling so rare that any answer within the test comes from memory, or from a NOTIFY.</summary>
    private const string RarePoll = "300";

    private readonly TestDatabase db = fixture.Database;

    private readonly NexusTestServer a = fixture.Server;

    public sealed class Fixture : ServerFixture
    {
        protected override void Configure(Dictionary<string, string?> settings) => settings["Nexus:Revocation:PollSeconds"] = RarePoll;
    }

    /// <summary>A second instance of the same deployment (same database, issuer and keys).</summary>
    private Task<NexusTestServer> SecondInstanceAsync(string pollSeconds) => NexusTestServer.StartAsync(db, s =>
    {
        s["BASE_URL"] = a.Issuer;
        s["ENCRYPTION_KEY"] = a.EncryptionKey;
        s["Nexus:Revocation:PollSeconds"] = pollSeconds;
    });

    private static async Task<bool> ActiveAsync(NexusTestServer server, string clientId, string secret, string token) =>
        (await IntrospectAsync(server, clientId, secret, token)).GetProperty("active").GetBoolean();

    private static async Task RevokeAsync(NexusTestServer server, string clientId, string secret, string token)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/revoke") { Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["token"] = token }) };
        request.Headers.Authorization = NexusTestServer.Basic(clientId, secret);
        using var response = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>Asks <paramref name="rejected"/> until it says yes or <paramref name="deadline"/> passes; returns how long it took.</summary>
    private static async Task<TimeSpan> WaitUntilAsync(Func<Task<bool>> rejected, TimeSpan deadline, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await rejected())
        {
            Assert.True(clock.Elapsed < deadline, $"{what}: still accepted after {clock.Elapsed.TotalSeconds:F1} s.");
            await Task.Delay(50);
        }

        return clock.Elapsed;
    }

    [Fact]
    public async Task AnAccessTokenRevokedOnThisInstanceIsInactiveAtOnceForIntrospectionAndTheApi()
    {
        var (id, secret) = await a.CreateAppClientAsync();
        var token = await a.IssueTokenAsync(id, secret);
        Assert.True(await ActiveAsync(a, id, secret, token));
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(a, token));

        await RevokeAsync(a, id, secret, token);

        Assert.False(await ActiveAsync(a, id, secret, token));
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(a, token));
    }

    [Fact]
    public async Task RevokingARefreshTokenOnThisInstanceEndsItsGrantsAccessTokensAtOnceIncludingUserinfo()
    {
        var (id, secret) = await RegisterApplicationAsync(a);
        var (tokens, browser) = await CompleteFlowAsync(a, id, secret);
        using var _ = browser;
        var access = tokens.GetProperty("access_token").GetString()!;
        Assert.True(await ActiveAsync(a, id, secret!, access));
        Assert.Equal(HttpStatusCode.OK, await UserInfoStatusAsync(a, access));

        await RevokeAsync(a, id, secret!, tokens.GetProperty("refresh_token").GetString()!);

        Assert.False(await ActiveAsync(a, id, secret!, access));
        Assert.Equal(HttpStatusCode.Unauthorized, await UserInfoStatusAsync(a, access));
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(a, access));
    }

    [Fact]
    public async Task AnotherInstanceStopsAcceptingARevokedTokenGrantAndClientWithinTwicePollSeconds()
    {
        await using var b = await SecondInstanceAsync("1");
        var (id, secret) = await RegisterApplicationAsync(a);
        var (tokens, browser) = await CompleteFlowAsync(a, id, secret);
        using var _ = browser;
        var fromGrant = tokens.GetProperty("access_token").GetString()!;
        var (appClientId, appClientSecret) = await a.CreateAppClientAsync();
        var single = await a.IssueTokenAsync(appClientId, appClientSecret);
        var ofClient = await a.IssueTokenAsync(appClientId, appClientSecret);
        var (doomedId, doomedSecret) = await a.CreateAppClientAsync();
        var ofRevokedClient = await a.IssueTokenAsync(doomedId, doomedSecret);
        Assert.True(await ActiveAsync(b, id, secret!, fromGrant));
        Assert.True(await ActiveAsync(b, appClientId, appClientSecret, single));
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(b, ofRevokedClient));

        await RevokeAsync(a, id, secret!, tokens.GetProperty("refresh_token").GetString()!);
        await RevokeAsync(a, appClientId, appClientSecret, single);
        await a.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/clients/{doomedId}", expected: HttpStatusCode.NoContent);

        // The bound is 2 s; the deadline leaves room for a loaded test machine, the message says what it took.
        var deadline = TimeSpan.FromSeconds(15);
        await WaitUntilAsync(async () => !await ActiveAsync(b, id, secret!, fromGrant), deadline, "a token of a revoked grant");
        await WaitUntilAsync(async () => !await ActiveAsync(b, appClientId, appClientSecret, single), deadline, "a revoked access token");
        await WaitUntilAsync(async () => await MeStatusAsync(b, ofRevokedClient) == HttpStatusCode.Unauthorized, deadline, "a token of a revoked client");
        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(b, fromGrant));
        Assert.True(await ActiveAsync(b, appClientId, appClientSecret, ofClient));
    }

    [Fact]
    public async Task AClientDeletedOnAnotherInstanceGetsNoTokenThereAlthoughThatInstanceStillHasItCached()
    {
        // Clients cached for 5 minutes on the second instance: only its revocation list can refuse the client in time.
        await using var b = await NexusTestServer.StartAsync(db, s =>
        {
            s["BASE_URL"] = a.Issuer;
            s["ENCRYPTION_KEY"] = a.EncryptionKey;
            s["Nexus:Revocation:PollSeconds"] = "1";
            s["Nexus:ClientCacheSeconds"] = "300";
        });
        var (id, secret) = await a.CreateAppClientAsync();
        await b.IssueTokenAsync(id, secret); // cached on b now

        await a.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/clients/{id}", expected: HttpStatusCode.NoContent);

        await WaitUntilAsync(async () =>
        {
            var (status, body) = await TokenAsync(b, id, secret, ("grant_type", "client_credentials"));
            return status == HttpStatusCode.Unauthorized && body.GetProperty("error").GetString() == "invalid_client";
        }, TimeSpan.FromSeconds(15), "a token request of a deleted client");
    }

    [Fact]
    public async Task WithPollSecondsZeroAnotherInstanceRefusesAClientDeletedThereAtOnceThoughItStillHasItCached()
    {
        // PollSeconds 0: no list, the database on every check; clients cached for 5 minutes.
        await using var b = await NexusTestServer.StartAsync(db, s =>
        {
            s["BASE_URL"] = a.Issuer;
            s["ENCRYPTION_KEY"] = a.EncryptionKey;
            s["Nexus:Revocation:PollSeconds"] = "0";
            s["Nexus:ClientCacheSeconds"] = "300";
        });
        var (id, secret) = await a.CreateAppClientAsync();
        var token = await b.IssueTokenAsync(id, secret); // cached on b now
        Assert.Equal(HttpStatusCode.OK, await MeStatusAsync(b, token));

        await a.AdminJsonAsync(HttpMethod.Delete, $"/v1/admin/clients/{id}", expected: HttpStatusCode.NoContent);

        Assert.Equal(HttpStatusCode.Unauthorized, await MeStatusAsync(b, token));
        var (status, body) = await TokenAsync(b, id, secret, ("grant_type", "client_credentials"));
        Assert.Equal((HttpStatusCode.Unauthorized, "invalid_client"), (status, body.GetProperty("error").GetString()));
    }

    [Fact]
    public async Task WithRarePollingAnotherInstanceAnswersFromMemoryUntilItsNextRead()
    {
        // Shows the checks do not ask the database per call (and what the documented bound means): on SQLite a
        // revocation made elsewhere is seen only at the next read. PostgreSQL's NOTIFY makes it immediate (next test).
        Assert.SkipWhen(TestDatabase.UsePostgres, "On PostgreSQL a NOTIFY makes the other instance read at once.");
        await using var b = await SecondInstanceAsync(RarePoll);
        var (id, secret) = await a.CreateAppClientAsync();
        var token = await a.IssueTokenAsync(id, secret);
        await WaitUntilAsync(async () => await ActiveAsync(b, id, secret, token), TimeSpan.FromSeconds(15), "the first read of the second instance");

        await RevokeAsync(a, id, secret, token);

        Assert.False(await ActiveAsync(a, id, secret, token));
        Assert.True(await ActiveAsync(b, id, secret, token));
    }

    [Fact]
    public async Task OnPostgresANotifyMakesAnotherInstanceStopAcceptingARevokedTokenWithoutWaitingForItsPoll()
    {
        Assert.SkipUnless(TestDatabase.UsePostgres, "LISTEN/NOTIFY is PostgreSQL's.");
        await using var b = await SecondInstanceAsync(RarePoll);
        var (id, secret) = await a.CreateAppClientAsync();
        var token = await a.IssueTokenAsync(id, secret);
        await WaitUntilAsync(async () => await ActiveAsync(b, id, secret, token), TimeSpan.FromSeconds(15), "the first read of the second instance");

        await RevokeAsync(a, id, secret, token);

        // PollSeconds is 300: only the NOTIFY can make this happen in time.
        await WaitUntilAsync(async () => !await ActiveAsync(b, id, secret, token), TimeSpan.FromSeconds(15), "a revoked token after NOTIFY");
    }

    private static async Task<HttpStatusCode> UserInfoStatusAsync(NexusTestServer server, string accessToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/oauth2/userinfo");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        using var response = await server.Http.SendAsync(request);
        return response.StatusCode;
    }
}
