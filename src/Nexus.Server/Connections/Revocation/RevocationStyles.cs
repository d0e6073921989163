using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Nexus.Server.Providers;

namespace Nexus.Server.Connections.Revocation;

/// <summary>One request to send to a provider to revoke a token; <see cref="Hint"/> names which token, for the audit log.</summary>
internal sealed record RevocationCall(string Hint, HttpRequestMessage Request);

/// <summary>What a revocation style needs to build its requests. Holds tokens and the client secret: never logged.</summary>
/// <param name="Url">The revocation_url with the connection's values in place and {client_id} filled in.</param>
/// <param name="Secret">Decrypts the client secret when a style needs it (null for a public client).</param>
/// <param name="ClientAuthentication">RFC 6749 §2.3.1 client authentication as the token endpoint takes it.</param>
internal sealed record RevocationContext(
    Provider Provider,
    string Url,
    string? AccessToken,
    string? RefreshToken,
    Func<string?> Secret,
    Action<HttpRequestMessage, List<KeyValuePair<string, string>>> ClientAuthentication)
{
    public override string ToString() => $"RevocationContext({Provider.Name})";
}

/// <summary>
/// How a provider wants a connection's tokens revoked: RFC 7009, or the provider's own API where RFC 7009 does not fit
/// (the catalog's <c>revocation_format</c>). One subclass per format; each builds exactly the request(s) the provider
/// documents, and <see cref="ProviderClient.RevokeAsync"/> sends them.
/// </summary>
internal abstract class RevocationStyle
{
    public abstract string Name { get; }

    /// <summary>
    /// Whether the provider documents that this revocation ends the person's whole grant to the app, every token of it
    /// (GitHub, Strava, Square, Facebook), rather than the tokens sent. Such a call would also kill the tokens that
    /// replace the revoked ones, so it is skipped when the grant continues (a reconnect of the same account).
    /// </summary>
    public virtual bool EndsGrant => false;

    public abstract IEnumerable<RevocationCall> Calls(RevocationContext context);

    private static readonly Dictionary<string, RevocationStyle> Styles = new RevocationStyle[]
    {
        new Rfc7009Style(), new Rfc7009GrantStyle(), new JsonStyle(), new BearerStyle(), new BearerDeleteStyle(), new BearerDeleteGrantStyle(), new GitHubGrantStyle(),
        new FormAccessTokenStyle(), new FormAccessTokenWithClientStyle(), new SquareStyle(), new QueryTokenStyle(),
    }.ToDictionary(s => s.Name, StringComparer.Ordinal);

    /// <summary>The style of a format name; RFC 7009 for an unknown one (the registry and the catalog refuse those).</summary>
    public static RevocationStyle For(string? format) => Styles.GetValueOrDefault(format ?? RevocationFormats.Rfc7009) ?? Styles[RevocationFormats.Rfc7009];

    /// <summary>The catalog's reserved placeholder for the registration's client id in a revocation_url (GitHub's /applications/{client_id}/grant).</summary>
    public const string ClientIdPlaceholder = "{client_id}";

    protected static HttpContent Json(object body) => new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    /// <summary>The access token alone, once: what the provider-specific APIs take (revoking it ends the grant there).</summary>
    protected static IEnumerable<RevocationCall> AccessTokenOnly(RevocationContext context, Func<string, HttpRequestMessage> build) =>
        context.AccessToken is { } token ? [new RevocationCall("access_token", build(token))] : [];
}

/// <summary>RFC 7009 §2.1: a form post of token and token_type_hint with client authentication; the refresh token first, since revoking it typically ends the whole grant (§2.1).</summary>
internal sealed class Rfc7009Style : RevocationStyle
{
    public override string Name => RevocationFormats.Rfc7009;

    public override IEnumerable<RevocationCall> Calls(RevocationContext context) => TokenCalls(context, ProviderClient.Body);

    internal static IEnumerable<RevocationCall> TokenCalls(RevocationContext context, Func<string, List<KeyValuePair<string, string>>, HttpContent> body, string format = TokenRequestFormats.Form)
    {
        foreach (var (token, hint) in new[] { (context.RefreshToken, "refresh_token"), (context.AccessToken, "access_token") })
        {
            if (token is null)
            {
                continue;
            }

            var request = new HttpRequestMessage(HttpMethod.Post, context.Url);
            var parameters = new List<KeyValuePair<string, string>> { new("token", token), new("token_type_hint", hint) };
            context.ClientAuthentication(request, parameters);
            request.Content = body(format, parameters);
            yield return new RevocationCall(hint, request);
        }
    }
}

/// <summary>
/// RFC 7009 §2.1 at a provider where revoking any token of the grant ends the whole grant (Google's /revoke: the person's
/// consent to the app is withdrawn and every token of it stops working). One call, with the refresh token if there is one
/// (§2.1: the server may revoke the whole grant), else the access token; a second call would only find a revoked token.
/// Skipped while the grant continues (a reconnect), since it would also end the tokens that replace the revoked ones.
/// </summary>
internal sealed class Rfc7009GrantStyle : RevocationStyle
{
    public override string Name => RevocationFormats.Rfc7009Grant;

    public override bool EndsGrant => true;

    public override IEnumerable<RevocationCall> Calls(RevocationContext context) => Rfc7009Style.TokenCalls(context, ProviderClient.Body).Take(1);
}

/// <summary>RFC 7009's parameters as a JSON body {"token": …, "token_type_hint": …} with client authentication (Notion, QuickBooks).</summary>
internal sealed class JsonStyle : RevocationStyle
{
    public override string Name => RevocationFormats.Json;

