using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

/// <summary>
/// The hostile-input suite's other half: <see cref="HostileInputTests"/> sends its requests without a valid antiforgery
/// token, so the HTML forms refuse them at the antiforgery check and their handlers never read the hostile fields. Here
/// a signed-in system administrator, with a valid antiforgery token, posts hostile form bodies to every form of a
/// session, and a visitor with the anonymous token to the anonymous forms (from <see cref="RouteSecurityTests.Table"/>): no answer may be a 5xx or show a stack trace, a .NET type name or SQL,
/// nothing may be logged as an unhandled error, and the session must still work at the end (the suite reached the
/// handlers). NEXUS_HOSTILE_REQUESTS sets the number of requests (default 3000, a third of them here), NEXUS_HOSTILE_SEED the seed.
/// </summary>
public sealed class SignedInHostileInputTests : IAsyncLifetime
{
    private const string AdminEmail = "hostile-admin@example.com";
    private const string Password = "correct horse battery";

    /// <summary>Forms that end the session by design (the suite needs it to the end).</summary>
    private static readonly string[] SessionEnders = ["/account/signout", "/oauth2/logout"];

    private static readonly string[] FieldNames =
    [
        "name", "display_name", "scopes", "scope", "redirect_uris", "redirect_uri", "grant_types", "type", "lifetime", "access_token_lifetime_seconds", "workspaces",
        "can_read_credentials", "email", "password", "current_password", "new_password", "confirm_password", "returnUrl", "token", "decision", "client_id",
        "response_type", "state", "code_challenge", "code_challenge_method", "nonce", "prompt", "enabled", "url", "events", "catalog", "auth_mode", "authorization_url",
        "token_url", "api_base_url", "client_secret", "pkce", "credential_schema", "mcp_url", "send_resource", "private_key_pem", "api_key", "username",
        "access_key_id", "secret_access_key", "session_token", "region", "role_arn", "in", "prefix", "offline_access", "resource", "issuer", "provider",
        "password_change_required",
    ];

    private readonly CapturedLogs logs = new();
    private TestDatabase database = null!;
    private NexusTestServer server = null!;
    private string cookie = "";
    private string csrf = "";
    private readonly List<string> ids = [];

