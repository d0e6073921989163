using System.Security.Cryptography;
using System.Text;
using Nexus.Sdk.Aws;

namespace Nexus.Server.Credentials;

/// <summary>
/// Puts a credential on a request to a provider's API: the one implementation that the Bridge forwards with and the
/// credential capture checks new credentials with (catalog "verify"), so that what a check accepts is what the Bridge
/// later sends.
/// </summary>
internal static class CredentialInjection
{
    /// <summary>The URI to call: with a query-string API key, that key in place of any parameter of its name the caller sent.</summary>
    public static Uri Target(Uri uri, UpstreamCredential credential) =>
        credential is UpstreamCredential.ApiKey { In: "query" } queryKey ? WithQueryParameter(uri, queryKey.Name, (queryKey.Prefix ?? "") + queryKey.Key) : uri;

    /// <summary>What SigV4 signs as the payload: the hash of an empty or buffered body, or UNSIGNED-PAYLOAD for a streamed one (which S3 accepts).</summary>
    public static string PayloadHash(bool hasBody, byte[]? buffered) =>
        !hasBody ? SigV4Signer.EmptyPayloadHash
        : buffered is not null ? Convert.ToHexStringLower(SHA256.HashData(buffered))
        : SigV4Signer.UnsignedPayload;

    /// <summary>
    /// Writes the credential's headers (Authorization and the provider's extra headers, an API key's header) or signs
    /// the request (SigV4, last, over the headers already on it). The caller has removed its own values of
    /// <see cref="UpstreamCredential.HeaderNames"/> first; a query-string key is in <see cref="Target"/>.
    /// </summary>
    public static async Task ApplyAsync(HttpRequestMessage message, UpstreamCredential credential, string payloadHash, DateTimeOffset now, CancellationToken ct)
    {
        switch (credential)
        {
            case UpstreamCredential.Bearer bearer:
                message.Headers.TryAddWithoutValidation("Authorization", bearer.Scheme + " " + bearer.AccessToken);
                foreach (var (name, value) in bearer.Extra ?? [])
                {
                    message.Headers.TryAddWithoutValidation(name, value);
                }

                break;
            case UpstreamCredential.ApiKey { In: "header" } headerKey:
                message.Headers.TryAddWithoutValidation(headerKey.Name, (headerKey.Prefix ?? "") + headerKey.Key);
                break;
            case UpstreamCredential.Basic basic:
                // RFC 7617 §2: user-id ":" password, Base64 of its UTF-8 bytes.
                message.Headers.TryAddWithoutValidation("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{basic.Username}:{basic.Password}")));
                break;
            case UpstreamCredential.AwsSigV4 aws:
                await SigV4Signer.SignAsync(message, aws.Credentials, aws.Region, aws.Service, now, new SigV4Options { PayloadHash = payloadHash, AddContentSha256Header = true }, ct);
                break;
        }
    }

    /// <summary>A query string without the parameter <paramref name="name"/>, however the caller encoded it.</summary>
    public static string WithoutParameter(string query, string name)
    {
        var encodedName = Uri.EscapeDataString(name);
        return string.Join('&', query.Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Where(p => p.Split('=')[0] is var key && !string.Equals(key, encodedName, StringComparison.Ordinal) && !string.Equals(Uri.UnescapeDataString(key), name, StringComparison.Ordinal)));
    }

    private static Uri WithQueryParameter(Uri uri, string name, string value)
    {
        // A caller's own parameter of that name is dropped: it must not ride along beside the injected key.
        var kept = WithoutParameter(uri.Query.TrimStart('?'), name);
        var added = $"{Uri.EscapeDataString(name)}={Uri.EscapeDataString(value)}";
        return new UriBuilder(uri) { Query = kept.Length == 0 ? added : kept + "&" + added }.Uri;
    }
}
