using Nexus.Sdk.Aws;

namespace Nexus.Server.Credentials;

/// <summary>
/// How a request to a provider's API is authenticated, one case per strategy of the connection broker: what the Bridge
/// injects and what the capture's check call sends (<see cref="CredentialInjection"/>).
/// </summary>
internal abstract record UpstreamCredential
{
    /// <summary>Header names this credential writes; a caller's own values for them are always removed first.</summary>
    public virtual string[] HeaderNames => [];

    /// <summary>
    /// The secret values as they could come back in a provider's response headers (raw, and as the wire carries
    /// them), so that the Bridge never hands them to a caller that may only use them through it. Values shorter
    /// than <see cref="MinSecretLength"/> are left out: they would match ordinary header text. Worked out once per
    /// response (a few short strings), not cached: role credentials are a new record on every request.
    /// </summary>
    public List<string> Secrets()
    {
        var secrets = new List<string>(2);
        foreach (var value in SecretValues())
        {
            if (value.Length >= MinSecretLength && !secrets.Contains(value))
            {
                secrets.Add(value);
            }
        }

        return secrets;
    }

    public const int MinSecretLength = 8;

    protected abstract IEnumerable<string> SecretValues();

    /// <param name="Scheme">The Authorization scheme: Bearer (RFC 6750 §2.1), or the provider's own (Yandex: OAuth).</param>
    /// <param name="Extra">Headers the provider wants on every call besides the token (Etsy's x-api-key); may hold the client secret.</param>
    /// <param name="ClientSecret">The client secret when <paramref name="Extra"/> holds it: scrubbed from responses on its own too.</param>
    public sealed record Bearer(string AccessToken, string Scheme = "Bearer", IReadOnlyList<KeyValuePair<string, string>>? Extra = null, string? ClientSecret = null) : UpstreamCredential
    {
        private readonly string[] headerNames = Extra is { Count: > 0 } ? [.. Authorization, .. Extra.Select(h => h.Key)] : Authorization;

        public override string[] HeaderNames => headerNames;

        protected override IEnumerable<string> SecretValues() =>
            [AccessToken, .. (Extra ?? []).Select(h => h.Value), .. ClientSecret is null ? Array.Empty<string>() : [ClientSecret]];

        /// <summary>The credential a provider's catalog quirks call for: its scheme and extra headers, with the client's values filled in.</summary>
        public static Bearer For(Providers.Provider provider, string accessToken, Func<string?> clientSecret)
        {
            var c = provider.Config;
            if (c.ApiAuthScheme is null && c.ApiRequestHeaders is not { Count: > 0 })
            {
                return new Bearer(accessToken);
            }

            var extra = Providers.ApiRequestHeaderTemplate.For(provider, clientSecret, out var secret);
            return new Bearer(accessToken, c.ApiAuthScheme ?? "Bearer", extra, secret);
        }
    }

    private static readonly string[] Authorization = ["Authorization"];
    private static readonly string[] AwsHeaders = ["Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"];

    /// <param name="In">"header" or "query".</param>
    /// <param name="Prefix">Written before the key, e.g. "Bearer ".</param>
    public sealed record ApiKey(string In, string Name, string? Prefix, string Key) : UpstreamCredential
    {
        private readonly string[] headerNames = In == "header" ? [Name] : [];

        public override string[] HeaderNames => headerNames;

        protected override IEnumerable<string> SecretValues() => [Key, Uri.EscapeDataString(Key)];
    }

    public sealed record Basic(string Username, string Password) : UpstreamCredential
    {
        public override string[] HeaderNames => Authorization;

        protected override IEnumerable<string> SecretValues() => [Password, Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{Username}:{Password}"))];
    }

    public sealed record AwsSigV4(AwsCredentials Credentials, string Region, string Service) : UpstreamCredential
    {
        public override string[] HeaderNames => AwsHeaders;

        protected override IEnumerable<string> SecretValues() => [Credentials.SecretAccessKey, .. Credentials.SessionToken is { } token ? new[] { token } : []];
    }

    // Credentials never appear in logs or exception messages through ToString().
    public sealed override string ToString() => GetType().Name;
}
