using System.Net;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Notifications;

/// <summary>What adding a webhook refuses (POST /v1/admin/webhooks; the dashboard calls the same WebhookRegistration).</summary>
public sealed class WebhookRegistrationTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Theory]
    [InlineData("""{"url":"https://hooks.example.test/a","events":[null]}""", "events")]
    [InlineData("""{"url":"https://hooks.example.test/a","events":["connection.active",null]}""", "events")]
    [InlineData("""{"url":"https://hooks.example.test/a","workspace_id":"not a workspace id"}""", "workspace_id")]
    [InlineData("""{"url":"https://hooks.example.test/a","workspace_id":"ws/../other"}""", "workspace_id")]
    public async Task AWebhookThatWouldListenToNothingOrToAWorkspaceThatCannotExistIsRefusedAndNothingIsStored(string body, string field)
    {
        var server = fixture.Server;
        var before = (await server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/webhooks")).GetProperty("webhooks").GetArrayLength();
        using var request = server.Admin(HttpMethod.Post, "/v1/admin/webhooks");
        request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await server.Http.SendAsync(request, TestContext.Current.CancellationToken);
        var problem = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement;

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
        Assert.Equal(before, (await server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/webhooks")).GetProperty("webhooks").GetArrayLength());
    }
}
