using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Xml;
using System.Xml.Linq;
using Nexus.Sdk.Aws;
using Nexus.Server.Connections;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Bridge;

/// <summary>Temporary credentials STS issued for a role.</summary>
/// <param name="RefreshAt">When the cached credentials stop being handed out and a new AssumeRole is made.</param>
internal sealed record AssumedRole(AwsCredentials Credentials, DateTimeOffset Expiration, DateTimeOffset RefreshAt, string RoleArn)
{
    // The temporary secret never reaches a log through ToString() (AwsCredentials masks it too).
    public override string ToString() => $"AssumedRole {{ RoleArn = {RoleArn}, Expiration = {Expiration:O} }}";
}

/// <summary>Why no temporary credentials could be had, as the problem GET /v1/token and the Bridge answer.</summary>
internal sealed class AwsRoleException(int status, string code, string title, string detail) : Exception(title + " " + detail)
{
    public const string AssumeRoleFailed = "aws_assume_role_failed";

    public int Status { get; } = status;

    public string Code { get; } = code;

    public string Title { get; } = title;

    public string Detail { get; } = detail;

    public IResult ToProblem() => Problems.Create(Status, Code, Title, Detail);
}

/// <summary>
/// STS AssumeRole for aws_sigv4 connections that name a role: the stored long-lived keys sign an AssumeRole request
/// (SigV4, service "sts") and the temporary credentials it returns are what GET /v1/token hands out and the Bridge
/// signs with. They are cached in memory (never stored) per connection, role and stored keys until 5 minutes before
/// they expire; loads are single-flight, so concurrent reads of a cold or expiring entry share one STS call.
/// (<see cref="ShortLivedCache{TValue}"/> has one time-to-live for every entry; here each entry's lifetime is the
/// Expiration STS chose, so the same single-flight pattern is kept with a per-entry deadline.)
/// </summary>
internal sealed class AwsRoleCredentials
{
    /// <summary>How long before expiry cached credentials are replaced, so a caller always gets at least this much.</summary>
    public static readonly TimeSpan RefreshMargin = TimeSpan.FromMinutes(5);

    // The AssumeRole query API, version 2011-06-15 (STS API reference, "AssumeRole" and "Common parameters").
    private const string StsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/";
    private const int MaxEntries = 100_000;
    private const int MaxResponseBytes = 64 * 1024;
    private const int MaxMessageLength = 500;

    private readonly ConcurrentDictionary<string, Task<AssumedRole>> entries = new(StringComparer.Ordinal);
    private readonly IHttpClientFactory http;
    private readonly UpstreamPolicy policy;
    private readonly NexusOptions options;
    private readonly TimeProvider time;
    private readonly ILogger<AwsRoleCredentials> logger;

    public AwsRoleCredentials(IHttpClientFactory http, UpstreamPolicy policy, NexusOptions options, TimeProvider time, ILogger<AwsRoleCredentials> logger, ConnectionStore store)
    {
        this.http = http;
        this.policy = policy;
        this.options = options;
        this.time = time;
        this.logger = logger;
        // A deleted connection's temporary credentials are dropped at once rather than at their expiry.
        store.OnDeleted(Forget);
    }

    /// <summary>The role's temporary credentials, from the cache while they have more than <see cref="RefreshMargin"/> left.</summary>
    public Task<AssumedRole> GetAsync(string connectionId, AwsRole role, AwsCredentials longLived, CancellationToken ct) =>
        GetAsync(connectionId, CacheKey(role, longLived), role, longLived, ct);

    /// <summary>As <see cref="GetAsync(string, AwsRole, AwsCredentials, CancellationToken)"/>, with the <see cref="CacheKey"/> the caller computed once.</summary>
    public async Task<AssumedRole> GetAsync(string connectionId, string roleKey, AwsRole role, AwsCredentials longLived, CancellationToken ct)
    {
        var key = connectionId + "\n" + roleKey;
        while (true)
        {
            if (entries.TryGetValue(key, out var existing))
            {
                if (!existing.IsCompleted)
                {
                    return await existing.WaitAsync(ct);
                }

                if (existing.IsCompletedSuccessfully && time.GetUtcNow() < existing.Result.RefreshAt)
                {
                    return existing.Result;
                }
            }

            if (entries.Count >= MaxEntries)
            {
                // Bounded like the other per-instance caches; the next reads load again.
                entries.Clear();
                existing = null;
            }

            var source = new TaskCompletionSource<AssumedRole>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (existing is null ? !entries.TryAdd(key, source.Task) : !entries.TryUpdate(key, source.Task, existing))
            {
                // Another request installed a load first: go round and share it.
                continue;
            }

            // The shared call is not cancelled with one caller's request: other callers may be awaiting it.
            _ = LoadAsync(key, source, connectionId, role, longLived);
            return await source.Task.WaitAsync(ct);
        }
    }

