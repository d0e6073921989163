// Usage: dotnet BareForwarder.dll --urls http://127.0.0.1:PORT --upstream http://127.0.0.1:UPSTREAM
// Forwards GET /{path} to {upstream}/{path}: the request's headers go up and the response's status, headers and body
// come back, less the connection-specific headers no proxy may forward (RFC 9110 §7.6.1). Nothing else: no
// authentication, no credential, no path checks, no timeouts. What any correct ASP.NET Core proxy pays on this machine.
using System.Net;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
var upstream = new Uri(builder.Configuration["upstream"] ?? throw new InvalidOperationException("--upstream is required"));
var app = builder.Build();
using var client = new HttpMessageInvoker(new SocketsHttpHandler
{
    AllowAutoRedirect = false,
    UseCookies = false,
    UseProxy = false,
    AutomaticDecompression = DecompressionMethods.None,
    ActivityHeadersPropagator = null,
});
var hopByHop = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
{
    "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host",
};

app.Run(async context =>
{
    using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(upstream, context.Request.Path.Value?.TrimStart('/'))) { Version = HttpVersion.Version11 };
    foreach (var (name, values) in context.Request.Headers)
    {
        if (!hopByHop.Contains(name))
        {
            request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
        }
    }

    using var response = await client.SendAsync(request, context.RequestAborted);
    context.Response.StatusCode = (int)response.StatusCode;
    foreach (var (name, values) in response.Headers.NonValidated)
    {
        if (!hopByHop.Contains(name))
        {
            context.Response.Headers[name] = values.ToString();
        }
    }

    foreach (var (name, values) in response.Content.Headers.NonValidated)
    {
        context.Response.Headers[name] = values.ToString();
    }

    await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted);
    await body.CopyToAsync(context.Response.Body, context.RequestAborted);
});
app.Run();
