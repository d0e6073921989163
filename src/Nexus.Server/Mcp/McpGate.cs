using System.Security.Claims;
using System.Text.Json;
using Nexus.Server.AuthorizationServer;
using Nexus.Server.AuthorizationServer.Resources;
using Nexus.Server.Hosting;

namespace Nexus.Server.Mcp;

/// <summary>
/// What stands before the MCP SDK's Streamable HTTP handler at /mcp: the Origin check (DNS rebinding), the bearer
/// token (a Nexus access token whose audience is this resource, checked as every Nexus API checks tokens), and the
/// scope a tools/call needs. The SDK sees only requests that passed, with <see cref="HttpContext.User"/> set to the
/// person the token speaks for (never the dashboard's cookie).
/// </summary>
internal sealed class McpGate(BearerTokenAuthenticator bearer, NexusOptions options)
{
    public const string AuthenticationType = "NexusMcpBearer";
    public const string ScopeClaim = "scope";
    public const string ClientIdClaim = "client_id";

    private readonly string ownOrigin = new Uri(options.Issuer).GetLeftPart(UriPartial.Authority);

    /// <summary>Nexus:Mcp:AllowedOrigins (validated at startup): browser origins besides BASE_URL's own, served with CORS.</summary>
    private readonly HashSet<string> otherOrigins = new(BrowserOrigins.Parse(options.Mcp.AllowedOrigins, out _), StringComparer.OrdinalIgnoreCase);
    private readonly string resource = McpResource.Url(options);

    /// <summary>
    /// Whether a request is for the MCP endpoint. Routing matches paths without regard to case, so this does too
    /// (/MCP must not reach the SDK past the gate).
    /// </summary>
    public static bool Applies(HttpContext context) => context.Request.Path.Equals(McpResource.Path, StringComparison.OrdinalIgnoreCase)
        || context.Request.Path.Equals(McpResource.Path + "/", StringComparison.OrdinalIgnoreCase);

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        // MCP transports, Security Warning (2025-11-25 §2.0.1): servers MUST validate the Origin header and answer 403
        // to an invalid one, against DNS rebinding. Clients outside a browser send none.
        var origin = context.Request.Headers.Origin;
        if (origin.Count > 0)
        {
            var own = origin.Count == 1 && string.Equals(origin[0], ownOrigin, StringComparison.OrdinalIgnoreCase);
            if (!own && (origin.Count != 1 || !otherOrigins.Contains(origin[0]!)))
            {
                await Problems.Create(ProblemCatalog.OriginNotAllowed,
                    $"Requests from a browser must come from {ownOrigin} or an origin listed in Nexus:Mcp:AllowedOrigins.").ExecuteAsync(context);
                return;
            }

            // Another allowed origin is cross-origin for the browser: CORS (Fetch standard §3.2) lets its page send the
            // Authorization header and read the answer, WWW-Authenticate included (where MCP authorization starts).
            if (!own && AnswerCors(context, origin[0]!))
            {
                return;
            }
        }

        // MCP authorization §2.6 / RFC 9728 §5.1: every refusal points at the protected resource metadata; RFC 8707:
        // only a token issued for this resource is accepted (one for Nexus's REST API is not, and vice versa).
        var (claims, sent, error) = await bearer.CheckAsync(context, resource);
        if (claims is null)
        {
            // RFC 6750 §3.1: error="invalid_token" only when a token was sent and is not acceptable.
            context.Response.Headers.WWWAuthenticate = ResourceChallenge.ForMcp(options, sent ? ResourceChallenge.InvalidToken : null, sent ? error : null);
            await Problems.Create(sent ? ProblemCatalog.InvalidToken : ProblemCatalog.Unauthorized, title: ProblemCatalog.InvalidToken.Title, detail:
                sent ? error : "Authorize with Nexus for this resource (see the resource_metadata of the WWW-Authenticate header).").ExecuteAsync(context);
            return;
        }

        if (HttpMethods.IsPost(context.Request.Method) && McpResource.MissingScope(await ToolsCalledAsync(context) ?? [], claims.Scopes) is var (tool, needed))
        {
            // MCP authorization, scope challenge handling / RFC 6750 §3.1: insufficient_scope with every scope needed,
            // those the token has plus the missing one, so that a step-up authorization loses nothing it had.
            var union = claims.Scopes.Append(needed).Distinct(StringComparer.Ordinal);
            context.Response.Headers.WWWAuthenticate = ResourceChallenge.ForMcp(options, ResourceChallenge.InsufficientScope, $"The {tool} tool needs the {needed} scope.", union);
            await Problems.Create(ProblemCatalog.InsufficientScope,
                $"The {tool} tool needs the {needed} scope.").ExecuteAsync(context);
            return;
        }

