using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Nexus.Server.AuthorizationServer.Clients;
using Nexus.Server.Hosting;
using Nexus.Server.Vault;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// POST /oauth2/register: dynamic client registration (RFC 7591), so that an MCP assistant can register itself with
/// no admin step. Public clients (token_endpoint_auth_method "none") and confidential ones (client_secret_basic or
/// _post) are accepted; every self-registered client must use PKCE S256. Registered clients appear in Site management
/// marked as self-registered, where an administrator can revoke them. Nexus:Registration:Mode turns registration
/// off or requires an initial access token.
/// </summary>
internal static class RegistrationEndpoint
{
    public const string Path = "/oauth2/register";
    private const int MaxBodyBytes = 16 * 1024;

    // An OAuth client's post: no session cookie, no antiforgery token (Hosting/ProtectedForm.cs is for the HTML forms);
    // antiforgery stays off so that the framework's automatic check of form-bound parameters never applies here.
    public static void MapClientRegistration(this IEndpointRouteBuilder app) =>
        app.MapPost("/oauth2/register", HandleAsync).WithTags("OAuth").DisableAntiforgery().WithoutSession();

    public static bool IsEnabled(NexusOptions options) => options.Registration.Mode != "off";

    private static async Task HandleAsync(HttpContext context, NexusOptions options, RegistrationLimiter limiter, ClientRegistry registry, SecretHasher hasher, TimeProvider time)
    {
        var ct = context.RequestAborted;
        var registration = options.Registration;
        if (!IsEnabled(options))
        {
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.AccessDenied, "Dynamic client registration is turned off on this Nexus; ask its administrator to register your application.");
            return;
        }

        if (registration.Mode == "token")
        {
            // RFC 7591 §3: the initial access token is a bearer token (RFC 6750 §2.1); compared in constant time.
            var header = context.Request.Headers.Authorization;
            var sent = header.Count == 1 && header[0]!.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[0]!["Bearer ".Length..].Trim() : null;
            if (sent is null || !CryptographicOperations.FixedTimeEquals(
                SHA256.HashData(Encoding.UTF8.GetBytes(sent)), SHA256.HashData(Encoding.UTF8.GetBytes(registration.InitialAccessToken!))))
            {
                await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidToken,
                    "This Nexus requires an initial access token to register a client: send it as Authorization: Bearer <token>.",
                    sent is null ? "Bearer realm=\"nexus\"" : $"Bearer realm=\"nexus\", error=\"{OAuthErrorCatalog.InvalidToken.Error}\"");
                return;
            }
        }

        // RFC 7591 §5 / RFC 9700: open registration is rate-limited per address.
        if (limiter.TryAcquire(context) is { } wait)
        {
            context.Response.Headers.RetryAfter = ClientAuthenticator.RetryAfterSeconds(wait);
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.TemporarilyUnavailable, "Too many client registrations from this address; try again later.", status: StatusCodes.Status429TooManyRequests);
            return;
        }

        if (!context.Request.HasJsonContentType())
        {
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidClientMetadata, "Send the client metadata as a JSON object with Content-Type: application/json (RFC 7591 §3.1).");
            return;
        }

        JsonDocument document;
        try
        {
            var body = await ReadLimitedAsync(context.Request, ct);
            if (body is null)
            {
                await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidClientMetadata, $"The client metadata exceeds {MaxBodyBytes} bytes.");
                return;
            }

            // Text no client sends (NUL, lone surrogates, invalid UTF-8) is refused before it is parsed or stored.
            if (JsonBody.Check(body) is { } refusal)
            {
                await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidClientMetadata, refusal);
                return;
            }

            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            await OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidClientMetadata, "The request body is not valid JSON.");
            return;
        }

        using (document)
        {
            // RFC 7591 §3.2.2: invalid_redirect_uri or invalid_client_metadata.
            var (metadata, error, description) = ClientMetadata.Parse(document.RootElement, document: false);
            if (metadata is null)
            {
                await OAuthResponses.ErrorAsync(context, error!, description!);
                return;
            }

            var now = time.GetUtcNow();
            var secret = metadata.IsPublic ? null : SecretGenerator.Secret("nxs_");
            var client = new OAuthClient(
                SecretGenerator.Id("nxc_"), ClientKinds.Application, metadata.Name, secret is null ? null : hasher.Hash(secret), metadata.Scopes, metadata.GrantTypes,
                Math.Min(3600, options.MaxAccessTokenLifetimeSeconds), now, now, now, null,
                metadata.IsPublic ? ClientTypes.Public : ClientTypes.Confidential, metadata.RedirectUris, [], null, metadata.ClientUri, null, ClientRegistrations.Dynamic);
            await registry.CreateAsync(client, ct);
            await WriteAsync(context, client, metadata, secret, now);
        }
    }

    /// <summary>RFC 7591 §3.2.1: 201 with the client_id, the secret when there is one, and every registered field.</summary>
    private static async Task WriteAsync(HttpContext context, OAuthClient client, ClientMetadata metadata, string? secret, DateTimeOffset now)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status201Created;
        OAuthResponses.NoStore(response);
        response.ContentType = "application/json;charset=UTF-8";
        await using (var json = new Utf8JsonWriter(response.BodyWriter, OAuthResponses.WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("client_id"u8, client.ClientId);
            json.WriteNumber("client_id_issued_at"u8, now.ToUnixTimeSeconds());
            if (secret is not null)
            {
                json.WriteString("client_secret"u8, secret);
                json.WriteNumber("client_secret_expires_at"u8, 0); // the secret does not expire
            }

            json.WriteString("client_name"u8, client.Name);
            WriteArray(json, "redirect_uris", client.RedirectUriList);
            json.WriteString("token_endpoint_auth_method"u8, metadata.TokenEndpointAuthMethod);
            WriteArray(json, "grant_types", client.GrantTypes);
            WriteArray(json, "response_types", ["code"]);
            json.WriteString("scope"u8, string.Join(' ', client.Scopes));
            if (client.BaseUrl is not null)
            {
                json.WriteString("client_uri"u8, client.BaseUrl);
            }

            json.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
    }

    private static void WriteArray(Utf8JsonWriter json, string name, IEnumerable<string> values)
    {
        json.WriteStartArray(name);
        foreach (var value in values)
        {
            json.WriteStringValue(value);
        }

        json.WriteEndArray();
    }

    private static async Task<byte[]?> ReadLimitedAsync(HttpRequest request, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[4096];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > MaxBodyBytes)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }
}
