using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Xml;
using System.Xml.Linq;
using Nexus.Sdk.Aws;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Credentials;

/// <summary>Temporary credentials STS issued for a role.</summary>
/// <param name="RefreshAt">When the cached credentials stop being handed out and a new AssumeRole is made.</param>
internal sealed record AssumedRole(AwsCredentials Credentials, DateTimeOffset Expiration, DateTimeOffset RefreshAt, string RoleArn)
{
    // The temporary secret never reaches a log through ToString() (AwsCredentials masks it too).
    public override string ToString() => $"AssumedRole {{ RoleArn = {RoleArn}, Expiration = {Expiration:O} }}";
}

/// <summary>Why no temporary credentials could be had, as the problem GET /v1/token and the Bridge answer.</summary>
/// <param name="Transient">
/// STS may well answer the next call (a timeout, no connection, a 5xx, throttling): cached credentials that are still
/// valid keep being served, and STS is asked again only after a short pause. Otherwise the refusal is definite
/// (AccessDenied, InvalidClientTokenId, ExpiredToken, SignatureDoesNotMatch…) and the cached credentials are dropped.
/// </param>
/// <param name="RetryAfterSeconds">Sent as Retry-After (throttling).</param>
/// <param name="StsMessage">
/// STS's own words for a refusal ("User: arn:aws:iam::…:user/… is not authorized to perform: sts:AssumeRole…"). It
/// names the IAM user behind the stored keys, so it is logged and shown at capture to whoever just entered those
/// keys, and never put in the problem that token reads and the Bridge answer to an app or agent.
/// </param>
internal sealed class AwsRoleException(ProblemType type, string title, string detail, bool transient = false, int? retryAfterSeconds = null, string? stsMessage = null) : Exception(title + " " + detail)
{
    public ProblemType Type { get; } = type;

    public int Status => Type.Status;

    public string Code => Type.Code;

    public string Title { get; } = title;

    public string Detail { get; } = detail;

    public bool Transient { get; } = transient;

    public int? RetryAfterSeconds { get; } = retryAfterSeconds;

    public string? StsMessage { get; } = stsMessage;

    /// <summary>The same failure as a new exception, for a remembered failure thrown again to another caller.</summary>
    public AwsRoleException Again() => new(Type, Title, Detail, Transient, RetryAfterSeconds, StsMessage);

    public IResult ToProblem()
    {
        if (RetryAfterSeconds is not { } seconds)
        {
            return Problems.Create(Type, Detail, title: Title);
        }

        return new RetryAfterResult(seconds, Problems.Create(Type, Detail, new Dictionary<string, object?> { ["retry_after"] = seconds }, Title));
    }
}

/// <summary>
/// STS AssumeRole over the query API: the stored long-lived keys sign an AssumeRole request (SigV4, service "sts")
/// to the role's STS endpoint, and the answer's XML is read into <see cref="AssumedRole"/> or an
/// <see cref="AwsRoleException"/>. No caching: <see cref="AwsRoleCredentials"/> keeps what it returns.
/// </summary>
internal sealed class StsClient(IHttpClientFactory http, UpstreamPolicy policy, NexusOptions options, TimeProvider time, ILogger<StsClient> logger)
{
    /// <summary>The Retry-After given when STS throttles (it names none itself).</summary>
    public const int ThrottledRetryAfterSeconds = 5;

    // The AssumeRole query API, version 2011-06-15 (STS API reference, "AssumeRole" and "Common parameters").
    private const string StsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/";
    private const int MaxResponseBytes = 64 * 1024;
    private const int MaxMessageLength = 500;

    // STS's throttling codes (API reference "Common errors": Throttling; some SDKs also see these two).
    private static readonly HashSet<string> ThrottlingCodes = new(StringComparer.Ordinal) { "Throttling", "ThrottlingException", "RequestLimitExceeded" };

