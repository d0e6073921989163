using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Nexus.Server.Hosting;

/// <summary>
/// RFC 9457 problem details with a stable machine-readable <c>code</c>. The <c>type</c> is a URN built from the
/// code so that clients can switch on either. Every code, its status and its default title come from
/// <see cref="ProblemCatalog"/>.
/// </summary>
internal static class Problems
{
    /// <param name="type">The catalog entry: code, status and default title.</param>
    /// <param name="detail">This occurrence: what to change.</param>
    /// <param name="title">A more precise title than the catalog's default (the resource not found, the reason refused).</param>
    /// <param name="status">Only where the entry's status is carried from elsewhere (a BadHttpRequestException's 413, an STS failure's 5xx).</param>
    public static IResult Create(ProblemType type, string? detail = null, IDictionary<string, object?>? extensions = null, string? title = null, int? status = null) =>
        Create(status ?? type.Status, type.Code, title ?? type.Title, detail, extensions);

    private static IResult Create(int status, string code, string title, string? detail, IDictionary<string, object?>? extensions)
    {
        // One member per name: a problem whose extensions carry a "status" of their own (the 409
        // connection_not_active's connection status, a seed contract) leaves RFC 9457's numeric "status" out. The
        // member is advisory (RFC 9457 section 3.1.2: the HTTP status line is what counts), and a document with
        // "status" twice is not parsed alike by any two JSON readers.
        if (extensions is not null && extensions.ContainsKey("status"))
        {
            var members = new Dictionary<string, object?>
            {
                ["type"] = "urn:nexus:problem:" + code,
                ["title"] = title,
            };
            if (detail is not null)
            {
                members["detail"] = detail;
            }

            members["code"] = code;
            foreach (var (key, value) in extensions)
            {
                members[key] = value;
            }

            return new StatuslessProblem(status, members);
        }

        return Problem(status, code, title, detail, extensions);
    }

    /// <summary>
    /// The problem of <paramref name="type"/> as a typed result, for a handler that declares its answers
    /// (<c>Results&lt;Ok&lt;T&gt;, ProblemHttpResult&gt;</c>). Its extensions must not carry a "status" (see <see cref="Create(int, string, string, string?, IDictionary{string, object?}?)"/>).
    /// </summary>
    public static ProblemHttpResult Typed(ProblemType type, string? detail = null, IDictionary<string, object?>? extensions = null, string? title = null, int? status = null) =>
        extensions is not null && extensions.ContainsKey("status")
            ? throw new ArgumentException("A problem with a \"status\" extension is written by Create.", nameof(extensions))
            : Problem(status ?? type.Status, type.Code, title ?? type.Title, detail, extensions);

    /// <summary>The typed form of <see cref="Validation"/>.</summary>
    public static ProblemHttpResult TypedValidation(IDictionary<string, string[]> errors) =>
        Problem(ProblemCatalog.ValidationFailed.Status, ProblemCatalog.ValidationFailed.Code, ProblemCatalog.ValidationFailed.Title, ValidationDetail, new Dictionary<string, object?> { ["errors"] = errors });

    /// <summary>The typed form of <see cref="NotFound"/>.</summary>
    public static ProblemHttpResult TypedNotFound(string what) => Typed(ProblemCatalog.NotFound, title: $"{what} was not found.");

    private static ProblemHttpResult Problem(int status, string code, string title, string? detail, IDictionary<string, object?>? extensions)
    {
        var problem = new ProblemDetails
        {
            Status = status,
            Type = "urn:nexus:problem:" + code,
            Title = title,
            Detail = detail,
        };
        problem.Extensions["code"] = code;
        if (extensions is not null)
        {
            foreach (var (key, value) in extensions)
            {
                problem.Extensions[key] = value;
            }
        }

        return TypedResults.Problem(problem);
    }

    public static IResult Validation(IDictionary<string, string[]> errors) => TypedValidation(errors);

    public static IResult NotFound(string what) => TypedNotFound(what);

    private const string ValidationDetail = "See 'errors' for what to change.";
}

/// <summary>A problem document written without RFC 9457's numeric "status" member (see <see cref="Problems"/>).</summary>
internal sealed class StatuslessProblem(int statusCode, IReadOnlyDictionary<string, object?> members) : IResult, IStatusCodeHttpResult
{
    public int? StatusCode => statusCode;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.StatusCode = statusCode;
        var options = httpContext.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        return httpContext.Response.WriteAsJsonAsync(members, options, "application/problem+json", httpContext.RequestAborted);
    }
}