    public async ValueTask InitializeAsync()
    {
        database = await TestDatabase.CreateAsync();
        server = await NexusTestServer.StartAsync(database, s => s["Logging:LogLevel:Default"] = "Warning", services: s => s.AddSingleton<ILoggerProvider>(logs));
        await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email = AdminEmail, password = Password }, System.Net.HttpStatusCode.Created);
        await server.MakeAdminAsync(AdminEmail);

        // Something real behind the {id} segments: another person, an App Client, a provider, a webhook.
        ids.Add((await server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/users", new { email = "someone@example.com", password = Password },
            System.Net.HttpStatusCode.Created)).GetProperty("id").GetString()!);
        ids.Add((await server.CreateAppClientAsync()).Id);
        ids.Add((await server.AdminJsonAsync(HttpMethod.Post, "/v1/providers", new
        {
            name = "hostile-form", auth_mode = "api_key", api_base_url = "https://api.example.com/v1", api_key = new { @in = "header", name = "x-api-key" },
        }, System.Net.HttpStatusCode.Created)).GetProperty("name").GetString()!);
        ids.Add("github");

        using var browser = new Browser(server);
        await browser.SignInAsync(AdminEmail, Password);
        await browser.NavigateAsync("/admin/users");
        cookie = browser.Cookies.GetCookieHeader(new Uri(server.BaseUrl));
        csrf = Browser.Forms(browser.LastPage).First(f => f.Hidden.ContainsKey("__csrf")).Hidden["__csrf"];
    }

    public async ValueTask DisposeAsync()
    {
        await server.DisposeAsync();
        await database.DisposeAsync();
    }

    private static int Total => int.TryParse(Environment.GetEnvironmentVariable("NEXUS_HOSTILE_REQUESTS"), CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 3000;

    private static int Seed => int.TryParse(Environment.GetEnvironmentVariable("NEXUS_HOSTILE_SEED"), CultureInfo.InvariantCulture, out var s) ? s : 12;

    private static List<string> Forms(params RouteSecurityTests.Access[] access) =>
        RouteSecurityTests.Table.Where(r => r.Antiforgery && r.Method == "POST" && access.Contains(r.Access) && !SessionEnders.Contains(r.Pattern)).Select(r => r.Pattern).ToList();

    [Fact]
    public async Task NoHostileFormPostFromASignedInAdministratorGetsA5xxALeakOrAnUnhandledError()
    {
        // The session's forms: a token made for the signed-in administrator does not fit the anonymous ones (below).
        var forms = Forms(RouteSecurityTests.Access.User, RouteSecurityTests.Access.SiteAdmin);
        Assert.True(forms.Count > 20, $"only {forms.Count} forms");
        var (summary, refusals, count) = await FuzzAsync(forms, Total / 3);

        // The handlers were reached: the session and its token still open Site management.
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = new Uri(server.BaseUrl) };
        using var check = new HttpRequestMessage(HttpMethod.Get, "/admin/users");
        check.Headers.TryAddWithoutValidation("Cookie", cookie);
        using var still = await http.SendAsync(check);
        Assert.Equal(System.Net.HttpStatusCode.OK, still.StatusCode);
        // The token fits every form of the session, and the handlers were reached, not only the form check in front of them.
        Assert.True(!refusals.ContainsKey("Form expired · Nexus"), $"a valid antiforgery token was refused: {summary}");
        Assert.True(count - refusals.GetValueOrDefault("Form not accepted · Nexus") > count / 2, $"most posts never reached a handler: {summary}");
    }

    [Fact]
    public async Task NoHostilePostToAnAnonymousFormWithItsTokenGetsA5xxALeakOrAnUnhandledError()
    {
        // Sign-in, sign-up and the credential and values forms, with the token a visitor without a session gets.
        using var visitor = new Browser(server);
        await visitor.NavigateAsync("/account/signin");
        cookie = visitor.Cookies.GetCookieHeader(new Uri(server.BaseUrl));
        csrf = Browser.Forms(visitor.LastPage).First(f => f.Hidden.ContainsKey("__csrf")).Hidden["__csrf"];
        var forms = Forms(RouteSecurityTests.Access.Public, RouteSecurityTests.Access.SignedState);
        Assert.True(forms.Count >= 4, $"only {forms.Count} forms");
        var (summary, refusals, _) = await FuzzAsync(forms, Total / 6);
        Assert.True(!refusals.ContainsKey("Form expired · Nexus"), $"a valid antiforgery token was refused: {summary}");
    }

    /// <summary>Posts <paramref name="count"/> hostile bodies to <paramref name="forms"/> with the cookie and token; fails on a 5xx, a leak or a logged error.</summary>
    private async Task<(string Summary, SortedDictionary<string, int> Refusals, int Count)> FuzzAsync(List<string> forms, int count)
    {
        var random = new Random(Seed);
        var attempts = Enumerable.Range(0, count).Select(i => (Index: i, Target: Target(random, forms[random.Next(forms.Count)]), Body: Body(random))).ToList();

        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = new Uri(server.BaseUrl) };
        var failures = new List<string>();
        var statuses = new SortedDictionary<int, int>();
        var refusals = new SortedDictionary<string, int>();
        foreach (var (index, target, body) in attempts)
        {
            // One at a time: a form may change what the next one finds (a provider deleted, a user disabled).
            using var request = new HttpRequestMessage(HttpMethod.Post, target) { Content = new ByteArrayContent(body) };
            request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/x-www-form-urlencoded");
            request.Headers.TryAddWithoutValidation("Cookie", cookie);
            using var response = await http.SendAsync(request);
            var status = (int)response.StatusCode;
            var text = await response.Content.ReadAsStringAsync();
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            if (status == 400 && Regex.Match(text, "<title>([^<]*)</title>|\"code\":\"([^\"]*)\"") is { Success: true } why)
            {
                var reason = why.Groups[1].Success ? why.Groups[1].Value : why.Groups[2].Value;
                refusals[reason] = refusals.GetValueOrDefault(reason) + 1;
            }

            var shown = $"#{index} POST {target} body={Encoding.UTF8.GetString(body.AsSpan(0, Math.Min(body.Length, 300)))}";
            if (status >= 500)
            {
                failures.Add($"{status} for {shown}: {Trim(text)}");
            }
            else if (HostileInputTests.Leak.Match(text) is { Success: true } leak)
            {
                failures.Add($"'{leak.Value}' in the {status} answer to {shown}: {Trim(text)}");
            }
        }

        var summary = $"seed {Seed}, {attempts.Count} form posts over {forms.Count} forms on {database.Engine}; statuses "
            + string.Join(", ", statuses.Select(p => $"{p.Key}×{p.Value}")) + "; 400s: " + string.Join(", ", refusals.Select(p => $"{p.Key}×{p.Value}"));
        TestContext.Current.SendDiagnosticMessage(summary);
        Assert.True(failures.Count == 0, $"{summary}\n{failures.Count} failures, first ones:\n{string.Join("\n", failures.Take(15))}");
        var errors = logs.Lines.Where(l => l.StartsWith("Error ", StringComparison.Ordinal) || l.StartsWith("Critical ", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, $"{summary}\nUnhandled errors were logged:\n{string.Join("\n", errors.Take(5).Select(Trim))}");
        return (summary, refusals, attempts.Count);
    }

    private static string Trim(string text) => text.Length > 600 ? text[..600] + "…" : text;

    private string Target(Random random, string pattern) =>
        Regex.Replace(pattern, @"\{[^}]+\}", _ => random.Next(3) switch
        {
            0 => ids[random.Next(ids.Count)],
            1 => Uri.EscapeDataString(Value(random, 40)),
            _ => Uri.EscapeDataString(Value(random, 300)).Replace("%2F", "/", StringComparison.Ordinal),
        });

    /// <summary>A form body: the valid antiforgery token and a random handful of fields with hostile values, sometimes raw invalid bytes.</summary>
    private byte[] Body(Random random)
    {
        var body = new List<byte>(Encoding.ASCII.GetBytes("__csrf=" + Uri.EscapeDataString(csrf)));
        for (var i = random.Next(0, 9); i > 0; i--)
        {
            body.AddRange(Encoding.ASCII.GetBytes("&" + FieldNames[random.Next(FieldNames.Length)] + "="));
            body.AddRange(random.Next(24) switch
            {
                0 => [0x25, 0x45, 0x44, 0x25, 0x41, 0x30, 0x25, 0x38, 0x30], // %ED%A0%80: a lone surrogate in UTF-8
                1 => [0x25, 0x46, 0x46, 0x25, 0x30, 0x30, 0xC3, 0x28], // %FF%00 then a raw invalid UTF-8 pair
                _ => Encoding.ASCII.GetBytes(Uri.EscapeDataString(Value(random, 200))),
            });
        }

        return [.. body];
    }

    private static string Value(Random random, int max) => random.Next(16) switch
    {
        0 => "",
        1 => new string('a', random.Next(1, 20_000)),
        2 => "\0",
        3 => "-1",
        4 => "99999999999999999999999999",
        5 => "1e309",
        6 => "https://app.example.test/callback",
        7 => "javascript:alert(1)",
        8 => "../../../etc/passwd",
        9 => "<script>alert(1)</script>",
        10 => "{\"a\":[1,2,{\"b\":null}]}",
        11 => "read write openid offline_access",
        12 => "someone@example.com",
        13 => "true",
        14 => "😀 \u202e \t\r\n",
        _ => new string(Enumerable.Range(0, random.Next(1, max)).Select(_ => (char)random.Next(0x20, 0x7f)).ToArray()),
    };
}
