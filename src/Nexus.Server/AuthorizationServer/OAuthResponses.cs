using System.Text.Json;
using Nexus.Server.Hosting;

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

    /// <param name="error">The catalog entry (Hosting/OAuthErrorCatalog.cs): the <c>error</c> code and its status.</param>
    /// <param name="description">This occurrence's <c>error_description</c>: what to change.</param>
    /// <param name="status">Only where this occurrence differs from the entry's status (429 when throttled, 501 for a disabled grant).</param>
    public static async Task ErrorAsync(HttpContext context, OAuthError error, string description, string? wwwAuthenticate = null, int? status = null)
    {
        context.Items[ErrorItem] = error.Error;
        var response = context.Response;
        response.StatusCode = status ?? error.Status;
        NoStore(response);
        if (wwwAuthenticate is not null)
        {
            response.Headers.WWWAuthenticate = wwwAuthenticate;
        }

        response.ContentType = "application/json;charset=UTF-8";
        await using (var json = new Utf8JsonWriter(response.BodyWriter, WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("error"u8, error.Error);
            json.WriteString("error_description"u8, description);
            json.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
    }
}
