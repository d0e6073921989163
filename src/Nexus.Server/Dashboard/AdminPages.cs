using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Dashboard;

/// <summary>The frame of Site Management: who may enter, and the tabs.</summary>
internal static class AdminPages
{
    public static readonly (string Path, string Label)[] Tabs =
    [
        ("/admin/applications", "OAuth Applications"),
        ("/admin/clients", "App Clients"),
        ("/admin/providers", "Providers"),
        ("/admin/api-keys", "API keys"),
        ("/admin/users", "Users"),
        ("/admin/webhooks", "Webhooks"),
        ("/admin/audit", "Audit log"),
        ("/admin/status", "Status"),
    ];

    public static IResult Render(HttpContext context, string current, string title, string body, int status = 200)
    {
        var tabs = string.Concat(Tabs.Select(t => t.Path == current
            ? $"<a href=\"{t.Path}\" aria-current=\"page\">{E(t.Label)}</a>"
            : $"<a href=\"{t.Path}\">{E(t.Label)}</a>"));
        return Page(context, title, $"<h1>Site management</h1><nav class=\"tabs\" aria-label=\"Site management\">{tabs}</nav>{body}", status);
    }

    public static string SecretBox(string label, string id, string secret, string help = "Copy it now: Nexus stores only a hash and will not show it again.") => $"""
        <div class="secret" role="status"><label for="{E(id)}">{E(label)}</label>
        <div class="row"><input id="{E(id)}" type="text" readonly value="{E(secret)}" aria-describedby="{E(id)}-help">
        <button type="button" data-copy="{E(id)}">Copy</button></div>
        <p id="{E(id)}-help">{E(help)}</p></div>
        """;

    public static string Errors(IDictionary<string, string[]>? errors) =>
        errors is null || errors.Count == 0 ? "" : $"<ul class=\"error\" role=\"alert\">{string.Concat(errors.SelectMany(e => e.Value).Select(m => $"<li>{E(m)}</li>"))}</ul>";

    public static string[] Lines(string? value) =>
        (value ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static string[] Words(string? value) =>
        (value ?? "").Split([' ', ',', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    /// <summary>Active rows in the table; revoked ones folded away below it, kept for the record.</summary>
    public static string ActiveAndRevoked(string[] headers, IEnumerable<(bool Revoked, string Row)> rows, string empty)
    {
        var all = rows.ToList();
        var revoked = all.Where(r => r.Revoked).Select(r => r.Row).ToList();
        var table = SiteManagementPages.Table(headers, all.Where(r => !r.Revoked).Select(r => r.Row), empty);
        return revoked.Count == 0 ? table
            : $"{table}<details class=\"revoked-list\"><summary>Revoked ({revoked.Count})</summary>{SiteManagementPages.Table(headers, revoked, "")}</details>";
    }

    public static string Status(bool revoked) => revoked ? "<span class=\"status revoked\">revoked</span>" : "<span class=\"status active\">active</span>";

    /// <summary>
    /// Every destructive action asks first, on a page of its own (no script needed, so it works under the strict CSP
    /// and without JavaScript). The same rule on every tab (README, "Dashboard"):
    /// <list type="bullet">
    /// <item><b>Revoke</b> ends the access something holds (an application, an App Client, an API key; on My connections a
    /// connection, on Authorized applications your consent). The row leaves the list at once; revoked credentials are kept
    /// for the record and listed under a folded "Revoked" section.</item>
    /// <item><b>Delete</b> removes configuration (a provider, a webhook); the row vanishes.</item>
    /// <item><b>Disable</b> (users) keeps the row, marked disabled; <b>Enable</b> undoes it.</item>
    /// </list>
    /// </summary>
    public static IResult Confirm(HttpContext context, string current, string question, string action, string button, string? detail = null) =>
        Render(context, current, "Confirm", $"""
            <section class="card narrow"><h2>{E(question)}</h2>{(detail is null ? "" : $"<p>{E(detail)}</p>")}
            <form method="post" action="{E(action)}">{AntiforgeryField(context)}
            <div class="actions"><button type="submit" class="danger">{E(button)}</button><a class="button secondary" href="{E(current)}">Cancel</a></div></form></section>
            """);
}
