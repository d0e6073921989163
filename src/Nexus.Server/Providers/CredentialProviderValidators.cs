using Nexus.Server.Hosting;

namespace Nexus.Server.Providers;

/// <summary>
/// Validates a custom credential provider (api_key, basic_auth, aws_sigv4): an API base URL and how to apply the
/// credential each user brings; there are no OAuth endpoints and no client. Each mode adds its own checks.
/// </summary>
internal abstract class CredentialProviderValidator(UpstreamPolicy policy) : IProviderModeValidator
{
    protected UpstreamPolicy Policy => policy;

    public abstract string AuthMode { get; }

    public Task<ProviderResolution> ResolveAsync(ProviderRequest body, Provider? existing, string[]? scopes, Dictionary<string, string[]> errors, CancellationToken ct)
    {
        var mode = AuthMode;
        foreach (var (field, value) in new (string, object?)[]
        {
            ("issuer", body.Issuer), ("authorization_url", body.AuthorizationUrl), ("token_url", body.TokenUrl), ("revocation_url", body.RevocationUrl),
            ("pkce", body.Pkce), ("token_endpoint_auth", body.TokenEndpointAuth), ("authorization_params", body.AuthorizationParams),
            ("client_id", body.ClientId), ("client_secret", body.ClientSecret),
        })
        {
            if (value is not null)
            {
                errors[field] = [$"{mode} providers have no OAuth endpoints or client; the user brings the credential."];
            }
        }

        var config = (existing?.Config ?? new ProviderConfig()) with { RefreshSupported = false };
        config = config with
        {
            ApiBaseUrl = body.ApiBaseUrl ?? config.ApiBaseUrl,
            ApiKey = body.ApiKey ?? config.ApiKey,
            Aws = body.Aws ?? config.Aws,
            Verify = body.Verify ?? config.Verify,
            CredentialSchema = body.CredentialSchema is { } schema ? System.Text.Json.Nodes.JsonNode.Parse(schema.GetRawText()) as System.Text.Json.Nodes.JsonObject : config.CredentialSchema ?? CredentialSchemas.Default(mode),
        };

        if (config.ApiBaseUrl is null)
        {
            errors["api_base_url"] = ["api_base_url is required: the provider's API, which the Bridge forwards to."];
        }
        else if (policy.Check(config.ApiBaseUrl) is { } problem)
        {
            errors["api_base_url"] = [$"api_base_url {problem}"];
        }

        CheckMode(config, errors);
        var schemaProblem = config.CredentialSchema is null ? "credential_schema must be a JSON Schema object." : CredentialSchemas.Problem(config.CredentialSchema, mode);
        if (schemaProblem is not null)
        {
            errors["credential_schema"] = [schemaProblem];
        }

        if (config.Verify is { } verify && (verify.Method is not ("GET" or "POST" or "HEAD") || !verify.Path.StartsWith('/') || verify.ExpectStatus is < 100 or > 599))
        {
            errors["verify"] = ["verify is {\"method\": GET, POST or HEAD, \"path\": starting with /, \"expect_status\": an HTTP status}."];
        }

        return Task.FromResult(new ProviderResolution(null, config, body.DisplayName ?? existing?.DisplayName ?? body.Name ?? "", [], body.Scopes ?? [], mode));
    }

    /// <summary>The checks of this mode's own fields.</summary>
    protected virtual void CheckMode(ProviderConfig config, Dictionary<string, string[]> errors)
    {
    }
}

/// <summary><c>api_key</c>: the key goes in a header or a query parameter.</summary>
internal sealed class ApiKeyProviderValidator(UpstreamPolicy policy) : CredentialProviderValidator(policy)
{
    public override string AuthMode => AuthModes.ApiKey;

    protected override void CheckMode(ProviderConfig config, Dictionary<string, string[]> errors)
    {
        if (config.ApiKey is null || config.ApiKey.In is not ("header" or "query") || string.IsNullOrWhiteSpace(config.ApiKey.Name)
            || (config.ApiKey.In == "header" && ProviderRules.ReservedHeaders.Contains(config.ApiKey.Name) && config.ApiKey.Name != "Authorization"))
        {
            errors["api_key"] = ["api_key is required: {\"in\": \"header\" or \"query\", \"name\": the header or parameter name, \"prefix\": optional, e.g. \"Bearer \"}."];
        }
    }
}

/// <summary><c>basic_auth</c>: HTTP Basic (RFC 7617) with the user's name and password; nothing of its own to check.</summary>
internal sealed class BasicAuthProviderValidator(UpstreamPolicy policy) : CredentialProviderValidator(policy)
{
    public override string AuthMode => AuthModes.BasicAuth;
}

/// <summary><c>aws_sigv4</c>: requests signed with AWS Signature Version 4, optionally with a role to assume.</summary>
internal sealed class AwsSigV4ProviderValidator(UpstreamPolicy policy) : CredentialProviderValidator(policy)
{
    public override string AuthMode => AuthModes.AwsSigV4;

    protected override void CheckMode(ProviderConfig config, Dictionary<string, string[]> errors)
    {
        if (config.Aws is null || !config.Aws.TryGetValue("service", out var service) || string.IsNullOrWhiteSpace(service)
            || !config.Aws.TryGetValue("region", out var region) || string.IsNullOrWhiteSpace(region))
        {
            errors["aws"] = ["aws is required: {\"service\": the signing name (s3, execute-api, …), \"region\": e.g. us-east-1}."];
        }

        if (config.Aws is not null)
        {
            ProviderRules.AddAwsRoleErrors(config.Aws, Policy, errors);
        }
    }
}
