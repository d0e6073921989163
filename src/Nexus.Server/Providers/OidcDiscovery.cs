using System.Text.Json;
using Nexus.Server.Hosting;

namespace Nexus.Server.Providers;

/// <summary>What a provider publishes at {issuer}/.well-known/openid-configuration, reduced to what the broker uses.</summary>
internal sealed record DiscoveredEndpoints(
    string AuthorizationUrl,
    string TokenUrl,
    string? RevocationUrl,
    string? UserinfoUrl,
    bool SupportsS256,
    string? TokenEndpointAuth,
    bool AuthorizationResponseIss = false);

/// <summary>OpenID Connect Discovery 1.0 for custom providers registered by issuer.</summary>
internal sealed class OidcDiscovery(IHttpClientFactory httpFactory, UpstreamPolicy policy, TimeProvider time)
{
    private const int MaxDocumentBytes = 256 * 1024;

    public async Task<(DiscoveredEndpoints? Endpoints, string? Error)> DiscoverAsync(string issuer, CancellationToken ct)
    {
        if (policy.Check(issuer) is { } problem)
        {
            return (null, $"issuer {problem}");
        }

        // OIDC Discovery §4: the document lives at the issuer with /.well-known/openid-configuration appended.
        var url = issuer.TrimEnd('/') + "/.well-known/openid-configuration";
        string? body;
        try
        {
            var http = httpFactory.CreateClient(UpstreamPolicy.HttpClientName);
            using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, ct);
            if (!response.IsSuccessStatusCode)
            {
                return (null, $"{url} answered HTTP {(int)response.StatusCode}.");
            }

            // HttpClient.Timeout bounded the headers only; the document's body gets the same bound.
            using var bodyTimeout = new Deadline(http.Timeout, time, ct);
            body = await response.Content.ReadLimitedAsync(MaxDocumentBytes, bodyTimeout.Token);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            // One message for refused, unreachable, reset and timed out: which one would tell whether a port answered.
            return (null, $"{url} could not be fetched.");
        }

        if (body is null)
        {
            return (null, $"{url} is larger than {MaxDocumentBytes} bytes.");
        }

        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            string? Get(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

            // OIDC Discovery §4.3: the issuer in the document MUST be identical to the one it was fetched for.
            if (Get("issuer")?.TrimEnd('/') != issuer.TrimEnd('/'))
            {
                return (null, $"the document's issuer '{Get("issuer")}' is not '{issuer}'.");
            }

            var authorization = Get("authorization_endpoint");
            var token = Get("token_endpoint");
            if (authorization is null || token is null)
            {
                return (null, "the document has no authorization_endpoint or token_endpoint.");
            }

            bool Lists(string name, string value) => root.TryGetProperty(name, out var list) && list.ValueKind == JsonValueKind.Array
                && list.EnumerateArray().Any(e => e.ValueKind == JsonValueKind.String && e.GetString() == value);

            // OIDC Discovery §3: token_endpoint_auth_methods_supported defaults to client_secret_basic when omitted.
            string? auth = !root.TryGetProperty("token_endpoint_auth_methods_supported", out _) || Lists("token_endpoint_auth_methods_supported", ClientAuthMethods.Basic)
                ? ClientAuthMethods.Basic
                : Lists("token_endpoint_auth_methods_supported", ClientAuthMethods.Post) ? ClientAuthMethods.Post : null;
            // RFC 9207 §3: authorization_response_iss_parameter_supported, a boolean, false when omitted.
            var iss = root.TryGetProperty("authorization_response_iss_parameter_supported", out var supported) && supported.ValueKind == JsonValueKind.True;
            return (new DiscoveredEndpoints(authorization, token, Get("revocation_endpoint"), Get("userinfo_endpoint"),
                Lists("code_challenge_methods_supported", "S256"), auth, iss), null);
        }
        catch (JsonException)
        {
            return (null, $"{url} is not a JSON document.");
        }
    }
}
