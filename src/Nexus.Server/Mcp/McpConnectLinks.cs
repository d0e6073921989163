using System.Globalization;
using Microsoft.AspNetCore.DataProtection;
using Nexus.Server.Accounts;
using Nexus.Server.Dashboard;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;
using static Nexus.Server.Hosting.Html;

namespace Nexus.Server.Mcp;

/// <summary>What a connect link carries: who it is for, which service, which permissions, which connection it replaces.</summary>
internal sealed record ConnectTicket(string UserId, string Provider, IReadOnlyList<string>? Scopes, string? Replaces, long ExpiresAt);

/// <summary>
/// The links the MCP tools hand an assistant so that the person connects a service: <c>/mcp/connect?ticket=…</c>,
/// valid for <see cref="Lifetime"/>, encrypted and authenticated with the server's data protection keys (shared by
/// every instance). Opening one requires the same person to be signed in; it then shows the dashboard's own connect
/// page (the permissions in plain words), whose form sends the person to the service.
/// </summary>
internal sealed class McpConnectLinks(IDataProtectionProvider protection, NexusOptions options, TimeProvider time)
{
    public const string PagePath = McpResource.Path + "/connect";
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(10);

    private readonly IDataProtector protector = protection.CreateProtector("Nexus.Mcp.ConnectLink.v1");

    public (string Url, DateTimeOffset ExpiresAt) Create(string userId, string provider, IReadOnlyList<string>? scopes, string? replaces)
    {
        var expiresAt = time.GetUtcNow() + Lifetime;
        var payload = string.Join('\n', userId, provider, scopes is null ? "-" : "+" + string.Join(' ', scopes), replaces ?? "",
            expiresAt.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
        return ($"{options.Issuer}{PagePath}?ticket={protector.Protect(payload)}", expiresAt);
    }

    /// <summary>The ticket's content, or null when it was tampered with, made by another server, or has expired.</summary>
    public ConnectTicket? Read(string? ticket)
    {
        if (string.IsNullOrEmpty(ticket) || ticket.Length > 4096)
        {
            return null;
        }

        string payload;
        try
        {
            payload = protector.Unprotect(ticket);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return null;
        }

        var parts = payload.Split('\n');
        if (parts.Length != 5 || !long.TryParse(parts[4], NumberStyles.None, CultureInfo.InvariantCulture, out var expires)
            || DateTimeOffset.FromUnixTimeSeconds(expires) <= time.GetUtcNow())
        {
            return null;
        }

        IReadOnlyList<string>? scopes = parts[2] == "-" ? null : parts[2][1..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return new ConnectTicket(parts[0], parts[1], scopes, parts[3].Length == 0 ? null : parts[3], expires);
    }

    /// <summary>For a signed-in person (NexusPolicies.SignedIn): anyone else goes to the sign-in page, the link as returnUrl.</summary>
    public static void MapConnectPage(IEndpointRouteBuilder app) => app.MapGet("/mcp/connect", OpenAsync).RequireAuthorization(NexusPolicies.SignedIn).ExcludeFromDescription();

    private static async Task<IResult> OpenAsync(HttpContext context, string? ticket, McpConnectLinks links, ProviderRegistry providers, ProviderCatalog catalog, CancellationToken ct)
    {
        var userId = UserAccounts.SignedInUserId(context);

        if (links.Read(ticket) is not { } t)
        {
            return Error(context, "This link has expired", "Links to connect a service are valid for a few minutes. Ask your assistant for a new one.", StatusCodes.Status410Gone);
        }

        // The link acts for the person the assistant works for: anybody else signed in is refused, so that a link
        // passed on (or planted) never connects someone's account to another person's assistant.
        if (!string.Equals(t.UserId, userId, StringComparison.Ordinal))
        {
            return Error(context, "This link is for another account",
                "The assistant that made this link works for another Nexus account. Sign out and sign in as that person, or ask your own assistant.", StatusCodes.Status403Forbidden);
        }

        if (await providers.FindAsync(t.Provider, ct) is not { } provider)
        {
            return Error(context, "Unknown service", "This service is not configured on this Nexus.", StatusCodes.Status404NotFound);
        }

        return ConnectionsPages.ConnectPage(context, provider, catalog, t.Replaces, t.Scopes, "Your AI assistant asked to use this service on your behalf.");
    }
}
