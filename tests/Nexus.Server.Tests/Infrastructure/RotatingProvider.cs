using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// An OAuth 2.0 provider on loopback that refreshes the strictest way: every refresh token is single-use, a new one
/// comes with every refresh, and presenting a used one revokes the whole grant ("family") at once, as RFC 9700
/// §4.14.2 recommends and as Nexus's own authorization server does. Everything about refreshing can be controlled:
/// the token lifetime, refresh responses without refresh_token (Google), failures (an HTTP status, a delay past
/// Nexus's timeout, a stopped server that refuses connections), rejection (invalid_grant), a "park" that holds
/// refresh requests before they are processed, so that a test can kill Nexus while they are in flight, and gates that
/// hold the answer of a code exchange or a refresh after its tokens were issued, so that a test can race it. Every
/// refresh is recorded with the chain of tokens it belongs to.
/// </summary>
public sealed class RotatingProvider : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, string> codes = new();
    private readonly ConcurrentDictionary<string, RefreshTokenRecord> refreshTokens = new();
    private readonly ConcurrentDictionary<string, AccessTokenRecord> accessTokens = new();
    private readonly int port;
    private WebApplication? app;
    private int inFlight;

    /// <summary>A grant: the chain of token pairs of one connection.</summary>
    public sealed class Family(string id)
    {
        public string Id { get; } = id;

        public ConcurrentQueue<Issued> Chain { get; } = new();

        private volatile bool revoked;

        public bool Revoked
        {
            get => revoked;
            set => revoked = value;
        }
    }

    /// <summary>One token response: when it was issued and when its access token expires (Unix ms).</summary>
    public sealed record Issued(string AccessToken, string? RefreshToken, long IssuedAt, long ExpiresAt);

    private sealed class RefreshTokenRecord(Family family, Issued issued)
    {
        public Family Family { get; } = family;

        public Issued Issued { get; } = issued;

        public int Used;
    }

    public sealed record AccessTokenRecord(Family Family, long ExpiresAt);

    /// <summary>What happened to one refresh request.</summary>
    public sealed record RefreshCall(long At, string? FamilyId, Issued? Presented, string Outcome);

    private RotatingProvider(int port)
    {
        this.port = port;
        BaseUrl = $"http://127.0.0.1:{port}";
    }

    public string BaseUrl { get; }

    public string ClientId { get; } = "rotating-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4));

    public string ClientSecret { get; } = "rotating-secret-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16));

    /// <summary>expires_in of every access token issued from now on.</summary>
    public int ExpiresIn { get; set; } = 3600;

    /// <summary>Refresh responses without refresh_token; the presented one stays valid (Google does this).</summary>
    public bool OmitRefreshToken { get; set; }

    /// <summary>When set, refresh requests are answered with this HTTP status (500, 429, …) and change nothing.</summary>
    public int? FailWithStatus { get; set; }

    /// <summary>Retry-After sent with <see cref="FailWithStatus"/>.</summary>
    public int? RetryAfterSeconds { get; set; }

    /// <summary>When set, refresh requests answer 400 with this error code and change nothing (the grant stays intact).</summary>
    public string? RejectWith { get; set; }

    /// <summary>Whether the code exchange returns a refresh token (false: like Google on a repeated consent).</summary>
    public bool RefreshTokenOnConsent { get; set; } = true;

    /// <summary>
    /// How long a refresh request waits before it is processed (lowering it releases waiting requests). A request whose
    /// client goes away meanwhile is dropped unprocessed.
    /// </summary>
    public TimeSpan RefreshDelay { get; set; }

    /// <summary>
    /// When set, code exchanges issue their tokens into this grant instead of a new one: the same person consenting to
    /// the same client again, at a provider that keeps one grant per person and client (Google).
    /// </summary>
    public Family? ConsentFamily { get; set; }

    /// <summary>When set, a code exchange's answer waits here after its tokens were issued (the provider's answer is in flight).</summary>
    public Gate? CodeExchangeGate { get; set; }

    /// <summary>When set, a code exchange is refused with this error (RFC 6749 §5.2, 400), after <see cref="CodeExchangeGate"/>.</summary>
    public string? CodeExchangeError { get; set; }

    /// <summary>When set, a code exchange answers 200 with the start of a JSON body and then sends nothing more until Nexus gives up.</summary>
    public bool StallCodeExchangeBody { get; set; }

    /// <summary>When set, a refresh answers 200 with the start of a JSON body (after issuing its tokens) and then sends nothing more until Nexus gives up.</summary>
    public bool StallRefreshBody { get; set; }

    /// <summary>When set, a refresh's answer waits here after its tokens were issued (rotated: the presented refresh token is used up).</summary>
    public Gate? RefreshGate { get; set; }

    public ConcurrentQueue<RefreshCall> RefreshCalls { get; } = new();

    public ConcurrentDictionary<string, Family> Families { get; } = new();

    /// <summary>Refresh tokens presented a second time (each one revoked its family).</summary>
    public int Reuses => RefreshCalls.Count(c => c.Outcome == "reused");

    /// <summary>Refreshes that issued new tokens.</summary>
    public int Rotations => RefreshCalls.Count(c => c.Outcome == "rotated");

    /// <summary>Refresh requests received and not answered yet.</summary>
    public int InFlight => Volatile.Read(ref inFlight);

    // Pulsed when a refresh request arrives, ends or is recorded: what WaitUntilAsync waits on.
    private readonly ChangeSignal changes = new();

    /// <summary>Waits until <paramref name="condition"/> holds, looking again whenever a refresh request arrives, ends or is recorded.</summary>
    public Task WaitUntilAsync(Func<RotatingProvider, bool> condition, string what, TimeSpan? timeout = null) =>
        changes.WaitUntilAsync(() => condition(this), what, timeout,
            () => $"in flight {InFlight}, refresh calls: {string.Join(", ", RefreshCalls.Select(c => c.Outcome))}");

    private void Record(RefreshCall call)
    {
        RefreshCalls.Enqueue(call);
        changes.Pulse();
    }

    public ConcurrentQueue<string> Revocations { get; } = new();

    public string Url(string endpoint) => $"{BaseUrl}/{endpoint}";

    public static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public static async Task<RotatingProvider> StartAsync()
    {
        var provider = new RotatingProvider(LoopbackHost.FreePort());
        await provider.StartAgainAsync();
        return provider;
    }

    /// <summary>The family an access token belongs to, when this provider issued it.</summary>
    public AccessTokenRecord? Find(string accessToken) => accessTokens.GetValueOrDefault(accessToken);

    /// <summary>Whether an access token is one this provider would accept right now (issued, not expired, grant not revoked).</summary>
    public bool Accepts(string accessToken, long atMs) => accessTokens.TryGetValue(accessToken, out var record) && record.ExpiresAt > atMs && !record.Family.Revoked;

    /// <summary>The user revokes the app at the provider: the grant ends and refreshes answer invalid_grant.</summary>
    public void RevokeFamily(string accessToken) => Find(accessToken)!.Family.Revoked = true;

    /// <summary>Stops listening: connections are refused until <see cref="StartAgainAsync"/>.</summary>
    public async Task StopAsync()
    {
        if (app is { } running)
        {
            app = null;
            await running.StopAsync();
            await running.DisposeAsync();
        }
    }

    public async Task StartAgainAsync()
    {
        var (builder, _) = LoopbackHost.CreateBuilder(port);
        var started = builder.Build();
        started.MapGet("/authorize", Authorize);
        started.MapPost("/token", (Func<HttpContext, Task<IResult>>)TokenAsync);
        started.MapPost("/revoke", RevokeAsync);
        await started.StartAsync();
        app = started;
    }

    private IResult Authorize(HttpRequest request)
    {
        var q = request.Query;
        if (q["client_id"] != ClientId || q["response_type"] != "code")
        {
            return Results.BadRequest("unknown client");
        }

        var code = "code-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
        codes[code] = q["redirect_uri"].ToString();
        return Results.Redirect(QueryHelpers.AddQueryString(q["redirect_uri"].ToString(), new Dictionary<string, string?> { ["code"] = code, ["state"] = q["state"] }));
    }

    private async Task<IResult> TokenAsync(HttpContext context)
    {
        var form = await context.Request.ReadFormAsync();
        var header = context.Request.Headers.Authorization.ToString();
        var (id, secret) = header.StartsWith("Basic ", StringComparison.Ordinal)
            ? Split(Encoding.UTF8.GetString(Convert.FromBase64String(header[6..])))
            : (form["client_id"].ToString(), form["client_secret"].ToString());
        if (id != ClientId || secret != ClientSecret)
        {
            return Results.Json(new { error = "invalid_client" }, statusCode: 401);
        }

        if (form["grant_type"] == "authorization_code")
        {
            if (!codes.TryRemove(form["code"].ToString(), out var redirectUri) || redirectUri != form["redirect_uri"])
            {
                return Results.Json(new { error = "invalid_grant" }, statusCode: 400);
            }

            var family = ConsentFamily ?? new Family("fam-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(6)));
            Families[family.Id] = family;
            var tokens = Issue(family, withRefreshToken: RefreshTokenOnConsent);
            if (CodeExchangeGate is { } exchangeGate)
            {
                await exchangeGate.PassAsync(context.RequestAborted);
            }

            if (StallCodeExchangeBody)
            {
                return await StallAsync(context);
            }

            if (CodeExchangeError is { } refusal)
            {
                family.Revoked = true;
                return Results.Json(new { error = refusal }, statusCode: 400);
            }

            return tokens;
        }

        if (form["grant_type"] != "refresh_token")
        {
            return Results.Json(new { error = "unsupported_grant_type" }, statusCode: 400);
        }

        Interlocked.Increment(ref inFlight);
        changes.Pulse();
        try
        {
            if (RefreshDelay > TimeSpan.Zero)
            {
                try
                {
                    // Polled, so that setting RefreshDelay back to zero lets held requests go at once.
                    var arrived = Now;
                    while (Now - arrived < RefreshDelay.TotalMilliseconds)
                    {
                        await Task.Delay(20, context.RequestAborted);
                    }
                }
                catch (OperationCanceledException)
                {
                    // The client went away before the provider did anything: nothing was used or issued.
                    Record(new RefreshCall(Now, null, null, "abandoned"));
                    return Results.Empty;
                }
            }

            var answer = Refresh(form["refresh_token"].ToString());
            if (RefreshGate is { } refreshGate)
            {
                await refreshGate.PassAsync(context.RequestAborted);
            }

            if (StallRefreshBody)
            {
                return await StallAsync(context);
            }

            return answer;
        }
        finally
        {
            Interlocked.Decrement(ref inFlight);
            changes.Pulse();
        }
    }

    /// <summary>Answers 200 with the start of a JSON body, then sends nothing more until Nexus gives up.</summary>
    private static async Task<IResult> StallAsync(HttpContext context)
    {
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync("{\"access_token\":\"", context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
        try
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            // Nexus gave up: what the test is about.
        }

        return Results.Empty;
    }

    private IResult Refresh(string presented)
    {
        if (FailWithStatus is { } status)
        {
            Record(new RefreshCall(Now, null, null, $"failed:{status}"));
            return new StatusWithRetryAfter(status, RetryAfterSeconds);
        }

        if (!refreshTokens.TryGetValue(presented, out var record))
        {
            Record(new RefreshCall(Now, null, null, "unknown"));
            return Results.Json(new { error = "invalid_grant", error_description = "unknown refresh token" }, statusCode: 400);
        }

        var family = record.Family;
        if (RejectWith is { } rejection)
        {
            Record(new RefreshCall(Now, family.Id, record.Issued, "rejected"));
            return Results.Json(new { error = rejection, error_description = "Rejected by the test" }, statusCode: 400);
        }

        if (family.Revoked)
        {
            Record(new RefreshCall(Now, family.Id, record.Issued, "revoked"));
            return Results.Json(new { error = "invalid_grant", error_description = "grant revoked" }, statusCode: 400);
        }

        if (!OmitRefreshToken && Interlocked.Exchange(ref record.Used, 1) == 1)
        {
            // Reuse detection: two parties hold this token, so the whole grant is revoked.
            family.Revoked = true;
            Record(new RefreshCall(Now, family.Id, record.Issued, "reused"));
            return Results.Json(new { error = "invalid_grant", error_description = "refresh token reused; grant revoked" }, statusCode: 400);
        }

        Record(new RefreshCall(Now, family.Id, record.Issued, "rotated"));
        return Issue(family, withRefreshToken: !OmitRefreshToken);
    }

    private IResult Issue(Family family, bool withRefreshToken)
    {
        var now = Now;
        var access = "rot-at-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        var refresh = withRefreshToken ? "rot-rt-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16)) : null;
        var issued = new Issued(access, refresh, now, now + (ExpiresIn * 1000L));
        accessTokens[access] = new AccessTokenRecord(family, issued.ExpiresAt);
        if (refresh is not null)
        {
            refreshTokens[refresh] = new RefreshTokenRecord(family, issued);
        }

        family.Chain.Enqueue(issued);
        var body = new Dictionary<string, object> { ["access_token"] = access, ["token_type"] = "Bearer", ["expires_in"] = ExpiresIn };
        if (refresh is not null)
        {
            body["refresh_token"] = refresh;
        }

        return Results.Json(body);
    }

    private async Task<IResult> RevokeAsync(HttpRequest request)
    {
        var form = await request.ReadFormAsync();
        var token = form["token"].ToString();
        Revocations.Enqueue(token);
        if (refreshTokens.TryGetValue(token, out var record))
        {
            record.Family.Revoked = true;
        }
        else if (accessTokens.TryGetValue(token, out var access))
        {
            access.Family.Revoked = true;
        }

        return Results.Ok();
    }

    private static (string, string) Split(string pair)
    {
        var colon = pair.IndexOf(':', StringComparison.Ordinal);
        return (Uri.UnescapeDataString(pair[..colon]), Uri.UnescapeDataString(pair[(colon + 1)..]));
    }

    private sealed class StatusWithRetryAfter(int status, int? retryAfter) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = status;
            if (retryAfter is { } seconds)
            {
                httpContext.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            return Task.CompletedTask;
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
