// Usage: dotnet BareForwarder.dll --urls http://127.0.0.1:PORT --upstream http://127.0.0.1:UPSTREAM
// Forwards GET /{path} to {upstream}/{path} and copies status, headers and body back.
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

app.Run(async context =>
{
    using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(upstream, context.Request.Path.Value?.TrimStart('/'))) { Version = HttpVersion.Version11 };
    using var response = await client.SendAsync(request, context.RequestAborted);
    context.Response.StatusCode = (int)response.StatusCode;
    foreach (var (name, values) in response.Content.Headers.NonValidated)
    {
        context.Response.Headers[name] = values.ToString();
    }

    await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted);
    await body.CopyToAsync(context.Response.Body, context.RequestAborted);
});
app.Run();
