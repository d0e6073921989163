using System.Net;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>Issue 17, per-connection values: given, asked, captured; used for every provider URL; hostile ones refused.</summary>
public sealed class ConnectionValuesTests(TenantFixture f) : IClassFixture<TenantFixture>
{
    [Fact]
    public async Task AShopGivenAtRequestTimeReachesTheAuthorizeTokenRefreshAndBridgeHosts()
    {
        var (status, body) = await f.RequestAsync(TenantFixture.Shop, new { shop = "acme" });
        Assert.Equal(HttpStatusCode.Created, status);
        var authUrl = body.GetProperty("auth_url").GetString()!;
        Assert.StartsWith(f.Fake.Url("acme.localhost", "/authorize?"), authUrl);
        var id = body.GetProperty("connection_id").GetString()!;
        Assert.Equal("active", (await f.CompleteAsync(authUrl))["status"]);
        Assert.Contains(f.Fake.Calls, c => c.Path == "/token" && c.Grant == "authorization_code" && c.Host == "acme.localhost");

        var connection = await f.ConnectionAsync(id);
        Assert.Equal("acme", connection.GetProperty("connection_config").GetProperty("shop").GetString());
        var (_, token) = await f.Kit.SendAsync(HttpMethod.Get, $"/v1/token/{id}");
        Assert.Equal("acme", token.GetProperty("connection_config").GetProperty("shop").GetString());

        var (refreshed, _) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
        Assert.Equal(HttpStatusCode.OK, refreshed);
        Assert.Contains(f.Fake.Calls, c => c.Path == "/token" && c.Grant == "refresh_token" && c.Host == "acme.localhost");

        Assert.Equal((HttpStatusCode.OK, "acme.localhost"), await f.BridgeAsync(id));
    }

    [Fact]
    public async Task AMissingShopIsAskedOfThePersonOnANexusPageBeforeTheConsent()
    {
        var (status, body) = await f.RequestAsync(TenantFixture.Shop);
        Assert.Equal(HttpStatusCode.Created, status);
        var authUrl = body.GetProperty("auth_url").GetString()!;
        Assert.StartsWith(f.Server.Issuer + "/connect/values?state=", authUrl);

        using var browser = new Browser(f.Server);
        await browser.NavigateAsync(authUrl);
        Assert.Contains("Your store&#39;s name", browser.LastPage.Replace("&#x27;", "&#39;"));
        // A host-changing entry is refused on the page, which asks again.
        await browser.SubmitAsync("/connect/values", new Dictionary<string, string> { ["shop"] = "evil.example/x" });
        Assert.Equal(HttpStatusCode.BadRequest, browser.LastStatus);
        var next = await browser.SubmitAsync("/connect/values", new Dictionary<string, string> { ["shop"] = "bobs-shop" });
        Assert.StartsWith(f.Fake.Url("bobs-shop.localhost", "/authorize?"), next.ToString());

        Assert.Equal("active", (await f.CompleteAsync(next.ToString()))["status"]);
        var id = body.GetProperty("connection_id").GetString()!;
        Assert.Equal("bobs-shop", (await f.ConnectionAsync(id)).GetProperty("connection_config").GetProperty("shop").GetString());
        Assert.Equal((HttpStatusCode.OK, "bobs-shop.localhost"), await f.BridgeAsync(id));
    }

    [Theory]
    [InlineData("evil.example/x")]
    [InlineData("a@b")]
    [InlineData("..")]
    [InlineData("acme.evil.example")]
    [InlineData("acme:443")]
    [InlineData("")]
    public async Task AValueThatWouldChangeTheHostIsRefused(string shop)
    {
        var (status, body) = await f.RequestAsync(TenantFixture.Shop, new { shop });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.True(body.GetProperty("errors").TryGetProperty("connection_config.shop", out _), body.ToString());
    }

