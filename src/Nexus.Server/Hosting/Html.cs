using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Antiforgery;

namespace Nexus.Server.Hosting;

/// <summary>
/// Server-rendered pages. Every dynamic value goes through <see cref="E"/>; pages load only Nexus's own
/// stylesheet, so the Content-Security-Policy can forbid inline scripts and styles altogether.
/// </summary>
internal static class Html
{
    public const string ContentSecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; connect-src 'self'; " +
        "base-uri 'none'; frame-ancestors 'none'";

    public static string E(string? value) => HtmlEncoder.Default.Encode(value ?? "");

    public static string AntiforgeryField(HttpContext context)
    {
        var tokens = context.RequestServices.GetRequiredService<IAntiforgery>().GetAndStoreTokens(context);
        return $"<input type=\"hidden\" name=\"{E(tokens.FormFieldName)}\" value=\"{E(tokens.RequestToken)}\">";
    }

    /// <summary>
    /// <c> value="…"</c> for a text field re-rendered after a failed submission, so what was typed is kept; empty when
    /// there is no submission. Never used for passwords or secrets: those are typed again.
    /// </summary>
    public static string Value(IFormCollection? form, string name, string? fallback = null) =>
        form is null ? (fallback is null ? "" : $" value=\"{E(fallback)}\"") : $" value=\"{E(form[name].ToString())}\"";

    /// <summary>A textarea's content after a failed submission.</summary>
    public static string Text(IFormCollection? form, string name) => form is null ? "" : E(form[name].ToString());

    /// <summary><c> selected</c> for the option that was chosen (or <paramref name="isDefault"/> before any submission).</summary>
    public static string Selected(IFormCollection? form, string name, string value, bool isDefault = false) =>
        (form is null ? isDefault : form[name].ToString() == value) ? " selected" : "";

    /// <summary><c> checked</c> for a checkbox as submitted (or <paramref name="isDefault"/> before any submission).</summary>
    public static string Checked(IFormCollection? form, string name, string value, bool isDefault) =>
        (form is null ? isDefault : form[name].Contains(value)) ? " checked" : "";

    public static IResult Page(HttpContext context, string title, string body, int status = StatusCodes.Status200OK)
    {
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        // Authorization codes and state travel in URLs; never leak them to other sites through Referer.
        headers["Referrer-Policy"] = "no-referrer";
        // The exact values antiforgery requires of pages that carry its tokens.
        headers.CacheControl = "no-cache, no-store";
        headers.Pragma = "no-cache";
        var user = context.User.Identity?.IsAuthenticated == true ? context.User.FindFirst(System.Security.Claims.ClaimTypes.Email)?.Value : null;
        var page = new StringBuilder()
            .Append("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
            .Append("<title>").Append(E(title)).Append(" · Nexus</title>")
            .Append("<link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/assets/nexus.css\"><script src=\"/assets/nexus.js\" defer></script></head><body>")
            .Append("<header class=\"top\"><a class=\"brand\" href=\"/\">Nexus</a>");
        if (user is not null)
        {
            page.Append("<nav aria-label=\"Main\" class=\"main-nav\">");
            // The components register their links (NavigationLink): Hosting knows none of the pages.
            foreach (var link in context.RequestServices?.GetService<PageNavigation>()?.Links ?? [])
            {
                if (link.ShownTo?.Invoke(context.User) == false)
                {
                    continue;
                }

                page.Append("<a href=\"").Append(E(link.Href)).Append('"');
                if (link.Class is not null)
                {
                    page.Append(" class=\"").Append(E(link.Class)).Append('"');
                }

                if (link.Label is not null)
                {
                    page.Append(" aria-label=\"").Append(E(link.Label)).Append("\" title=\"").Append(E(link.Label)).Append('"');
                }

                page.Append('>').Append(link.Text).Append("</a>");
            }

            page.Append("</nav>");
            page.Append("<form method=\"post\" action=\"/account/signout\" class=\"inline\">").Append(AntiforgeryField(context))
                .Append("<span class=\"who\">").Append(E(user)).Append("</span> <button type=\"submit\" class=\"link\">Sign out</button></form>");
        }

        page.Append("</header><main>").Append(body).Append("</main></body></html>");
        return Results.Content(page.ToString(), "text/html; charset=utf-8", Encoding.UTF8, status);
    }

    public static IResult Error(HttpContext context, string title, string message, int status = StatusCodes.Status400BadRequest) =>
        Page(context, title, $"<section class=\"card\"><h1>{E(title)}</h1><p role=\"alert\">{E(message)}</p><p><a href=\"/\">Back to Nexus</a></p></section>", status);

    /// <summary>
    /// Only same-site paths may be a post-sign-in destination, never another origin. Browsers drop tabs and
    /// newlines from a URL and read a backslash as a slash (WHATWG URL §4.4), so "/\t/evil.example" and
    /// "/\\evil.example" both mean "//evil.example", another host. So: a path that starts with one "/", followed
    /// by anything but "/" or "\\", made of printable ASCII only (no control character, space, backslash or
    /// non-ASCII; a path that needs those sends them percent-encoded), and that still resolves to this origin.
    /// </summary>
    public static bool IsLocalUrl(string? url)
    {
        if (string.IsNullOrEmpty(url) || url.Length > 2048 || url[0] != '/' || (url.Length > 1 && url[1] is '/' or '\\'))
        {
            return false;
        }

        if (!InputText.IsVisibleAscii(url, allowBackslash: false))
        {
            return false;
        }

        // Belt and braces: what a browser would resolve it to stays on this origin.
        return Uri.TryCreate(LocalOrigin, url, out var resolved) && resolved.Authority == LocalOrigin.Authority && resolved.Scheme == LocalOrigin.Scheme;
    }

    /// <summary>The destination to redirect to: <paramref name="url"/> when it is local, otherwise the home page.</summary>
    public static string LocalUrlOrHome(string? url) => IsLocalUrl(url) ? url! : "/";

    /// <summary>Where signing in leads when no (local) return URL was given: the person's connections, not a dead end.</summary>
    public static string LocalUrlOrDashboard(string? url) => IsLocalUrl(url) && url != "/" ? url! : "/dashboard";

    private static readonly Uri LocalOrigin = new("http://nexus.invalid/");
}
