using System.Net;
using System.Text.RegularExpressions;
using System.Web;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// A cookie-keeping HTTP client that follows Nexus's own redirects by hand, reads hidden form fields and posts
/// forms back, the way a browser would (without JavaScript, which Nexus's pages do not need).
/// </summary>
public sealed partial class Browser : IDisposable
{
    private readonly HttpClient http;
    private readonly Uri baseUri;

    public Browser(NexusTestServer server)
        : this(server.BaseUrl)
    {
    }

    /// <summary>A browser for any Nexus, such as one running as its own process.</summary>
    public Browser(string baseUrl)
    {
        baseUri = new Uri(baseUrl);
        CurrentUri = baseUri;
        Cookies = new CookieContainer();
        http = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, AllowAutoRedirect = false, UseCookies = true });
    }

    public CookieContainer Cookies { get; }

    /// <summary>The last page received (HTML), for reading forms.</summary>
    public string LastPage { get; private set; } = "";

    public HttpStatusCode LastStatus { get; private set; }

    /// <summary>The raw Location header of the last redirect received, exactly as the server sent it.</summary>
    public string? LastLocation { get; private set; }

    /// <summary>The address of the last page received; forms post relative to it.</summary>
    public Uri CurrentUri { get; private set; }

    /// <summary>
    /// GETs a URL and follows redirects while they stay on this Nexus (or anywhere, with <paramref name="followForeign"/>);
    /// returns the final page's URL, or the first redirect that leaves.
    /// </summary>
    public async Task<Uri> NavigateAsync(string url, bool followForeign = false)
    {
        var target = new Uri(CurrentUri, url);
        for (var hops = 0; hops < 10; hops++)
        {
            using var response = await http.GetAsync(target);
            LastStatus = response.StatusCode;
            LastPage = await response.Content.ReadAsStringAsync();
            if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } location)
            {
                LastLocation = response.Headers.TryGetValues("Location", out var raw) ? raw.Single() : location.OriginalString;
                var next = location.IsAbsoluteUri ? location : new Uri(target, location);
                // Other loopback servers may be followed; anything beyond this machine never is.
                if (next.Authority != baseUri.Authority && (!followForeign || !next.IsLoopback))
                {
                    return next;
                }

                target = next;
                continue;
            }

            CurrentUri = target;
            return target;
        }

        throw new InvalidOperationException("Too many redirects.");
    }

    /// <summary>Submits the form of the last page whose action ends with <paramref name="action"/>, with fields changed or added.</summary>
    public async Task<Uri> SubmitAsync(string action, IDictionary<string, string>? fields = null, bool includeCsrf = true, bool followForeign = false)
    {
        var form = Forms(LastPage).FirstOrDefault(f => f.Action.EndsWith(action, StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"No form posting to {action} on the page:\n{LastPage}");
        var values = new Dictionary<string, string>(form.Hidden);
        if (!includeCsrf)
        {
            values.Remove("__csrf");
        }

        foreach (var (key, value) in fields ?? new Dictionary<string, string>())
        {
            values[key] = value;
        }

        return await PostAsync(form.Action, values, followForeign);
    }

    /// <summary>
    /// POSTs a form of this test's own making to <paramref name="url"/> (as another site's page would), following
    /// redirects as <see cref="NavigateAsync"/> does.
    /// </summary>
    public async Task<Uri> PostAsync(string url, IEnumerable<KeyValuePair<string, string>> values, bool followForeign = false)
    {
        var target = new Uri(CurrentUri, url);
        using var response = await http.PostAsync(target, new FormUrlEncodedContent(values));
        LastStatus = response.StatusCode;
        LastPage = await response.Content.ReadAsStringAsync();
        if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } location)
        {
            LastLocation = response.Headers.TryGetValues("Location", out var raw) ? raw.Single() : location.OriginalString;
            var next = location.IsAbsoluteUri ? location : new Uri(target, location);
            return next.Authority != baseUri.Authority && (!followForeign || !next.IsLoopback) ? next : await NavigateAsync(next.ToString(), followForeign);
        }

        return target;
    }

    public async Task SignUpAsync(string email, string password)
    {
        await NavigateAsync("/account/signup");
        await SubmitAsync("/account/signup", new Dictionary<string, string> { ["email"] = email, ["password"] = password });
        Assert.Contains(email, LastPage);
    }

    public async Task SignInAsync(string email, string password)
    {
        await NavigateAsync("/account/signin");
        await SubmitAsync("/account/signin", new Dictionary<string, string> { ["email"] = email, ["password"] = password });
    }

    /// <summary>Enters <paramref name="setupToken"/> at /setup, as the signed-in account; ends on /admin when it worked.</summary>
    public async Task<Uri> EnterSetupTokenAsync(string setupToken)
    {
        await NavigateAsync("/setup");
        return await SubmitAsync("/setup", new Dictionary<string, string> { ["token"] = setupToken });
    }

    public sealed record Form(string Action, Dictionary<string, string> Hidden);

    public static List<Form> Forms(string html)
    {
        var forms = new List<Form>();
        foreach (Match form in FormRegex().Matches(html))
        {
            var hidden = new Dictionary<string, string>();
            foreach (Match input in HiddenRegex().Matches(form.Groups["body"].Value))
            {
                hidden[HttpUtility.HtmlDecode(input.Groups["name"].Value)] = HttpUtility.HtmlDecode(input.Groups["value"].Value);
            }

            forms.Add(new Form(HttpUtility.HtmlDecode(form.Groups["action"].Value), hidden));
        }

        return forms;
    }

    public static Dictionary<string, string> Query(Uri uri) =>
        HttpUtility.ParseQueryString(uri.Query).AllKeys.Where(k => k is not null).ToDictionary(k => k!, k => HttpUtility.ParseQueryString(uri.Query)[k]!);

    public void Dispose() => http.Dispose();

    [GeneratedRegex("<form method=\"post\" action=\"(?<action>[^\"]*)\"[^>]*>(?<body>.*?)</form>", RegexOptions.Singleline)]
    private static partial Regex FormRegex();

    [GeneratedRegex("<input type=\"hidden\" name=\"(?<name>[^\"]*)\" value=\"(?<value>[^\"]*)\">")]
    private static partial Regex HiddenRegex();
}
