using System.Net;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Connections;

/// <summary>
/// Issue 12, item 12: RFC 9207 on the broker's /auth/callback. A provider registered by issuer whose metadata says
/// authorization_response_iss_parameter_supported must send iss, and it must be its own issuer; otherwise the
/// response may come from another provider (mix-up attack, RFC 9700 §4.4) and the connection fails.
/// </summary>
public sealed class CallbackIssuerTests(BrokerFixture fixture) : IClassFixture<BrokerFixture>
{
    private BrokerKit Kit => fixture.Kit;

    private async Task<string> RegisterByIssuerAsync(bool advertises)
    {
        Kit.Fake.AdvertisesIss = advertises;
        var name = "oidc-" + Guid.NewGuid().ToString("N")[..8];
        await Kit.Server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name,
            issuer = Kit.Fake.OidcIssuer,
            client_id = Kit.Fake.ClientId,
            client_secret = Kit.Fake.ClientSecret,
            scopes = new[] { "openid" },
        }, HttpStatusCode.Created);
        return name;
    }

    private async Task<Dictionary<string, string>> HandshakeAsync(string provider, string? iss)
    {
        Kit.Fake.SendIss = iss;
        try
        {
            var (authUrl, _) = await Kit.RequestAsync(provider);
            using var response = await Kit.CallbackAsync(await Kit.ConsentAsync(authUrl));
            Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
            return BrokerKit.ReturnedQuery(response);
        }
        finally
        {
            Kit.Fake.SendIss = null;
        }
    }

    [Fact]
    public async Task TheProvidersOwnIssuerIsAccepted()
    {
        var provider = await RegisterByIssuerAsync(advertises: true);
        Assert.Equal("active", (await HandshakeAsync(provider, Kit.Fake.OidcIssuer))["status"]);
    }

    [Fact]
    public async Task AnotherIssuerFailsTheConnectionAsAMixUp()
    {
        var provider = await RegisterByIssuerAsync(advertises: true);
        var returned = await HandshakeAsync(provider, "https://attacker.example");
        Assert.Equal("failed", returned["status"]);
        Assert.Equal("issuer_mismatch", returned["error"]);
        var (_, connection) = await Kit.SendAsync(HttpMethod.Get, $"/v1/connections/{returned["connection_id"]}");
        Assert.Contains("mix-up", connection.GetProperty("error_description").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AMissingIssFailsTheConnectionWhenTheProviderAnnouncesIt()
    {
        var provider = await RegisterByIssuerAsync(advertises: true);
        var returned = await HandshakeAsync(provider, iss: null);
        Assert.Equal("failed", returned["status"]);
        Assert.Equal("issuer_mismatch", returned["error"]);
    }

    [Fact]
    public async Task AProviderThatDoesNotAnnounceIssMayOmitItButAWrongOneStillFails()
    {
        var provider = await RegisterByIssuerAsync(advertises: false);
        Assert.Equal("active", (await HandshakeAsync(provider, iss: null))["status"]);
        Assert.Equal("failed", (await HandshakeAsync(provider, "https://attacker.example"))["status"]);
    }
}
