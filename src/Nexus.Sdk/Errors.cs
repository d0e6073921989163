using System.Net;
using System.Text.Json;

namespace Nexus.Sdk;

/// <summary>
/// An error answer from Nexus (an RFC 9457 problem with a <c>code</c>). Subclasses name the cases an application
/// handles differently. Messages carry Nexus's title and detail, which never hold a secret; the API key, tokens and
/// credentials are never part of a message or <see cref="object.ToString"/>.
/// </summary>
public class NexusException : Exception
{
    /// <summary>Creates an error.</summary>
    public NexusException(string message, HttpStatusCode? statusCode = null, string? code = null, string? connectionId = null, Exception? inner = null)
        : base(message, inner)
    {
        StatusCode = statusCode;
        Code = code;
        ConnectionId = connectionId;
    }

    /// <summary>Creates an error.</summary>
    public NexusException()
        : this("Nexus answered with an error.")
    {
    }

    /// <summary>Creates an error.</summary>
    public NexusException(string message)
        : this(message, statusCode: null)
    {
    }

    /// <summary>Creates an error.</summary>
    public NexusException(string message, Exception inner)
        : this(message, null, null, null, inner)
    {
    }

    /// <summary>The HTTP status Nexus answered with, when there was an answer.</summary>
    public HttpStatusCode? StatusCode { get; }

    /// <summary>
    /// Nexus's error code (<c>connection_not_active</c>, <c>refresh_not_supported</c>, …): the problem's <c>code</c>,
    /// else what its <c>type</c> names after <c>urn:nexus:problem:</c> (as in the Go, TypeScript and Python SDKs);
    /// null when the answer has neither (a proxy's error page).
    /// </summary>
    public string? Code { get; }

    /// <summary>The connection the call was about, when it was about one.</summary>
    public string? ConnectionId { get; }

    /// <summary>
    /// Nexus's whole problem document (RFC 9457 and the members a code adds: <c>auth_url</c>, <c>scopes</c> and
    /// <c>connection_id</c> of a 403 <c>insufficient_scope</c> step-up, <c>errors</c> of a 400 <c>validation_failed</c>,
    /// <c>rounds</c> of <c>step_up_limit</c>), or null when the answer was not a JSON object.
    /// </summary>
    public JsonElement? Problem { get; internal set; }

    /// <summary>The problem's <c>auth_url</c> (a step-up: where the person approves the wider scopes), or null.</summary>
    public Uri? AuthUrl =>
        Problem is { ValueKind: JsonValueKind.Object } p && p.TryGetProperty("auth_url", out var url) && url.ValueKind == JsonValueKind.String
        && Uri.TryCreate(url.GetString(), UriKind.Absolute, out var uri) ? uri : null;

    /// <summary>The <c>errors</c> of a 400 <c>validation_failed</c>: the messages for each invalid field; empty otherwise.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> ValidationErrors
    {
        get
        {
            var errors = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
            if (Problem is { ValueKind: JsonValueKind.Object } p && p.TryGetProperty("errors", out var members) && members.ValueKind == JsonValueKind.Object)
            {
                foreach (var member in members.EnumerateObject())
                {
                    errors[member.Name] = member.Value.ValueKind == JsonValueKind.Array
                        ? member.Value.EnumerateArray().Where(m => m.ValueKind == JsonValueKind.String).Select(m => m.GetString()!).ToArray()
                        : member.Value.ValueKind == JsonValueKind.String ? [member.Value.GetString()!] : [];
                }
            }

            return errors;
        }
    }
}

/// <summary>
/// The connection is not active: <see cref="Status"/> is <c>pending</c> (consent not completed yet) or <c>failed</c>,
/// or <c>attention_required</c>, and then it is the subclass <see cref="NexusAttentionRequiredException"/>. Also 409
/// <c>connection_failed</c> (<see cref="NexusException.Code"/>): credentials were submitted to a connection that has
/// failed; <see cref="Status"/> is <c>failed</c>, the connection the call's.
/// </summary>
public class NexusConnectionNotActiveException : NexusException
{
    /// <summary>Creates the error.</summary>
    public NexusConnectionNotActiveException(string? connectionId, string status, string? reason, string message)
        : this(connectionId, status, reason, message, "connection_not_active")
    {
    }