    [Fact]
    public async Task ValuesThatAreNotAskedBeforeConsentCannotBeGiven()
    {
        Assert.Equal(HttpStatusCode.BadRequest, (await f.RequestAsync(TenantFixture.Sf, new { instance = "acme" })).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await f.RequestAsync(TenantFixture.Shop, new { shop = "acme", tenant = "x" })).Status);
    }

    [Fact]
    public async Task ASalesforceLikeInstanceComesFromTheTokenResponseAndIsUsedForTheBridgeAndRevocation()
    {
        f.Fake.InstanceUrl = f.Fake.Url("acme-dev.localhost", "");
        try
        {
            var id = await f.ConnectAsync(TenantFixture.Sf);
            Assert.Contains(f.Fake.Calls, c => c.Path == "/token" && c.Host == "login.localhost");
            Assert.Equal("acme-dev", (await f.ConnectionAsync(id)).GetProperty("connection_config").GetProperty("instance").GetString());
            Assert.Equal((HttpStatusCode.OK, "acme-dev.localhost"), await f.BridgeAsync(id));

            var token = await f.TokenAsync(id);
            Assert.Equal(HttpStatusCode.NoContent, (await f.Kit.SendAsync(HttpMethod.Delete, $"/v1/connections/{id}")).Status);
            Assert.Contains(f.Fake.Calls, c => c.Path == "/revoke" && c.Host == "acme-dev.localhost" && c.Token == token);
        }
        finally
        {
            f.Fake.InstanceUrl = null;
        }
    }

    [Fact]
    public async Task AReconnectSupersededDuringItsCodeExchangeLeavesTheInstanceItsTokenAnswerNamedUnstored()
    {
        f.Fake.InstanceUrl = f.Fake.Url("acme-dev.localhost", "");
        try
        {
            var id = await f.ConnectAsync(TenantFixture.Sf);
            var (_, earlier) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { });
            var callback = await f.Fake.ConsentAsync(earlier.GetProperty("auth_url").GetString()!);
            // The earlier consent is for another org; its token answer is on the way when the app reconnects again.
            f.Fake.InstanceUrl = f.Fake.Url("other-org.localhost", "");
            var gate = f.Fake.CodeExchangeGate = new Gate();
            var returning = f.Kit.Browser.GetAsync(callback, TestContext.Current.CancellationToken);
            await gate.Arrived.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
            f.Fake.CodeExchangeGate = null;
            var (status, _) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/connections/{id}/reconnect", new { });
            Assert.Equal(HttpStatusCode.OK, status);
            gate.Release();
            using (var returned = await returning)
            {
                Assert.Contains("error=superseded", returned.Headers.Location!.Query, StringComparison.Ordinal);
            }

            // The connection still holds the first consent's tokens, and the instance they belong to.
            Assert.Equal("acme-dev", (await f.ConnectionAsync(id)).GetProperty("connection_config").GetProperty("instance").GetString());
            Assert.Equal((HttpStatusCode.OK, "acme-dev.localhost"), await f.BridgeAsync(id));
        }
        finally
        {
            f.Fake.InstanceUrl = null;
            f.Fake.CodeExchangeGate = null;
        }
    }

    [Theory]
    [InlineData("https://evil.example/x")]
    [InlineData("http://a@b.localhost")]
    [InlineData("not a url at all/..")]
    public async Task AHostileInstanceUrlFailsTheConnectionInsteadOfBecomingTheBridgeHost(string instanceUrl)
    {
        f.Fake.InstanceUrl = instanceUrl;
        try
        {
            var (_, body) = await f.RequestAsync(TenantFixture.Sf);
            var returned = await f.CompleteAsync(body.GetProperty("auth_url").GetString()!);
            Assert.Equal("failed", returned["status"]);
            Assert.Equal("connection_config_unavailable", returned["error"]);
            var connection = await f.ConnectionAsync(body.GetProperty("connection_id").GetString()!);
            Assert.False(connection.TryGetProperty("connection_config", out _));
        }
        finally
        {
            f.Fake.InstanceUrl = null;
        }
    }

    [Fact]
    public async Task AMailchimpLikeDataCentreComesFromTheMetadataCall()
    {
        var id = await f.ConnectAsync(TenantFixture.Mc);
        Assert.Contains(f.Fake.Calls, c => c.Path == "/metadata" && c.Host == "login.localhost" && c.Token!.StartsWith("OAuth ", StringComparison.Ordinal));
        Assert.Equal("us7", (await f.ConnectionAsync(id)).GetProperty("connection_config").GetProperty("dc").GetString());
        Assert.Equal((HttpStatusCode.OK, "us7.localhost"), await f.BridgeAsync(id));
    }

    [Fact]
    public async Task APublicClientConsentsAndRefreshesWithPkceAndWithoutASecret()
    {
        f.Fake.PublicClient = true;
        try
        {
            var id = await f.ConnectAsync(TenantFixture.Public);
            var exchange = f.Fake.Calls.Last(c => c.Path == "/token" && c.Grant == "authorization_code");
            Assert.True(exchange.HadVerifier);
            Assert.False(exchange.HadSecret);

            var (refreshed, _) = await f.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
            Assert.Equal(HttpStatusCode.OK, refreshed);
            Assert.False(f.Fake.Calls.Last(c => c.Path == "/token" && c.Grant == "refresh_token").HadSecret);
        }
        finally
        {
            f.Fake.PublicClient = false;
        }

        // A public client has no secret to register.
        await f.Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "public-with-secret",
            authorization_url = f.Fake.Url("public.localhost", "/authorize"),
            token_url = f.Fake.Url("public.localhost", "/token"),
            client_id = "x",
            client_secret = "y",
            token_endpoint_auth = "none",
        }, HttpStatusCode.BadRequest);
    }
}