    /// <summary>Drops every cached entry of a connection (deleted, or its credentials replaced).</summary>
    public void Forget(string connectionId)
    {
        var prefix = connectionId + "\n";
        foreach (var key in entries.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)))
        {
            entries.TryRemove(key, out _);
        }
    }

    /// <summary>
    /// The cache key within a connection: a SHA-256 of everything the credentials depend on (role, external id,
    /// duration, endpoint, signing region and the stored keys), so replaced keys or a changed role miss at once on
    /// every instance, and only a hash of the keys is kept. Computed once per decoded connection row
    /// (<see cref="DecodedCredentials"/>), not per request.
    /// </summary>
    public static string CacheKey(AwsRole role, AwsCredentials longLived)
    {
        var material = string.Join('\0', role.RoleArn, role.ExternalId ?? "", role.DurationSeconds.ToString(CultureInfo.InvariantCulture), role.StsEndpoint, role.SigningRegion,
            longLived.AccessKeyId, longLived.SecretAccessKey, longLived.SessionToken ?? "");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(material)));
    }

    private async Task LoadAsync(string key, TaskCompletionSource<AssumedRole> source, string connectionId, AwsRole role, AwsCredentials longLived)
    {
        try
        {
            source.SetResult(await AssumeRoleAsync(connectionId, role, longLived));
        }
        catch (Exception e)
        {
            // A failure is never cached: the next read asks STS again.
            entries.TryRemove(KeyValuePair.Create(key, source.Task));
            source.SetException(e is AwsRoleException ? e
                : new AwsRoleException(StatusCodes.Status502BadGateway, AwsRoleException.AssumeRoleFailed, "AWS STS did not issue credentials for the role.", "The AssumeRole call failed unexpectedly."));
            _ = source.Task.Exception; // observed: every awaiting caller rethrows it
            if (e is not AwsRoleException)
            {
                logger.LogError(e, "AssumeRole for connection {ConnectionId} failed unexpectedly.", connectionId);
            }
        }
    }

    private async Task<AssumedRole> AssumeRoleAsync(string connectionId, AwsRole role, AwsCredentials longLived)
    {
        // Checked at registration too; checked again because the insecure-upstream policy may have changed since.
        var endpointProblem = policy.Check(role.StsEndpoint);
        if (endpointProblem is not null || !Uri.TryCreate(role.StsEndpoint, UriKind.Absolute, out var endpoint))
        {
            throw Failed($"The STS endpoint '{role.StsEndpoint}' is not usable: it {endpointProblem ?? "must be an absolute URL."}");
        }

        // STS API reference, AssumeRole: the query API's parameters as a form body (POST keeps them out of URLs and logs).
        var parameters = new List<KeyValuePair<string, string>>
        {
            new("Action", "AssumeRole"),
            new("Version", "2011-06-15"),
            new("RoleArn", role.RoleArn),
            new("RoleSessionName", SessionName(connectionId)),
            new("DurationSeconds", role.DurationSeconds.ToString(CultureInfo.InvariantCulture)),
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
            throw new AwsRoleException(StatusCodes.Status504GatewayTimeout, "upstream_timeout", "AWS STS did not answer in time.",
                $"No AssumeRole response from {endpoint.Host} within {options.UpstreamTimeoutSeconds} s (Nexus:UpstreamTimeoutSeconds).");
        }
        catch (HttpRequestException e)
        {
            logger.LogWarning("AssumeRole at {Host} for {RoleArn} failed: {Error}", endpoint.Host, role.RoleArn, e.HttpRequestError);
            throw new AwsRoleException(StatusCodes.Status502BadGateway, "upstream_unreachable", "AWS STS could not be reached.", $"{endpoint.Host}: {e.HttpRequestError}.");
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
                var margin = TimeSpan.FromTicks(Math.Min(RefreshMargin.Ticks, Math.Max(0, (expiration - now).Ticks / 2)));
                return new AssumedRole(new AwsCredentials(keyId, secret, token), expiration, expiration - margin, role.RoleArn);
            }

            logger.LogWarning("AssumeRole at {Host} for {RoleArn} answered 200 without credentials.", endpoint.Host, role.RoleArn);
            throw Failed($"STS answered 200 but not with an AssumeRole result that has credentials ({endpoint.Host}).");
        }

        // The query API's error document: ErrorResponse/Error/{Type, Code, Message} (STS API reference, "Common errors").
        var error = document?.Root is { Name.LocalName: "ErrorResponse" } errorRoot ? errorRoot.Elements().FirstOrDefault(e => e.Name.LocalName == "Error") : null;
        var code = error?.Elements().FirstOrDefault(e => e.Name.LocalName == "Code")?.Value.Trim();
        var message = error?.Elements().FirstOrDefault(e => e.Name.LocalName == "Message")?.Value;
        logger.LogWarning("AssumeRole at {Host} for {RoleArn} refused: {Status} {Code}", endpoint.Host, role.RoleArn, status, code ?? "(no error document)");
        if (string.IsNullOrEmpty(code))
        {
            throw Failed($"STS answered {status} without an error document ({endpoint.Host}).");
        }

        throw Failed($"STS refused AssumeRole for {role.RoleArn}: {Clean(code, longLived)}{(string.IsNullOrWhiteSpace(message) ? "" : ": " + Clean(message, longLived))}");
    }

    private static AwsRoleException Failed(string detail) =>
        new(StatusCodes.Status502BadGateway, AwsRoleException.AssumeRoleFailed, "AWS STS did not issue credentials for the role.", detail);

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