    /// <summary>Creates the error with Nexus's <paramref name="code"/> (<c>connection_not_active</c> or <c>connection_failed</c>).</summary>
    public NexusConnectionNotActiveException(string? connectionId, string status, string? reason, string message, string code)
        : base(message, HttpStatusCode.Conflict, code, connectionId)
    {
        Status = status;
        Reason = reason;
    }

    /// <summary>The connection's status (<c>pending</c>, <c>failed</c>, <c>attention_required</c>).</summary>
    public string Status { get; }

    /// <summary>Why: for a failed connection, the provider's error or <c>expired</c>; for one that needs attention, <c>invalid_grant</c>, <c>token_expired</c>, ….</summary>
    public string? Reason { get; }
}

/// <summary>
/// The connection needs the user: the provider rejected the refresh (<see cref="NexusConnectionNotActiveException.Reason"/>
/// <c>invalid_grant</c>, or the provider's code) or the token expired without a refresh token (<c>token_expired</c>).
/// Send the user through consent again (<see cref="NexusClient.RequestConnectionAsync"/>). Never retried. A kind of
/// <see cref="NexusConnectionNotActiveException"/> (<see cref="NexusConnectionNotActiveException.Status"/>
/// <c>attention_required</c>), as in the Go and Python SDKs: catch it first.
/// </summary>
public sealed class NexusAttentionRequiredException : NexusConnectionNotActiveException
{
    /// <summary>Creates the error.</summary>
    public NexusAttentionRequiredException(string connectionId, string? reason, string message)
        : base(connectionId, ConnectionStatuses.AttentionRequired, reason, message, "connection_not_active")
    {
    }

    /// <summary>The connection that needs attention.</summary>
    public new string ConnectionId => base.ConnectionId!;
}

/// <summary>404: no such connection (or provider) in the API key's workspaces; also after it was deleted.</summary>
public sealed class NexusNotFoundException(string message, string? code = null, string? connectionId = null)
    : NexusException(message, HttpStatusCode.NotFound, code, connectionId);

/// <summary>403: the API key may not do this (e.g. <c>credentials_not_readable</c>: a Bridge-only key, or <c>workspace_not_allowed</c>).</summary>
public sealed class NexusForbiddenException(string message, string? code = null, string? connectionId = null)
    : NexusException(message, HttpStatusCode.Forbidden, code, connectionId);

/// <summary>401: Nexus did not accept the API key.</summary>
public sealed class NexusUnauthorizedException(string message, string? code = null)
    : NexusException(message, HttpStatusCode.Unauthorized, code);

/// <summary>A transient refusal: try again after <see cref="RetryAfter"/>. Idempotent calls were already retried with backoff.</summary>
public abstract class NexusRetryableException(string message, HttpStatusCode statusCode, string? code, string? connectionId, TimeSpan? retryAfter)
    : NexusException(message, statusCode, code, connectionId)
{
    /// <summary>The server's <c>Retry-After</c>, when it sent one.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>429: Nexus asks this caller to slow down. (503 <c>aws_sts_throttled</c> is a <see cref="NexusUnavailableException"/>: AWS STS throttles Nexus, not this caller.)</summary>
public sealed class NexusRateLimitedException(string message, string? code, string? connectionId, TimeSpan? retryAfter)
    : NexusRetryableException(message, HttpStatusCode.TooManyRequests, code, connectionId, retryAfter);

/// <summary>
/// 502, 503 or 504: Nexus or the provider behind it is unavailable for now (e.g. 503 <c>refresh_unavailable</c>: the
/// token expired while the provider is unreachable; the connection is still active; 503 <c>aws_sts_throttled</c>: AWS
/// STS is throttling Nexus's AssumeRole calls).
/// </summary>
public sealed class NexusUnavailableException(string message, HttpStatusCode statusCode, string? code, string? connectionId, TimeSpan? retryAfter)
    : NexusRetryableException(message, statusCode, code, connectionId, retryAfter);
