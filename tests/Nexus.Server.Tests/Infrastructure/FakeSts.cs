using System.Collections.Concurrent;
using System.Globalization;
using System.Security;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace Nexus.Server.Tests.Infrastructure;

/// <summary>
/// AWS STS on loopback, for AssumeRole only. Like the real service it checks each request's SigV4 signature (with
/// <see cref="SigV4Check"/>, independently of Nexus's signer) against the secret of the access key it names and answers
/// the query API's XML: an AssumeRoleResponse with fresh temporary credentials, or an ErrorResponse
/// (SignatureDoesNotMatch, InvalidClientTokenId, AccessDenied, ValidationError) with STS's own messages. It knows a set
/// of principals (access key → secret, optional session token, roles it may assume, required external id), issues
/// credentials for a settable duration on a settable clock, counts calls, and can be told to fail (AccessDenied, a
/// 500 without an error document, a 200 that is not XML, Throttling, or no answer at all). As STS does, it refuses a
/// signature scoped to another region than its own (<see cref="Region"/>) and, for callers signing with a session
/// token (role chaining), a DurationSeconds above 3600.
/// </summary>
public sealed partial class FakeSts : IAsyncDisposable
{
    public const string Namespace = "https://sts.amazonaws.com/doc/2011-06-15/";

    private readonly WebApplication app;
    private int calls;

    private FakeSts(WebApplication app, string baseUrl)
    {
        this.app = app;
        BaseUrl = baseUrl;
    }

    public enum Failure
    {
        None,
        AccessDenied,
        ServerError,
        NotXml,
        Hang,

        /// <summary>400 Throttling ("Rate exceeded"), as STS answers a caller over its request rate.</summary>
        Throttling,
    }

    public sealed record Principal(string Secret, string? SessionToken, IReadOnlySet<string> Roles, string? ExternalId);

    /// <summary>One AssumeRole request as received: its form fields and who signed it.</summary>
    public sealed record StsCall(string? AccessKeyId, string? Region, string? Service, IReadOnlyDictionary<string, string> Form, string? SecurityToken, string Outcome);

    public sealed record Issued(string AccessKeyId, string SecretAccessKey, string SessionToken, DateTimeOffset Expiration, string RoleArn, string SessionName);

    public string BaseUrl { get; }

    public ConcurrentDictionary<string, Principal> Principals { get; } = new(StringComparer.Ordinal);

    public ConcurrentQueue<StsCall> Calls { get; } = new();

    public ConcurrentQueue<Issued> IssuedCredentials { get; } = new();

    /// <summary>Every request that reached the fake, answered or not.</summary>
    public int CallCount => Volatile.Read(ref calls);

    /// <summary>The lifetime of issued credentials; null honours the request's DurationSeconds.</summary>
    public int? IssuedDurationSeconds { get; set; }

    /// <summary>The clock Expiration is computed from (a test passes the Nexus server's, so that moving it moves both).</summary>
    public Func<DateTimeOffset> Clock { get; set; } = () => DateTimeOffset.UtcNow;

    /// <summary>How long a successful answer is held back (so that concurrent callers surely overlap).</summary>
    public TimeSpan Delay { get; set; }

    public Failure FailWith { get; set; }

    /// <summary>
    /// The region requests must be signed for. Real STS checks the credential scope's region against the endpoint it
    /// serves and answers SignatureDoesNotMatch otherwise; the fake has no region of its own, so a test says which.
    /// </summary>
    public string Region { get; set; } = "us-east-1";

    public Issued LastIssued => IssuedCredentials.Last();

    /// <summary>Lets <paramref name="accessKeyId"/> assume <paramref name="roleArn"/> (in addition to roles it already may).</summary>
    public void Allow(string accessKeyId, string secret, string roleArn, string? externalId = null, string? sessionToken = null) =>
        Principals.AddOrUpdate(accessKeyId, _ => new Principal(secret, sessionToken, new HashSet<string>(StringComparer.Ordinal) { roleArn }, externalId),
            (_, p) => p with { Roles = new HashSet<string>(p.Roles.Append(roleArn), StringComparer.Ordinal), ExternalId = externalId ?? p.ExternalId });