        context.User = new ClaimsPrincipal(new ClaimsIdentity(
            [
                new Claim(ClaimTypes.NameIdentifier, claims.Subject),
                new Claim(ClientIdClaim, claims.ClientId),
                new Claim(ScopeClaim, claims.Scope ?? ""),
            ], AuthenticationType, ClaimTypes.NameIdentifier, null));
        await next(context);
    }

    /// <summary>CORS headers for an allowed other origin; true when the request was a preflight, answered here (204).</summary>
    private static bool AnswerCors(HttpContext context, string origin)
    {
        var headers = context.Response.Headers;
        headers.AccessControlAllowOrigin = origin;
        headers.Vary = "Origin";
        headers.AccessControlExposeHeaders = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version";
        if (!HttpMethods.IsOptions(context.Request.Method) || context.Request.Headers.AccessControlRequestMethod.Count == 0)
        {
            return false;
        }

        headers.AccessControlAllowMethods = "POST, GET, DELETE";
        // MCP 2026-07-28 clients also name the method and its target in headers (Mcp-Method, Mcp-Name, Mcp-Param-*,
        // which the SDK checks against the body); the Mcp-Param-* names depend on the tool, so those asked for are echoed.
        var asked = context.Request.Headers.AccessControlRequestHeaders.ToString()
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Where(h => h.StartsWith("Mcp-Param-", StringComparison.OrdinalIgnoreCase) && h.Length <= 128 && h.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'));
        headers.AccessControlAllowHeaders = string.Join(", ", asked.Prepend("Authorization, Content-Type, Accept, MCP-Protocol-Version, Mcp-Session-Id, Last-Event-ID, Mcp-Method, Mcp-Name"));
        headers.AccessControlMaxAge = "600";
        context.Response.StatusCode = StatusCodes.Status204NoContent;
        return true;
    }

    /// <summary>Bodies up to this size are read into memory once and handed to the SDK from there.</summary>
    private const int InMemoryBodyLimit = 256 * 1024;

    /// <summary>
    /// The tools a JSON-RPC tools/call request names; null for any other message (the SDK judges those). Property names
    /// are matched as the SDK reads them, without regard to case, and every "name" counts (a duplicate must not let a
    /// harmless name pass here while the SDK runs another): a shape the SDK reads differently from this still meets
    /// <see cref="McpResource.RequireToolScope"/>, the check inside the SDK's own pipeline.
    /// </summary>
    private static async Task<List<string>?> ToolsCalledAsync(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentLength is not { } length || length is <= 0 or > InMemoryBodyLimit)
        {
            return await ToolsCalledStreamedAsync(context);
        }

        // The usual case: a small body of known length, read once and given to the SDK as a MemoryStream (no file
        // buffering, no second parse into a document).
        var body = new byte[length];
        await request.Body.ReadExactlyAsync(body, context.RequestAborted);
        request.Body = new MemoryStream(body, writable: false);
        return ToolsCalled(body);
    }

    /// <summary>Reads only as far as needed: the top-level "method" and "params"."name" of one JSON-RPC request.</summary>
    private static List<string>? ToolsCalled(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            var isToolCall = false;
            List<string>? names = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (PropertyIs(ref reader, "method"))
                {
                    reader.Read();
                    isToolCall |= reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("tools/call"u8);
                    reader.Skip();
                }
                else if (PropertyIs(ref reader, "params"))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        reader.Skip();
                        continue;
                    }

                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var isName = PropertyIs(ref reader, "name");
                        reader.Read();
                        if (isName && reader.TokenType == JsonTokenType.String)
                        {
                            (names ??= []).Add(reader.GetString()!);
                        }
                        else
                        {
                            reader.Skip();
                        }
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            return isToolCall ? names : null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // The SDK answers a parse error in JSON-RPC's own terms. InvalidOperationException: text JSON allows but
            // UTF-16 cannot hold (an escaped lone surrogate in a name); the SDK's filter still guards a tool call.
            return null;
        }
    }

    /// <summary>Whether the property the reader is on is called <paramref name="name"/> (ASCII, lower case), in any case.</summary>
    private static bool PropertyIs(ref Utf8JsonReader reader, string name) => reader.ValueIsEscaped || reader.HasValueSequence
        ? string.Equals(reader.GetString(), name, StringComparison.OrdinalIgnoreCase)
        : reader.ValueSpan.Length == name.Length && System.Text.Ascii.EqualsIgnoreCase(reader.ValueSpan, name);

    /// <summary>A body of unknown or large size: buffered (to disk past a threshold) and parsed as a document.</summary>
    private static async Task<List<string>?> ToolsCalledStreamedAsync(HttpContext context)
    {
        context.Request.EnableBuffering();
        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.EnumerateObject().Any(p => string.Equals(p.Name, "method", StringComparison.OrdinalIgnoreCase)
                && p.Value.ValueKind == JsonValueKind.String && p.Value.ValueEquals("tools/call")))
            {
                return null;
            }

            return root.EnumerateObject()
                .Where(p => string.Equals(p.Name, "params", StringComparison.OrdinalIgnoreCase) && p.Value.ValueKind == JsonValueKind.Object)
                .SelectMany(p => p.Value.EnumerateObject())
                .Where(p => string.Equals(p.Name, "name", StringComparison.OrdinalIgnoreCase) && p.Value.ValueKind == JsonValueKind.String)
                .Select(p => p.Value.GetString()!)
                .ToList();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // The SDK answers a parse error in JSON-RPC's own terms. InvalidOperationException: text JSON allows but
            // UTF-16 cannot hold (an escaped lone surrogate in a name); the SDK's filter still guards a tool call.
            return null;
        }
        finally
        {
            context.Request.Body.Position = 0;
        }
    }
}
