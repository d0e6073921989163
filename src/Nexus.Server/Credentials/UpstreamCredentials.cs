using Nexus.Sdk.Aws;
using Nexus.Server.Hosting;
using Nexus.Server.Providers;

namespace Nexus.Server.Credentials;

/// <summary>Why a connection's stored values cannot be used with its provider's current settings.</summary>
/// <param name="Field">The connection's field at fault (capture answers it as a field error), or null when the provider's settings are.</param>
internal sealed record CredentialProblem(string? Field, string Detail)
{
    /// <summary>
    /// At read time (GET /v1/token, the Bridge) a 409: nothing upstream failed, the stored values and the provider's
    /// settings do not fit (a custom schema without the mode's fields, a region that is not one, a provider row that
    /// predates a check). New credentials or a PATCH of the provider resolve it.
    /// </summary>
    public IResult ToProblem() =>
        Problems.Create(ProblemCatalog.CredentialsUnusable, Detail);
}

/// <summary>What a connection's stored values sign or authenticate with, and for aws_sigv4 the role they assume; or why not.</summary>
internal sealed record StoredCredential(UpstreamCredential? Credential, AwsRole? Role, CredentialProblem? Problem)
{
    public static StoredCredential Unusable(string? field, string detail) => new(null, null, new CredentialProblem(field, detail));
}

/// <summary>Turns a provider's strategy and a connection's stored values into what the Bridge applies.</summary>
internal static class UpstreamCredentials
{
    /// <summary>
    /// Total: a missing field or an unusable setting is a <see cref="CredentialProblem"/>, never an exception, because
    /// it is reached with whatever a provider's credential_schema let through (registration enforces the per-mode
    /// field names now, but a provider row may be older than that).
    /// </summary>
    public static StoredCredential From(Provider provider, IReadOnlyDictionary<string, string> values)
    {
        switch (provider.AuthMode)
        {
            case AuthModes.ApiKey:
                // A schema older than the per-mode names may call its only field something else; with more than
                // one field there is no telling which is the key.
                var key = values.GetValueOrDefault("api_key") ?? (values.Count == 1 ? values.Values.Single() : null);
                var apiKey = provider.Config.ApiKey;
                if (key is null)
                {
                    return StoredCredential.Unusable("api_key", "An api_key provider's credentials need an 'api_key' value.");
                }

                // A key sent in a header must be a valid header value, or every Bridge call would fail later.
                return (apiKey?.In ?? "header") == "header" && !IsHeaderValue((apiKey?.Prefix ?? "") + key)
                    ? StoredCredential.Unusable("api_key", NotAHeaderValue("api_key"))
                    : new(new UpstreamCredential.ApiKey(apiKey?.In ?? "header", apiKey?.Name ?? "Authorization", apiKey?.Prefix, key), null, null);
            case AuthModes.BasicAuth:
                // Some APIs take a key as the password and no user name; a missing password is not a credential.
                return values.GetValueOrDefault("password") is not { } password
                    ? StoredCredential.Unusable("password", "A basic_auth provider's credentials need a 'password' value.")
                    : new(new UpstreamCredential.Basic(values.GetValueOrDefault("username") ?? "", password), null, null);
            case AuthModes.AwsSigV4:
                return FromAws(provider, values);
            default:
                return StoredCredential.Unusable(null, "OAuth connections carry a bearer token, not stored credential fields.");
        }
    }

    private static StoredCredential FromAws(Provider provider, IReadOnlyDictionary<string, string> values)
    {
        foreach (var name in new[] { "access_key_id", "secret_access_key" })
        {
            if (!values.ContainsKey(name))
            {
                return StoredCredential.Unusable(name, $"An aws_sigv4 provider's credentials need an '{name}' value.");
            }
        }

        // The key id is part of the Authorization header and a session token is the X-Amz-Security-Token header.
        foreach (var name in new[] { "access_key_id", "session_token" })
        {
            if (values.GetValueOrDefault(name) is { } value && !IsHeaderValue(value))
            {
                return StoredCredential.Unusable(name, NotAHeaderValue(name));
            }
        }

        var (region, fromConnection, regionProblem) = AwsRoleConfig.ResolveRegion(provider, values);
        if (regionProblem is not null)
        {
            return StoredCredential.Unusable(fromConnection ? AwsRoleConfig.Region : null, regionProblem);
        }

        var (role, field, roleProblem) = AwsRoleConfig.Resolve(provider, values, region);
        if (roleProblem is not null)
        {
            return StoredCredential.Unusable(field, roleProblem);
        }

        var credential = new UpstreamCredential.AwsSigV4(new AwsCredentials(values["access_key_id"], values["secret_access_key"], values.GetValueOrDefault("session_token")),
            region, provider.Config.Aws?.GetValueOrDefault(AwsRoleConfig.Service) ?? "execute-api");
        return new(credential, role, null);
    }

    /// <summary>
    /// RFC 9110 §5.5: a field value is visible ASCII with spaces or tabs inside (obs-text is not sent: HTTP clients
    /// refuse non-ASCII header values). No CR, LF, NUL or other control character, no leading or trailing space.
    /// </summary>
    public static bool IsHeaderValue(string value) =>
        value.Length > 0 && value[0] is not (' ' or '\t') && value[^1] is not (' ' or '\t') && value.All(c => c is (>= '!' and <= '~') or ' ' or '\t');

    private static string NotAHeaderValue(string field) =>
        $"'{field}' is sent in an HTTP header, so it may contain only printable ASCII characters (no line breaks or other control characters).";
}