    public static async Task<FakeSts> StartAsync()
    {
        var (builder, baseUrl) = LoopbackHost.CreateBuilder();
        var app = builder.Build();
        var sts = new FakeSts(app, baseUrl);
        app.MapPost("/", sts.HandleAsync);
        await app.StartAsync();
        return sts;
    }

    private async Task HandleAsync(HttpContext context)
    {
        Interlocked.Increment(ref calls);
        var request = context.Request;
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, context.RequestAborted);
        var body = buffer.ToArray();
        var form = QueryHelpers.ParseQuery(Encoding.UTF8.GetString(body)).ToDictionary(f => f.Key, f => f.Value.ToString(), StringComparer.Ordinal);
        var headers = request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
        var auth = SigV4Check.Parse(headers.GetValueOrDefault("Authorization"));
        var token = headers.GetValueOrDefault("X-Amz-Security-Token");

        async Task Answer(string outcome, int status, string code, string message, string type = "Sender")
        {
            Calls.Enqueue(new StsCall(auth?.AccessKeyId, auth?.Region, auth?.Service, form, token, outcome));
            context.Response.StatusCode = status;
            context.Response.ContentType = "text/xml";
            await context.Response.WriteAsync($"""
                <ErrorResponse xmlns="{Namespace}">
                  <Error>
                    <Type>{type}</Type>
                    <Code>{code}</Code>
                    <Message>{SecurityElement.Escape(message)}</Message>
                  </Error>
                  <RequestId>{Guid.NewGuid()}</RequestId>
                </ErrorResponse>
                """);
        }

        switch (FailWith)
        {
            case Failure.Hang:
                Calls.Enqueue(new StsCall(auth?.AccessKeyId, auth?.Region, auth?.Service, form, token, "hang"));
                await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                return;
            case Failure.ServerError:
                Calls.Enqueue(new StsCall(auth?.AccessKeyId, auth?.Region, auth?.Service, form, token, "500"));
                context.Response.StatusCode = 500;
                await context.Response.WriteAsync("upstream connect error or disconnect/reset before headers");
                return;
            case Failure.NotXml:
                Calls.Enqueue(new StsCall(auth?.AccessKeyId, auth?.Region, auth?.Service, form, token, "not xml"));
                context.Response.ContentType = "text/html";
                await context.Response.WriteAsync("<html><body>Service Unavailable");
                return;
            case Failure.Throttling:
                await Answer("throttled", 400, "Throttling", "Rate exceeded");
                return;
        }

        // Authentication first, as STS does: who signed, and is the signature theirs?
        if (auth is null)
        {
            await Answer("unsigned", 403, "MissingAuthenticationToken", "Request is missing Authentication Token");
            return;
        }

        if (!Principals.TryGetValue(auth.AccessKeyId, out var principal))
        {
            await Answer("unknown key", 403, "InvalidClientTokenId", "The security token included in the request is invalid.");
            return;
        }

        if (auth.Service != "sts")
        {
            await Answer("wrong service", 403, "SignatureDoesNotMatch", $"Credential should be scoped to correct service: 'sts'. ");
            return;
        }

        if (auth.Region != Region)
        {
            await Answer("wrong region", 403, "SignatureDoesNotMatch", $"Credential should be scoped to a valid region, not '{auth.Region}'. ");
            return;
        }

        var bodyHash = Convert.ToHexStringLower(SHA256.HashData(body));
        if (SigV4Check.Verify(request.Method, request.Path.Value ?? "/", request.QueryString.Value ?? "", headers, bodyHash, principal.Secret) is not null)
        {
            await Answer("bad signature", 403, "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.");
            return;
        }

        if (principal.SessionToken is not null && (token is null || !FixedTimeEquals(token, principal.SessionToken)))
        {
            await Answer("bad session token", 403, "InvalidClientTokenId", "The security token included in the request is invalid.");
            return;
        }