    /// <summary>
    /// One AssumeRole call signed with the stored long-lived keys: the temporary credentials, or an
    /// <see cref="AwsRoleException"/> that says whether the failure is transient.
    /// </summary>
    /// <param name="refreshMargin">How long before expiry the credentials are to be replaced (at most half their life): <see cref="AssumedRole.RefreshAt"/>.</param>
    public async Task<AssumedRole> AssumeRoleAsync(string connectionId, AwsRole role, AwsCredentials longLived, TimeSpan refreshMargin)
    {
        AwsRoleException Unusable(string problem)
        {
            logger.LogWarning("AssumeRole for {RoleArn} not made: the STS endpoint {Endpoint} {Problem}", role.RoleArn, role.StsEndpoint, problem);
            return Failed($"The STS endpoint '{role.StsEndpoint}' is not usable: it {problem}");
        }

        // Checked at registration too; checked again because the insecure-upstream policy may have changed since, and
        // a provider row may predate a check: the signed request must never go anywhere else than an STS root.
        if (!Uri.TryCreate(role.StsEndpoint, UriKind.Absolute, out var endpoint))
        {
            throw Unusable("must be an absolute URL.");
        }

        if ((policy.Check(role.StsEndpoint) ?? AwsRoleConfig.EndpointShapeProblem(endpoint)) is { } endpointProblem)
        {
            throw Unusable(endpointProblem);
        }

        // Role chaining: when the keys are themselves temporary, STS refuses a DurationSeconds above one hour
        // (AssumeRole, "DurationSeconds"), whatever the role's maximum session duration.
        var duration = longLived.SessionToken is null ? role.DurationSeconds : Math.Min(role.DurationSeconds, AwsRoleConfig.MaxChainedDurationSeconds);

        // STS API reference, AssumeRole: the query API's parameters as a form body (POST keeps them out of URLs and logs).
        var parameters = new List<KeyValuePair<string, string>>
        {
            new("Action", "AssumeRole"),
            new("Version", "2011-06-15"),
            new("RoleArn", role.RoleArn),
            new("RoleSessionName", SessionName(connectionId)),
            new("DurationSeconds", duration.ToString(CultureInfo.InvariantCulture)),
        };
        if (role.ExternalId is not null)
        {
            parameters.Add(new("ExternalId", role.ExternalId));
        }

        var body = Encoding.UTF8.GetBytes(string.Join('&', parameters.Select(p => Uri.EscapeDataString(p.Key) + "=" + Uri.EscapeDataString(p.Value))));
        using var request = new HttpRequestMessage(HttpMethod.Post, endpoint) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-www-form-urlencoded") { CharSet = "utf-8" };
        request.Headers.Accept.ParseAdd("text/xml");

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(options.UpstreamTimeoutSeconds), time);
        var now = time.GetUtcNow();
        string? text;
        int status;
        try
        {
            // Signed with the long-lived keys (and their session token, for keys that are themselves temporary), for
            // the region of the endpoint (AwsRole.SigningRegion): STS refuses any other.
            await SigV4Signer.SignAsync(request, longLived, role.SigningRegion, "sts", now, cancellationToken: timeout.Token);
            using var response = await http.CreateClient(UpstreamPolicy.HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            status = (int)response.StatusCode;
            text = await response.Content.ReadLimitedAsync(MaxResponseBytes, timeout.Token);
        }
        catch (OperationCanceledException)
        {
            logger.LogWarning("AssumeRole at {Host} for {RoleArn} timed out.", endpoint.Host, role.RoleArn);
            throw new AwsRoleException(ProblemCatalog.UpstreamTimeout, "AWS STS did not answer in time.",
                $"No AssumeRole response from {endpoint.Host} within {options.UpstreamTimeoutSeconds} s (Nexus:UpstreamTimeoutSeconds).", transient: true);
        }
        catch (HttpRequestException e)
        {
            logger.LogWarning("AssumeRole at {Host} for {RoleArn} failed: {Error}", endpoint.Host, role.RoleArn, e.HttpRequestError);
            throw new AwsRoleException(ProblemCatalog.UpstreamUnreachable, "AWS STS could not be reached.", $"{endpoint.Host}: {e.HttpRequestError}.", transient: true);
        }

        var document = text is null ? null : TryParse(text);
        if (status == 200)
        {
            var credentials = document?.Root is { Name.LocalName: "AssumeRoleResponse" } root
                ? root.Element(XName.Get("AssumeRoleResult", StsNamespace))?.Element(XName.Get("Credentials", StsNamespace))
                : null;
            string? Field(string name) => credentials?.Element(XName.Get(name, StsNamespace))?.Value.Trim() is { Length: > 0 } v ? v : null;
            if (Field("AccessKeyId") is { } keyId && Field("SecretAccessKey") is { } secret && Field("SessionToken") is { } token
                && DateTimeOffset.TryParse(Field("Expiration"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var expiration))
            {
                // Hand the credentials out until RefreshMargin before expiry, or half their life if that is shorter.
                var margin = TimeSpan.FromTicks(Math.Min(refreshMargin.Ticks, Math.Max(0, (expiration - now).Ticks / 2)));
                return new AssumedRole(new AwsCredentials(keyId, secret, token), expiration, expiration - margin, role.RoleArn);
            }

            logger.LogWarning("AssumeRole at {Host} for {RoleArn} answered 200 without credentials.", endpoint.Host, role.RoleArn);
            throw Failed($"STS answered 200 but not with an AssumeRole result that has credentials ({endpoint.Host}).");
        }

        // The query API's error document: ErrorResponse/Error/{Type, Code, Message} (STS API reference, "Common errors").
        var error = document?.Root is { Name.LocalName: "ErrorResponse" } errorRoot ? errorRoot.Elements().FirstOrDefault(e => e.Name.LocalName == "Error") : null;
        var code = error?.Elements().FirstOrDefault(e => e.Name.LocalName == "Code")?.Value.Trim();
        var message = error?.Elements().FirstOrDefault(e => e.Name.LocalName == "Message")?.Value;
        var stsMessage = string.IsNullOrWhiteSpace(message) ? null : Clean(message, longLived);
        logger.LogWarning("AssumeRole at {Host} for {RoleArn} refused: {Status} {Code} {StsMessage}", endpoint.Host, role.RoleArn, status, code ?? "(no error document)", stsMessage);
        if (status == StatusCodes.Status429TooManyRequests || (code is not null && ThrottlingCodes.Contains(code)))
        {
            const int seconds = ThrottledRetryAfterSeconds;
            throw new AwsRoleException(ProblemCatalog.AwsStsThrottled, "AWS STS is throttling AssumeRole calls.",
                $"STS answered {status} {(code is null ? "" : Clean(code, longLived) + " ")}({endpoint.Host}); try again in {seconds} s.", transient: true, retryAfterSeconds: seconds);
        }

        // STS's own trouble (5xx, with or without an error document) may be over by the next call; any other
        // answer (AccessDenied, InvalidClientTokenId, ExpiredToken, SignatureDoesNotMatch, ValidationError…) is a refusal.
        var transient = status >= 500;
        if (string.IsNullOrEmpty(code))
        {
            throw Failed($"STS answered {status} without an error document ({endpoint.Host}).", transient);
        }

        throw Failed($"STS refused AssumeRole for {role.RoleArn}: {Clean(code, longLived)}.", transient, stsMessage);
    }

    public static AwsRoleException Failed(string detail, bool transient = false, string? stsMessage = null) =>
        new(ProblemCatalog.AwsAssumeRoleFailed, "AWS STS did not issue credentials for the role.", detail, transient, stsMessage: stsMessage);

    /// <summary>
    /// RoleSessionName: 2 to 64 characters of [\w+=,.@-] (AssumeRole). It names the connection in CloudTrail, so the
    /// role's owner can see which Nexus connection used the role.
    /// </summary>
    public static string SessionName(string connectionId)
    {
        var name = new StringBuilder("nexus-", 64);
        foreach (var c in connectionId)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || "_+=,.@-".Contains(c, StringComparison.Ordinal) ? c : '-');
        }

        return name.Length > 64 ? name.ToString(0, 64) : name.ToString();
    }

    /// <summary>STS messages hold no secrets, but one that echoed our keys would put them in a response: they are masked, and length and control characters bounded.</summary>
    private static string Clean(string text, AwsCredentials keys)
    {
        foreach (var value in new[] { keys.SecretAccessKey, keys.SessionToken, keys.AccessKeyId })
        {
            if (!string.IsNullOrEmpty(value))
            {
                text = text.Replace(value, "…", StringComparison.Ordinal);
            }
        }

        var cleaned = new string(text.Select(c => char.IsControl(c) ? ' ' : c).ToArray()).Trim();
        return cleaned.Length > MaxMessageLength ? cleaned[..MaxMessageLength] + "…" : cleaned;
    }

    private static XDocument? TryParse(string text)
    {
        try
        {
            // No DTDs and no external resources: the document comes from the network.
            using var reader = XmlReader.Create(new StringReader(text), new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null });
            return XDocument.Load(reader);
        }
        catch (XmlException)
        {
            return null;
        }
    }
}
