using System.Text.Json;

namespace Nexus.Server.Hosting;

/// <summary>Reads a JSON request body and turns every way it can be wrong into a 4xx problem, never a 500.</summary>
internal static class JsonBody
{
    public static async Task<(T? Value, IResult? Error)> ReadAsync<T>(HttpRequest request, CancellationToken ct)
        where T : class
    {
        if (!request.HasJsonContentType())
        {
            return (null, Problems.Create(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type",
                "The request body must be JSON.", "Send Content-Type: application/json."));
        }

        try
        {
            var value = await request.ReadFromJsonAsync<T>(ct);
            return value is null
                ? (null, Problems.Create(StatusCodes.Status400BadRequest, "invalid_json", "The request body is empty or null."))
                : (value, null);
        }
        catch (JsonException e)
        {
            // The path and message say which field is wrong; they never contain the value itself.
            return (null, Problems.Create(StatusCodes.Status400BadRequest, "invalid_json", "The request body is not valid JSON for this endpoint.",
                e.Path is null ? e.Message : $"{e.Message}"));
        }
        catch (BadHttpRequestException e)
        {
            return (null, Problems.Create(e.StatusCode, "bad_request", "The request body could not be read.", e.Message));
        }
    }
}
