using Microsoft.AspNetCore.Antiforgery;

namespace Nexus.Server.Hosting;

/// <summary>
/// Antiforgery (CSRF) for every HTML form, by one endpoint filter (issue 13, item 2) instead of a check at the top of
/// each handler. A route mapped with <see cref="RequireProtectedForm{TBuilder}"/> runs its handler only for a form post
/// (<c>application/x-www-form-urlencoded</c> or <c>multipart/form-data</c>) whose antiforgery token (the
/// <c>__csrf</c> field, checked against the <c>nexus.csrf</c> cookie and the signed-in person) is valid; anything else
/// (no token, a stale one, another person's, another content type, a body that is not a form) gets the 400
/// "Form expired" page, before the handler sees a byte. The handler reads the already-validated form with
/// <see cref="Of"/>.
/// <para>
/// The OAuth protocol endpoints (token, introspection, revocation, registration, userinfo, exchange) take forms from
/// OAuth clients, which carry no antiforgery token and no session cookie: they never get this filter, and keep
/// <c>DisableAntiforgery()</c> so that the framework's own antiforgery check (applied to form-bound parameters) can
/// never start refusing them. <c>RouteSecurityTests</c> fails on a session POST without this filter.
/// </para>
/// </summary>
internal static class ProtectedForm
{
    /// <summary>The form field that carries the antiforgery token on every Nexus form.</summary>
    public const string FieldName = "__csrf";

    private static readonly object FormKey = new();

    /// <summary>The marker the filter puts on a route's metadata, so that the route table can be checked.</summary>
    public sealed class Marker
    {
        public static readonly Marker Instance = new();

        private Marker()
        {
        }
    }

    /// <summary>Validates the antiforgery token of every request to the route before its handler runs (form posts only: map it on POST routes).</summary>
    public static TBuilder RequireProtectedForm<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(Marker.Instance).AddEndpointFilter(ValidateAsync);

    /// <summary>The form the filter validated; a route without <see cref="RequireProtectedForm{TBuilder}"/> fails loudly instead of reading an unchecked form.</summary>
    public static IFormCollection Of(HttpContext context) =>
        context.Items.TryGetValue(FormKey, out var form) && form is IFormCollection validated
            ? validated
            : throw new InvalidOperationException($"{context.Request.Path} is not mapped with RequireProtectedForm().");

    public static IResult Rejected(HttpContext context) =>
        Html.Error(context, "Form expired", "This form could not be verified (missing or stale security token). Go back, reload the page and try again.");

    private static async ValueTask<object?> ValidateAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        IFormCollection? form;
        try
        {
            form = await ReadAsync(context);
        }
        catch (InvalidInputException invalid)
        {
            // A field the InputGuard refuses (a NUL, a lone surrogate): said as such, not as a stale token.
            return Html.Error(context, "Form not accepted", invalid.Message);
        }

        if (form is null)
        {
            return Rejected(context);
        }

        context.Items[FormKey] = form;
        return await next(invocation);
    }

    private static async Task<IFormCollection?> ReadAsync(HttpContext context)
    {
        if (!context.Request.HasFormContentType)
        {
            return null;
        }

        // The form first: the antiforgery check reads it too, and would report a form the framework cannot read, or a
        // field the InputGuard refuses, as a missing token ("Form expired").
        IFormCollection form;
        try
        {
            form = await context.Request.ReadFormAsync(context.RequestAborted);
        }
        catch (InvalidDataException)
        {
            throw new InvalidInputException("The form cannot be read: a field contains a character that is not allowed (such as NUL), or the form is too large.");
        }
        catch (IOException e) when (e is not BadHttpRequestException && !context.RequestAborted.IsCancellationRequested)
        {
            // A multipart/form-data body that is not multipart (no boundary line before the end): the framework's
            // reader runs off the end of the stream. Found by HostileInputTests; it was a 500.
            throw new InvalidInputException("The form cannot be read: its body does not match its content type.");
        }

        try
        {
            await context.RequestServices.GetRequiredService<IAntiforgery>().ValidateRequestAsync(context);
            return form;
        }
        catch (AntiforgeryValidationException)
        {
            return null;
        }
    }
}
