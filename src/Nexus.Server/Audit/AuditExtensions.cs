using Microsoft.AspNetCore.Http.HttpResults;
using Nexus.Server.Hosting;

namespace Nexus.Server.Audit;

/// <summary>GET /v1/admin/audit: the matching events, newest first.</summary>
internal sealed record AuditEventList(IReadOnlyList<AuditEvent> Events);

internal static class AuditExtensions
{
    public static WebApplicationBuilder AddAudit(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<AuditLog>();
        builder.Services.AddHostedService<AuditWriter>();
        builder.Services.AddSingleton<Data.IRetentionRule, AuditRetention>();
        return builder;
    }

    /// <summary>GET /v1/admin/audit?workspace_id=&amp;connection_id=&amp;event=&amp;limit=: newest first.</summary>
    public static WebApplication MapAudit(this WebApplication app)
    {
        app.MapAdminGroup().MapGet("/v1/admin/audit", async Task<Results<Ok<AuditEventList>, ProblemHttpResult>> (AuditLog audit, HttpRequest request, CancellationToken ct) =>
        {
            var q = request.Query;
            string? One(string name) => q[name].Count == 1 && q[name][0] is { Length: > 0 } v ? v : null;
            var evt = One("event");
            if (evt is not null && !AuditEvents.All.Contains(evt))
            {
                return Problems.TypedValidation(new Dictionary<string, string[]> { ["event"] = [$"event is one of {string.Join(", ", AuditEvents.All)}."] });
            }

            var limit = 100;
            if (One("limit") is { } l && (!int.TryParse(l, out limit) || limit is < 1 or > 1000))
            {
                return Problems.TypedValidation(new Dictionary<string, string[]> { ["limit"] = ["limit is 1 to 1000."] });
            }

            var events = await audit.QueryAsync(One("workspace_id"), One("connection_id"), evt, limit, ct);
            return TypedResults.Ok(new AuditEventList(events));
        }).WithTags("Audit");
        return app;
    }
}
