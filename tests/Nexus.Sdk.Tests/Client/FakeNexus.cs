using System.Collections.Concurrent;
using System.Net;
using System.Text;

namespace Nexus.Sdk.Tests.Client;

/// <summary>
/// An HTTP transport standing in for Nexus (and, for handler tests, a provider) in the client's unit tests: each
/// request goes to <see cref="Respond"/>, and every request is recorded. The end-to-end scenario (Scenario/) runs
/// against a real Nexus.
/// </summary>
internal sealed class FakeNexus : HttpMessageHandler
{
    public const string ApiKey = "nxk_test_0123456789abcdef";

    public Func<HttpRequestMessage, Task<HttpResponseMessage>> Respond { get; set; } = _ => Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound));

    /// <summary>When set, answers instead of <see cref="Respond"/>, with the call's cancellation token (a Nexus that keeps a call waiting).</summary>
    public Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>>? RespondAsync { get; set; }

    public ConcurrentQueue<(HttpMethod Method, string Uri, string? ApiKey, string? Authorization)> Requests { get; } = new();

    public int Count(string pathPrefix) => Requests.Count(r => new Uri(r.Uri).AbsolutePath.StartsWith(pathPrefix, StringComparison.Ordinal));

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Requests.Enqueue((request.Method, request.RequestUri!.AbsoluteUri,
            request.Headers.TryGetValues("X-API-Key", out var key) ? key.Single() : null,
            request.Headers.TryGetValues("Authorization", out var auth) ? auth.Single() : null));
        return RespondAsync is { } respond ? respond(request, cancellationToken) : Respond(request);
    }

    public static HttpResponseMessage Json(string json, HttpStatusCode status = HttpStatusCode.OK, string mediaType = "application/json") =>
        new(status) { Content = new StringContent(json, Encoding.UTF8, mediaType) };

    public static HttpResponseMessage Problem(HttpStatusCode status, string code, string extra = "", TimeSpan? retryAfter = null)
    {
        var response = Json($$"""{"type":"about:blank","title":"t","detail":"d","code":"{{code}}"{{extra}}}""", status, "application/problem+json");
        if (retryAfter is { } after)
        {
            response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(after);
        }

        return response;
    }

    public static string Token(string type, string credentials, long? expiresAt, string strategyExtra = "") =>
        $$"""{"strategy":{"type":"{{type}}"{{strategyExtra}}},"credentials":{{{credentials}}},"expires_at":{{(expiresAt is null ? "null" : expiresAt.Value.ToString(System.Globalization.CultureInfo.InvariantCulture))}}}""";

    public static NexusClientOptions Options(TimeProvider? time = null) => new()
    {
        BaseUrl = new Uri("http://nexus.test"),
        ApiKey = ApiKey,
        TimeProvider = time ?? TimeProvider.System,
        RetryBaseDelay = TimeSpan.FromMilliseconds(1),
        MaxRetryDelay = TimeSpan.FromSeconds(2),
    };
}

/// <summary>A clock that moves only when told to.</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset now = start;

    public override DateTimeOffset GetUtcNow() => now;

    public void Advance(TimeSpan by) => now += by;
}
