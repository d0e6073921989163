using Microsoft.AspNetCore.Mvc;

namespace Nexus.Server.Hosting;

/// <summary>
/// RFC 9457 problem details with a stable machine-readable <c>code</c>. The <c>type</c> is a URN built from the
/// code so that clients can switch on either.
/// </summary>
internal static class Problems
{
    public static IResult Create(int status, string code, string title, string? detail = null, IDictionary<string, object?>? extensions = null)
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

    public static IResult Validation(IDictionary<string, string[]> errors) =>
        Create(StatusCodes.Status400BadRequest, "validation_failed", "The request has invalid fields.",
            "See 'errors' for what to change.", new Dictionary<string, object?> { ["errors"] = errors });

    public static IResult NotFound(string what) =>
        Create(StatusCodes.Status404NotFound, "not_found", $"{what} was not found.");
}