        if (form.GetValueOrDefault("Action") != "AssumeRole" || form.GetValueOrDefault("Version") != "2011-06-15")
        {
            await Answer("bad action", 400, "InvalidAction", "Could not find operation " + form.GetValueOrDefault("Action") + " for version " + form.GetValueOrDefault("Version"));
            return;
        }

        var roleArn = form.GetValueOrDefault("RoleArn") ?? "";
        var sessionName = form.GetValueOrDefault("RoleSessionName") ?? "";
        if (!SessionNamePattern().IsMatch(sessionName))
        {
            await Answer("bad session name", 400, "ValidationError", $"1 validation error detected: Value '{sessionName}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*");
            return;
        }

        if (!int.TryParse(form.GetValueOrDefault("DurationSeconds") ?? "3600", NumberStyles.None, CultureInfo.InvariantCulture, out var duration) || duration is < 900 or > 43200)
        {
            await Answer("bad duration", 400, "ValidationError", "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200");
            return;
        }

        // Role chaining: a caller whose own credentials are temporary gets at most one hour (STS AssumeRole, DurationSeconds).
        if (token is not null && duration > 3600)
        {
            await Answer("chained duration", 400, "ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.");
            return;
        }

        var externalIdOk = principal.ExternalId is null || (form.GetValueOrDefault("ExternalId") is { } sent && FixedTimeEquals(sent, principal.ExternalId));
        if (FailWith == Failure.AccessDenied || !principal.Roles.Contains(roleArn) || !externalIdOk)
        {
            await Answer("access denied", 403, "AccessDenied",
                $"User: arn:aws:iam::123456789012:user/nexus-broker is not authorized to perform: sts:AssumeRole on resource: {roleArn}");
            return;
        }

        if (Delay > TimeSpan.Zero)
        {
            await Task.Delay(Delay, context.RequestAborted);
        }

        var issued = new Issued("ASIA" + RandomText("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16), RandomText("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+", 40),
            "IQoJb3JpZ2luX2Vj" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(180)), Clock() + TimeSpan.FromSeconds(IssuedDurationSeconds ?? duration), roleArn, sessionName);
        IssuedCredentials.Enqueue(issued);
        Calls.Enqueue(new StsCall(auth.AccessKeyId, auth.Region, auth.Service, form, token, "issued"));
        context.Response.ContentType = "text/xml";
        await context.Response.WriteAsync($"""
            <AssumeRoleResponse xmlns="{Namespace}">
              <AssumeRoleResult>
                <SourceIdentity>nexus</SourceIdentity>
                <AssumedRoleUser>
                  <Arn>{SecurityElement.Escape(roleArn.Replace(":iam::", ":sts::", StringComparison.Ordinal).Replace(":role/", ":assumed-role/", StringComparison.Ordinal))}/{sessionName}</Arn>
                  <AssumedRoleId>AROA3XFRBF535PLBIFPI4:{sessionName}</AssumedRoleId>
                </AssumedRoleUser>
                <Credentials>
                  <SessionToken>{issued.SessionToken}</SessionToken>
                  <SecretAccessKey>{SecurityElement.Escape(issued.SecretAccessKey)}</SecretAccessKey>
                  <Expiration>{issued.Expiration.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)}</Expiration>
                  <AccessKeyId>{issued.AccessKeyId}</AccessKeyId>
                </Credentials>
                <PackedPolicySize>6</PackedPolicySize>
              </AssumeRoleResult>
              <ResponseMetadata>
                <RequestId>{Guid.NewGuid()}</RequestId>
              </ResponseMetadata>
            </AssumeRoleResponse>
            """);
    }

    private static bool FixedTimeEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(a)), SHA256.HashData(Encoding.UTF8.GetBytes(b)));

    private static string RandomText(string alphabet, int length) =>
        string.Create(length, alphabet, (span, chars) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = chars[RandomNumberGenerator.GetInt32(chars.Length)];
            }
        });

    // AssumeRole RoleSessionName: 2 to 64 characters of [\w+=,.@-].
    [GeneratedRegex(@"^[A-Za-z0-9_+=,.@\-]{2,64}$")]
    private static partial Regex SessionNamePattern();

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
