using System.Security.Claims;

namespace Nexus.Server.Hosting;

// What Hosting asks of the components instead of depending on them: it is the leaf of the component graph
// (tests/.../Architecture/ComponentGraphTests), and each component registers its part in its own AddX().

/// <summary>A link in the page header's main navigation, registered by the component that serves the page.</summary>
/// <param name="Order">Position in the navigation, lowest first.</param>
/// <param name="Text">The link's text, as HTML: a constant of the registering component, never user input.</param>
/// <param name="Label">For an icon link: its accessible name (aria-label and title).</param>
/// <param name="ShownTo">Whom the link is shown to among the signed-in; null: all of them.</param>
internal sealed record NavigationLink(int Order, string Href, string Text, string? Class = null, string? Label = null, Func<ClaimsPrincipal, bool>? ShownTo = null);

/// <summary>The registered <see cref="NavigationLink"/>s in their order, sorted once.</summary>
internal sealed class PageNavigation(IEnumerable<NavigationLink> links)
{
    public NavigationLink[] Links { get; } = [.. links.OrderBy(l => l.Order)];
}

/// <summary>One part of the startup banner ("encryption key: ENCRYPTION_KEY"), contributed by the component that knows it.</summary>
internal interface IStartupBannerItem
{
    /// <summary>Position in the banner, lowest first.</summary>
    int Order { get; }

    string Name { get; }

    string Value { get; }
}

/// <summary>
/// What must be done once before Nexus serves requests or runs a maintenance command, in registration order (Data:
/// reach the database, migrate it and run the <see cref="IStartupStep"/>s on the migration connection).
/// </summary>
internal interface IStartupPreparation
{
    Task PrepareAsync(StartupPurpose purpose, CancellationToken ct);
}

/// <summary>What a component says of its readiness for /readyz (Data: the database answers).</summary>
/// <param name="Details">Fields for the /readyz body, in both answers (e.g. "database": "sqlite").</param>
/// <param name="RetryAfterSeconds">Sent as Retry-After (RFC 9110 §10.2.3) when not ready.</param>
internal sealed record Readiness(bool Ready, IReadOnlyList<KeyValuePair<string, object?>> Details, int RetryAfterSeconds);

/// <summary>A condition of /readyz, registered by the component that knows it.</summary>
internal interface IReadinessCheck
{
    Task<Readiness> CheckAsync(CancellationToken ct);
}

/// <summary>
/// Answers the exceptions a component knows (Data: a database outage is a 503 with Retry-After) before Hosting's
/// generic ones (a 400 for unreadable requests, a 500 that leaks nothing).
/// </summary>
internal interface IExceptionAnswer
{
    ValueTask<bool> TryAnswerAsync(HttpContext context, Exception exception);
}

/// <summary>
/// The paths of a protocol with an error format of its own and its "temporarily unavailable" answer (RFC 6749
/// §4.1.2.1 and §5.2 temporarily_unavailable on the OAuth endpoints), registered by the component that serves them;
/// everywhere else such an answer is a problem document (RFC 9457).
/// </summary>
internal interface IUnavailableResponder
{
    bool Covers(PathString path);

    Task RespondAsync(HttpContext context, string description);
}
