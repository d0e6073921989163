using System.Net;
using System.Text;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

public sealed class RevocationAndAuditTests(BrokerFixture fixture) : IClassFixture<BrokerFixture>
{
    private BrokerKit Kit => fixture.Kit;

    [Fact]
    public async Task DeletingAConnectionRevokesItsTokensAtTheProviderAndEndsCredentialReads()
    {
        var provider = await Kit.RegisterAsync("google");
        var (id, _) = await Kit.ConnectAsync(provider, "ws_revoke");
        var accessToken = (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}")).Body.GetProperty("credentials").GetProperty("access_token").GetString();
        var before = fixture.Fake.Revocations.Count;

        Assert.Equal(HttpStatusCode.NoContent, (await Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}")).Status);

        var calls = fixture.Fake.Revocations.Skip(before).ToList();
        // RFC 7009: the refresh token first (it ends the grant), then the access token, with client authentication.
        Assert.Contains(calls, c => c.Hint == "access_token" && c.Token == accessToken && c.AuthMethod == "client_secret_post");
        Assert.All(calls, c => Assert.Equal("client_secret_post", c.AuthMethod));
        Assert.Equal(HttpStatusCode.NotFound, (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{id}")).Status);
    }

    [Fact]
    public async Task ABearerStyleRevocationSendsTheTokenAsCredentials()
    {
        var provider = await Kit.RegisterAsync("slack", new { revocation_format = "bearer" });
        var (id, _) = await Kit.ConnectAsync(provider);
        var accessToken = (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}")).Body.GetProperty("credentials").GetProperty("access_token").GetString();
        Assert.Equal(HttpStatusCode.NoContent, (await Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}")).Status);
        Assert.Contains(fixture.Fake.Revocations, c => c.AuthMethod == "bearer" && c.Token == accessToken);
    }

    [Fact]
    public async Task DeletingSucceedsWhenTheProviderHasNoRevocationEndpoint()
    {
        var provider = await Kit.RegisterAsync("github", new { revocation_url = (string?)null });
        var (id, _) = await Kit.ConnectAsync(provider);
        Assert.Equal(HttpStatusCode.NoContent, (await Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}")).Status);
        var revoked = await fixture.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}&event=revoked");
        Assert.Equal("not_supported", Assert.Single(revoked.GetProperty("events").EnumerateArray()).GetProperty("detail").GetProperty("provider_revocation").GetString());
    }

    [Fact]
    public async Task TheAuditLogTellsTheStoryOfAConnectionWithoutSecrets()
    {
        var provider = await Kit.RegisterAsync("google");
        var key = await Kit.CreateApiKeyAsync(["ws_audit"]);
        var (id, _) = await Kit.ConnectAsync(provider, "ws_audit", apiKey: key);
        var token = (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}", apiKey: key)).Body.GetProperty("credentials").GetProperty("access_token").GetString()!;
        await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}", apiKey: key);
        await Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}", apiKey: key);

        var events = (await fixture.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}")).GetProperty("events").EnumerateArray().ToList();
        // Newest first.
        Assert.Equal(["revoked", "token_read", "token_read", "activated", "requested"], events.Select(e => e.GetProperty("event").GetString()!).ToArray());
        Assert.All(events, e => Assert.Equal("ws_audit", e.GetProperty("workspace_id").GetString()));
        Assert.StartsWith("api_key:ak_", events[0].GetProperty("actor").GetString());
        Assert.Equal("callback", events[3].GetProperty("actor").GetString());
        var text = string.Join('\n', events.Select(e => e.ToString()));
        Assert.DoesNotContain(token, text, StringComparison.Ordinal);
        Assert.DoesNotContain(fixture.Fake.ClientSecret, text, StringComparison.Ordinal);

        var byWorkspace = await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/audit?workspace_id=ws_audit&event=token_read");
        Assert.Equal(2, byWorkspace.GetProperty("events").GetArrayLength());
        await fixture.Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/audit?event=nonsense", expected: HttpStatusCode.BadRequest);
        using var anonymous = await fixture.Server.Http.GetAsync("/v1/admin/audit");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    [Fact]
    public async Task TheDatabaseHoldsNoPlaintextProviderTokenClientSecretOrApiKey()
    {
        var provider = await Kit.RegisterAsync("google");
        var (id, _) = await Kit.ConnectAsync(provider, "ws_rest");
        var (_, pendingId) = await Kit.RequestAsync(provider, "ws_rest");
        var apiKey = await Kit.CreateApiKeyAsync(["ws_rest"]);
        var token = (await Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}", apiKey: apiKey)).Body.GetProperty("credentials").GetProperty("access_token").GetString()!;

        var rows = await fixture.Database.DumpAllRowsAsync();
        Assert.Contains(id, rows);
        Assert.Contains(pendingId, rows);
        var raw = Encoding.Latin1.GetString(fixture.Database.RawSqliteBytes());
        var secrets = fixture.Fake.IssuedTokens.Append(token).Append(fixture.Fake.ClientSecret).Append(apiKey).Append(apiKey["nxk_".Length..]).ToList();
        Assert.Contains(secrets, s => s.StartsWith("1//", StringComparison.Ordinal)); // a refresh token was issued and is scanned for
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(secret, rows, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, raw, StringComparison.Ordinal);
        }
    }
}
