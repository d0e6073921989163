using Nexus.Server.Hosting;

namespace Nexus.Server.AuthorizationServer;

/// <summary>
/// Requests an application sends by POST to an endpoint whose POST is also one of Nexus's own forms:
/// the authorization endpoint (whose POST is the consent decision) and the logout endpoint (whose POST is the
/// sign-out confirmation). A form without Nexus's antiforgery field is the application's request, and is answered
/// 303 See Other to the GET of the same parameters, which then runs exactly as the application's GET would. A form
/// with the field is Nexus's own and goes on to the antiforgery check (<see cref="ProtectedForm"/>).
/// <para>
/// The GET is a top-level navigation, on which the browser sends the SameSite=Lax session cookie it withholds from a
/// cross-site POST: a person already signed in is not asked to sign in again. Nothing is decided on the POST itself,
/// so a forged POST can do no more than a link to the GET could (and a consent form stripped of its token is asked
/// again: the GET never reads <c>decision</c>).
/// </para>
/// </summary>
internal static class PostedRequests
{
    /// <summary>The marker the filter puts on a route's metadata, so that the route table can be checked.</summary>
    public sealed class Marker
    {
        public static readonly Marker Instance = new();

        private Marker()
        {
        }
    }

    /// <summary>
    /// Sends an application's form POST on this route to the GET at <paramref name="getPath"/>, with every field
    /// (repeated ones too, so that the GET refuses them as it would in a query string). Map it before
    /// <see cref="ProtectedForm.RequireProtectedForm{TBuilder}"/>.
    /// </summary>
    public static TBuilder AcceptRequestsByPost<TBuilder>(this TBuilder builder, string getPath) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(Marker.Instance).AddEndpointFilter(async (invocation, next) =>
        {
            var request = invocation.HttpContext.Request;
            if (!request.HasFormContentType)
            {
                return await next(invocation);
            }

            IFormCollection form;
            try
            {
                form = await request.ReadFormAsync(invocation.HttpContext.RequestAborted);
            }
            catch (Exception e) when (e is InvalidDataException or InvalidInputException)
            {
                // A form the framework cannot read, or a field the InputGuard refuses (a NUL, a lone surrogate): the
                // protected form's filter reads it again and says so on its HTML page.
                return await next(invocation);
            }

            if (form.ContainsKey(ProtectedForm.FieldName))
            {
                return await next(invocation);
            }

            // OIDC Core §3.1.2.1: "Authorization Servers MUST support the use of the HTTP GET and POST methods defined
            // in RFC 7231 at the Authorization Endpoint"; RP-Initiated Logout 1.0 §2: "The OP MUST support the use of
            // the HTTP GET and POST methods ... at the Logout Endpoint". 303: the browser follows with a GET.
            var location = getPath + QueryString.Create(form);
            if (location.Length > MaxLocationLength)
            {
                // The browser would send this GET with a request line longer than servers accept (Kestrel: 8 KiB) and
                // meet a bare 414 or 502 instead: said here, on a page, before anything is sent on.
                return Html.Error(invocation.HttpContext, "Request too large", "This sign-in request carries too many parameters to pass on. The application should send a shorter one.",
                    StatusCodes.Status414UriTooLong);
            }

            return new SeeOther(location);
        });

    /// <summary>The longest GET address a 303 leads to: within Kestrel's default request line of 8 KiB, with room for the method and version.</summary>
    public const int MaxLocationLength = 8000;

    /// <summary>303 See Other (RFC 9110 §15.4.4): the answer to a POST is at this address, to be fetched with GET.</summary>
    private sealed class SeeOther(string location) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = StatusCodes.Status303SeeOther;
            httpContext.Response.Headers.Location = location;
            return Task.CompletedTask;
        }
    }
}
