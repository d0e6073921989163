using System.Text.Json;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer.Grants;

/// <summary>A token response (RFC 6749 §5.1) or an error response (§5.2), written the same way by every grant.</summary>
internal sealed record TokenResult(
    int Status,
    OAuthError? Error = null,
    string? Description = null,
    string? AccessToken = null,
    int ExpiresIn = 0,
    string? Scope = null,
    string? RefreshToken = null,
    string? IdToken = null)
{
    public static TokenResult Fail(OAuthError error, string description) => new(error.Status, error, description);

    public bool IsSuccess => Error is null;

    /// <param name="state">The documented exchange route echoes the client's state.</param>
    public async Task WriteAsync(HttpContext context, string? state = null, bool seedShape = false)
    {
        if (Error is not null)
        {
            await OAuthResponses.ErrorAsync(context, Error, Description!, status: Status);
            return;
        }

        var response = context.Response;
        OAuthResponses.NoStore(response);
        response.ContentType = "application/json;charset=UTF-8";
        await using (var json = new Utf8JsonWriter(response.BodyWriter, OAuthResponses.WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("access_token"u8, AccessToken);
            json.WriteString("token_type"u8, "Bearer"u8);
            json.WriteNumber("expires_in"u8, ExpiresIn);
            if (seedShape)
            {
                json.WriteString("state"u8, state);
            }
            else
            {
                if (Scope is not null)
                {
                    json.WriteString("scope"u8, Scope);
                }

                if (RefreshToken is not null)
                {
                    json.WriteString("refresh_token"u8, RefreshToken);
                }

                if (IdToken is not null)
                {
                    json.WriteString("id_token"u8, IdToken);
                }
            }

            json.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
    }
}
