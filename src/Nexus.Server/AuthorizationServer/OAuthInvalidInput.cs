using System.Collections.Frozen;
using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// The OAuth endpoints' answer to input the <see cref="InputGuard"/> or <see cref="OAuthForm"/> refuses (a NUL
/// character, a lone surrogate): an RFC 6749 §5.2 <c>invalid_request</c>, never a problem document. Where a client
/// authenticates, the attempt also counts as a failed authentication from its address
/// (<see cref="FailedAuthenticationLimiter"/>): nobody sends such input by mistake.
/// </summary>
internal sealed class OAuthInvalidInput : IInvalidInputResponder
{
    public static readonly OAuthInvalidInput Instance = new();

    /// <summary>The endpoints that authenticate clients (RFC 6749 §2.3).</summary>
    private static readonly FrozenSet<string> ClientAuthenticationRoutes = new[]
    {
        TokenEndpoint.Path, TokenEndpoint.SeedPath, IntrospectionEndpoint.Path, RevocationEndpoint.Path, ExchangeEndpoint.Path,
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    public Task RespondAsync(HttpContext context, string description)
    {
        if ((context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText is { } route && ClientAuthenticationRoutes.Contains(route))
        {
            CountAsFailedAuthentication(context);
        }

        return OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidRequest, description);
    }

    /// <summary>Answers a form that <see cref="OAuthForm"/> refused, counting hostile characters against the caller.</summary>
    public static Task RejectFormAsync(HttpContext context, string error)
    {
        if (error == OAuthForm.InvalidCharacters)
        {
            CountAsFailedAuthentication(context);
        }

        return OAuthResponses.ErrorAsync(context, OAuthErrorCatalog.InvalidRequest, error);
    }

    public static void CountAsFailedAuthentication(HttpContext context) =>
        context.RequestServices.GetRequiredService<FailedAuthenticationLimiter>().RecordMalformed(FixedWindowCounter.AddressKey(context));
}
