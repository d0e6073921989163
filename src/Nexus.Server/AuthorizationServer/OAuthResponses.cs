using System.Text.Json;

namespace Nexus.Server.AuthorizationServer;

/// <summary>RFC 6749 §5.1/§5.2 response writing shared by the OAuth endpoints.</summary>
internal static class OAuthResponses
{
    /// <summary>Descriptions are ASCII prose; relaxed escaping keeps them readable (the body is never HTML).</summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void NoStore(HttpResponse response)
    {
        // RFC 6749 §5.1: token responses MUST carry Cache-Control: no-store.
        response.Headers.CacheControl = "no-store";
        response.Headers.Pragma = "no-cache";
    }

    /// <summary>HttpContext.Items key of the RFC 6749 error code an endpoint answered with (for the token metrics).</summary>
    public static readonly object ErrorItem = new();

    public static async Task ErrorAsync(HttpContext context, int status, string error, string description, string? wwwAuthenticate = null)
    {
        context.Items[ErrorItem] = error;
        var response = context.Response;
        response.StatusCode = status;
        NoStore(response);
        if (wwwAuthenticate is not null)
        {
            response.Headers.WWWAuthenticate = wwwAuthenticate;
        }

        response.ContentType = "application/json;charset=UTF-8";
        await using (var json = new Utf8JsonWriter(response.BodyWriter, WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("error"u8, error);
            json.WriteString("error_description"u8, description);
            json.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
    }
}