    public override IEnumerable<RevocationCall> Calls(RevocationContext context) => Rfc7009Style.TokenCalls(context, ProviderClient.Body, TokenRequestFormats.Json);
}

/// <summary>A POST that carries the access token as its Bearer credentials (RFC 6750 §2.1) and no body (Slack's auth.revoke, Dropbox).</summary>
internal sealed class BearerStyle : RevocationStyle
{
    public override string Name => RevocationFormats.Bearer;

    public override IEnumerable<RevocationCall> Calls(RevocationContext context) => AccessTokenOnly(context, token =>
    {
        var request = new HttpRequestMessage(HttpMethod.Post, context.Url);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return request;
    });
}

/// <summary>
/// A DELETE of the revocation URL with the access token as Bearer credentials and no body, ending that token: Zendesk's
/// DELETE /api/v2/oauth/tokens/current.json, Vimeo's DELETE /tokens.
/// </summary>
internal class BearerDeleteStyle : RevocationStyle
{
    public override string Name => RevocationFormats.BearerDelete;

    public override IEnumerable<RevocationCall> Calls(RevocationContext context) => AccessTokenOnly(context, token =>
    {
        var request = new HttpRequestMessage(HttpMethod.Delete, context.Url);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return request;
    });
}

/// <summary>The same DELETE, where it removes the app's whole login for the person: Facebook's DELETE /me/permissions.</summary>
internal sealed class BearerDeleteGrantStyle : BearerDeleteStyle
{
    public override string Name => RevocationFormats.BearerDeleteGrant;

    public override bool EndsGrant => true;
}

/// <summary>
/// GitHub's "Delete an app authorization": DELETE /applications/{client_id}/grant with HTTP Basic client_id:client_secret
/// and a JSON body {"access_token": …}; it deletes the grant and with it every token of the app for that user.
/// </summary>
internal sealed class GitHubGrantStyle : RevocationStyle
{
    public override string Name => RevocationFormats.GitHubGrant;

    public override bool EndsGrant => true;

    public override IEnumerable<RevocationCall> Calls(RevocationContext context) => AccessTokenOnly(context, token =>
    {
        var request = new HttpRequestMessage(HttpMethod.Delete, context.Url) { Content = Json(new Dictionary<string, string> { ["access_token"] = token }) };
        // GitHub documents Basic with the raw id and secret (not RFC 6749 §2.3.1's form-encoding of each).
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{context.Provider.ClientId}:{context.Secret() ?? ""}")));
        request.Headers.Accept.ParseAdd("application/vnd.github+json");
        return request;
    });
}

/// <summary>Strava's POST /oauth/deauthorize: a form with access_token=… (not RFC 7009's token=) and no client authentication.</summary>
internal sealed class FormAccessTokenStyle : RevocationStyle
{
    public override string Name => RevocationFormats.FormAccessToken;

    /// <summary>Strava: deauthorizing invalidates every token of the athlete for the app.</summary>
    public override bool EndsGrant => true;

    public override IEnumerable<RevocationCall> Calls(RevocationContext context) => AccessTokenOnly(context, token =>
        new HttpRequestMessage(HttpMethod.Post, context.Url) { Content = new FormUrlEncodedContent([new("access_token", token)]) });
}

/// <summary>LINE Login's POST /oauth2/v2.1/revoke: a form with access_token, client_id and client_secret.</summary>
internal sealed class FormAccessTokenWithClientStyle : RevocationStyle
{
    public override string Name => RevocationFormats.FormAccessTokenWithClient;

    public override IEnumerable<RevocationCall> Calls(RevocationContext context) => AccessTokenOnly(context, token =>
    {
        var parameters = new List<KeyValuePair<string, string>> { new("access_token", token), new(context.Provider.Config.ClientIdParameter, context.Provider.ClientId) };
        if (context.Secret() is { } secret)
        {
            parameters.Add(new("client_secret", secret));
        }

        return new HttpRequestMessage(HttpMethod.Post, context.Url) { Content = new FormUrlEncodedContent(parameters) };
    });
}

/// <summary>Square's RevokeToken: POST /oauth2/revoke with "Authorization: Client {client secret}" and a JSON body {client_id, access_token}.</summary>
internal sealed class SquareStyle : RevocationStyle
{
    public override string Name => RevocationFormats.Square;

    /// <summary>Square revokes every access token of the seller for the app, whichever one is named.</summary>
    public override bool EndsGrant => true;

    public override IEnumerable<RevocationCall> Calls(RevocationContext context) => AccessTokenOnly(context, token =>
    {
        var request = new HttpRequestMessage(HttpMethod.Post, context.Url)
        {
            Content = Json(new Dictionary<string, string> { ["client_id"] = context.Provider.ClientId, ["access_token"] = token }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Client", context.Secret() ?? "");
        return request;
    });
}

/// <summary>
/// Zoho's POST {accounts}/oauth/v2/token/revoke?token=…: the refresh token (which ends every access token made from it)
/// in the query and no body; the access token when there is no refresh token. Zoho asks for the query string, so the
/// URL holds a secret: the upstream HttpClient logs at Warning only, which never includes request URLs.
/// </summary>
internal sealed class QueryTokenStyle : RevocationStyle
{
    public override string Name => RevocationFormats.QueryToken;

    public override IEnumerable<RevocationCall> Calls(RevocationContext context)
    {
        var (token, hint) = context.RefreshToken is { } refresh ? (refresh, "refresh_token") : (context.AccessToken, "access_token");
        return token is null ? [] : [new RevocationCall(hint, new HttpRequestMessage(HttpMethod.Post, Microsoft.AspNetCore.WebUtilities.QueryHelpers.AddQueryString(context.Url, "token", token)))];
    }
}
