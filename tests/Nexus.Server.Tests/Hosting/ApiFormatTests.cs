using System.Net;
using System.Text.Json;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>One data format across the API: times are Unix seconds everywhere, enum values are snake_case.</summary>
public sealed class ApiFormatTests
{
    [Fact]
    public async Task EveryTimeInTheApiIsUnixSeconds()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        var now = scene.Server.Time.GetUtcNow().ToUnixTimeSeconds();

        void AssertUnixSeconds(JsonElement value, string where)
        {
            Assert.True(value.ValueKind == JsonValueKind.Number, $"{where} is {value.GetRawText()}, not Unix seconds");
            Assert.InRange(value.GetInt64(), now - 300, now + 4000);
        }

        var connection = await scene.Kit.ConnectionAsync(id);
        AssertUnixSeconds(connection.GetProperty("created_at"), "a connection's created_at");
        AssertUnixSeconds(connection.GetProperty("expires_at"), "a connection's expires_at");

        var key = await scene.Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/api-keys", new { name = "format", workspaces = new[] { "ws_refresh" } }, HttpStatusCode.Created);
        AssertUnixSeconds(key.GetProperty("created_at"), "an API key's created_at");

        var provider = await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/providers/{scene.Provider}");
        AssertUnixSeconds(provider.GetProperty("created_at"), "a provider's created_at");
        AssertUnixSeconds(provider.GetProperty("updated_at"), "a provider's updated_at");

        var signingKey = (await scene.Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/signing-keys")).GetProperty("keys")[0];
        AssertUnixSeconds(signingKey.GetProperty("created_at"), "a signing key's created_at");

        var audit = await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}");
        AssertUnixSeconds(audit.GetProperty("events")[0].GetProperty("at"), "an audit event's at");

        var hook = await scene.Hooks.WaitForAsync(d => d.Type == "connection.active");
        AssertUnixSeconds(hook.Json.GetProperty("timestamp"), "a webhook's timestamp");
    }

    [Fact]
    public async Task EnumValuesAreSnakeCaseInTheAuditLog()
    {
        await using var scene = await RefreshScene.StartAsync();
        var id = await scene.Kit.ConnectAsync(scene.Provider);
        scene.Upstream.RevokeFamily(await scene.Kit.TokenAsync(id));

        // A forced refresh the provider rejects: the audit log's outcome was once "attentionrequired".
        var (status, _, _) = await scene.Kit.SendAsync(HttpMethod.Post, $"/v1/refresh/{id}");
        Assert.Equal(HttpStatusCode.Conflict, status);
        var audit = await scene.Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={id}&event=refreshed");
        var outcomes = audit.GetProperty("events").EnumerateArray()
            .Select(e => e.GetProperty("detail").TryGetProperty("outcome", out var o) ? o.GetString() : null).ToList();
        Assert.Contains("attention_required", outcomes);
    }
}
