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

    /// <summary>
    /// An <c>error_description</c> in the characters RFC 6749 §4.1.2.1 and §5.2 allow (%x20-21 / %x23-5B / %x5D-7E):
    /// a double quote becomes a single one, a backslash a slash, an ellipsis three dots, anything else outside the set
    /// a question mark, so that a value a client sent (echoed in the description) cannot break a strict client's parser.
    /// </summary>
    public static string Description(string description)
    {
        foreach (var c in description)
        {
            if (!Allowed(c))
            {
                var builder = new System.Text.StringBuilder(description.Length + 8);
                foreach (var d in description)
                {
                    _ = d switch
                    {
                        _ when Allowed(d) => builder.Append(d),
                        '"' => builder.Append('\''),
                        '\\' => builder.Append('/'),
                        '\u2026' => builder.Append("..."),
                        _ => builder.Append('?'),
                    };
                }

                return builder.ToString();
            }
        }

        return description;

        static bool Allowed(char c) => c is >= '\x20' and <= '\x7e' and not '"' and not '\\';
    }

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
            json.WriteString("error_description"u8, Description(description));
            json.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
    }
}
