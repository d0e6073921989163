namespace Nexus.Sdk;

/// <summary>Redirect rules shared by the client and the credential handler: a secret goes only to the origin it is meant for.</summary>
internal static class Redirects
{
    /// <summary>
    /// Turns automatic redirects off on the handler at the end of <paramref name="handler"/>'s
    /// <see cref="DelegatingHandler"/> chain when it is a <see cref="SocketsHttpHandler"/> or an
    /// <see cref="HttpClientHandler"/>, and returns how many redirects it would have followed (0: none, or another
    /// kind of handler, which is left as it is). .NET's own redirect handling runs inside that handler, out of sight
    /// of any handler above it, and keeps every header but <c>Authorization</c> on a redirect to another host.
    /// </summary>
    public static int TurnOff(HttpMessageHandler? handler)
    {
        while (handler is DelegatingHandler delegating)
        {
            handler = delegating.InnerHandler;
        }

        try
        {
            switch (handler)
            {
                case SocketsHttpHandler sockets when sockets.AllowAutoRedirect:
                    sockets.AllowAutoRedirect = false;
                    return sockets.MaxAutomaticRedirections;
                case HttpClientHandler client when client.AllowAutoRedirect:
                    client.AllowAutoRedirect = false;
                    return client.MaxAutomaticRedirections;
                default:
                    return 0;
            }
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException("The HTTP handler has sent requests already, so its redirects can no longer be turned off, and a followed "
                + "redirect would take the request's secrets to another host: give a handler that has not been used yet, or one with AllowAutoRedirect = false.", e);
        }
    }

    /// <summary>Same scheme, host and port.</summary>
    public static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase) && string.Equals(a.IdnHost, b.IdnHost, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;
}
