using System.Net;
using System.Text;
using System.Text.Json;
using Nexus.Server.Providers;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Providers;

/// <summary>Every catalog entry is checked: required fields per auth_mode, placeholders, credential schemas, https URLs.</summary>
public sealed class CatalogTests
{
    private static readonly ProviderCatalog Catalog = ProviderCatalog.LoadEmbedded();

    /// <summary>Raised with every batch of providers added, so an entry lost in a merge is noticed.</summary>
    private const int ExpectedCount = 169;

    public static TheoryData<string> Keys() => new(Catalog.Entries.Keys);

    [Fact]
    public void TheShippedCatalogHasItsProvidersAndNoProblems()
    {
        Assert.Equal(1, Catalog.Version);
        Assert.Equal(ExpectedCount, Catalog.Entries.Count);
        Assert.Empty(Catalog.Validate());
    }

    [Theory]
    [MemberData(nameof(Keys))]
    public void EveryEntryIsValid(string key)
    {
        var entry = Catalog.Entries[key];
        Assert.Empty(ProviderCatalog.ValidateEntry(key, entry));
        Assert.Contains(entry.AuthMode, AuthModes.All);
        if (entry.AuthMode == AuthModes.OAuth2)
        {
            Assert.NotNull(entry.AuthorizationUrl);
            Assert.NotNull(entry.TokenUrl);
            Assert.NotNull(entry.DefaultScopes);
        }
        else
        {
            Assert.Equal(JsonValueKind.Object, entry.CredentialSchema!.Value.ValueKind);
        }
    }

    [Theory]
    [InlineData("\"token_url\": \"http://example.com/token\"", "token_url must be an absolute https URL")]
    [InlineData("\"token_url\": \"https://{tenant}.example.com/token\"", "not declared in placeholders")]
    [InlineData("\"pkce\": \"sometimes\"", "pkce must be")]
    [InlineData("\"token_endpoint_auth\": \"private_key_jwt\"", "token_endpoint_auth must be")]
    [InlineData("\"token_request_format\": \"xml\"", "token_request_format must be")]
    public void TheValidatorCatchesABrokenOAuthEntry(string replacement, string expected)
    {
        var field = replacement[..(replacement.IndexOf(':', StringComparison.Ordinal) + 1)];
        var json = OAuthEntry.Replace(OAuthEntry.Split('\n').First(l => l.TrimStart().StartsWith(field, StringComparison.Ordinal)).Trim().TrimEnd(','), replacement, StringComparison.Ordinal);
        var errors = Parse(json).Validate();
        Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void TheValidatorChecksWherePerConnectionValuesComeFromAndPublicClients()
    {
        var salesforce = Catalog.Entries["salesforce"];
        var instance = salesforce.Placeholders!["instance"];
        CatalogEntry With(CatalogPlaceholder p) => salesforce with { Placeholders = new(salesforce.Placeholders) { ["instance"] = p } };
        // Known only after consent, so the consent's own URLs cannot use it.
        Assert.Contains(ProviderCatalog.ValidateEntry("salesforce", With(instance) with { TokenUrl = "https://{instance}.my.salesforce.com/services/oauth2/token" }),
            e => e.Contains("known only after consent", StringComparison.Ordinal));
        Assert.Contains(ProviderCatalog.ValidateEntry("salesforce", With(instance with { Field = null })), e => e.Contains("needs the field", StringComparison.Ordinal));
        Assert.Contains(ProviderCatalog.ValidateEntry("salesforce", With(instance with { Source = "dns" })), e => e.Contains("must be one of", StringComparison.Ordinal));
        Assert.Contains(ProviderCatalog.ValidateEntry("salesforce", With(instance with { Source = PlaceholderSources.Metadata })), e => e.Contains("declares no metadata", StringComparison.Ordinal));
        Assert.Contains(ProviderCatalog.ValidateEntry("salesforce", With(instance with { Default = "acme" })), e => e.Contains("cannot have a default", StringComparison.Ordinal));

        // GitHub's grant deletion authenticates with the client secret, which a public client does not have.
        var github = Catalog.Entries["github"] with { RevocationUrl = null, RevocationFormat = null };
        Assert.Empty(ProviderCatalog.ValidateEntry("github", github with { TokenEndpointAuth = ClientAuthMethods.None, Pkce = PkceModes.Supported }));
        Assert.Contains(ProviderCatalog.ValidateEntry("github", Catalog.Entries["github"] with { TokenEndpointAuth = ClientAuthMethods.None, Pkce = PkceModes.Supported }),
            e => e.Contains("authenticates with the client secret", StringComparison.Ordinal));
        Assert.Contains(ProviderCatalog.ValidateEntry("github", github with { TokenEndpointAuth = ClientAuthMethods.None, Pkce = PkceModes.Unsupported }),
            e => e.Contains("public client", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("github", RevocationFormats.GitHubGrant)]
    [InlineData("strava", RevocationFormats.FormAccessToken)]
    [InlineData("zendesk", RevocationFormats.BearerDelete)]
    [InlineData("vimeo", RevocationFormats.BearerDelete)]
    [InlineData("facebook", RevocationFormats.BearerDeleteGrant)]
    [InlineData("google", RevocationFormats.Rfc7009Grant)]
    [InlineData("gmail", RevocationFormats.Rfc7009Grant)]
    [InlineData("square", RevocationFormats.Square)]
    [InlineData("line", RevocationFormats.FormAccessTokenWithClient)]
    [InlineData("zoho_crm", RevocationFormats.QueryToken)]
    [InlineData("slack", RevocationFormats.Bearer)]
    [InlineData("notion", RevocationFormats.Json)]
    public void ProvidersWithTheirOwnRevocationApiDeclareItsStyle(string key, string format)
    {
        var entry = Catalog.Entries[key];
        Assert.Equal(format, entry.RevocationFormat);
        Assert.NotNull(entry.RevocationUrl);
    }

    [Fact]
    public void TheRequestQuirksOfTikTokDropboxSignEtsyAndYandexAreDeclared()
    {
        Assert.Equal("client_key", Catalog.Entries["tiktok"].ClientIdParam);
        Assert.Equal("https://app.hellosign.com/oauth/token?refresh", Catalog.Entries["dropbox_sign"].RefreshUrl);
        Assert.Equal("{client_id}:{client_secret}", Catalog.Entries["etsy"].ApiRequestHeaders!["x-api-key"]);
        Assert.Equal("OAuth", Catalog.Entries["yandex"].ApiAuthScheme);
    }

    [Fact]
    public void TheValidatorChecksTheRevocationStyleAndTheRequestQuirks()
    {
        var strava = Catalog.Entries["strava"];
        string[] Errors(CatalogEntry e) => [.. ProviderCatalog.ValidateEntry("strava", e)];
        Assert.Contains(Errors(strava with { RevocationFormat = "carrier_pigeon" }), e => e.Contains("revocation_format must be one of", StringComparison.Ordinal));
        Assert.Contains(Errors(strava with { RevocationUrl = null }), e => e.Contains("revocation_format needs a revocation_url", StringComparison.Ordinal));
        // {client_id} is reserved for revocation_url; anywhere else it is an undeclared placeholder, and it cannot be declared.
        Assert.Empty(Errors(strava with { RevocationUrl = "https://www.strava.com/apps/{client_id}/deauthorize" }));
        Assert.Contains(Errors(strava with { TokenUrl = "https://www.strava.com/{client_id}/token" }), e => e.Contains("not declared", StringComparison.Ordinal));
        Assert.Contains(Errors(strava with { RevocationUrl = "https://www.strava.com/{client_id}", Placeholders = new() { ["client_id"] = new CatalogPlaceholder { Description = "x", Pattern = "^a$", Default = "a" } } }),
            e => e.Contains("reserved", StringComparison.Ordinal));
        Assert.Contains(Errors(strava with { RefreshUrl = "http://www.strava.com/oauth/token" }), e => e.Contains("refresh_url must be an absolute https URL", StringComparison.Ordinal));
        Assert.Contains(Errors(strava with { ClientIdParam = "client id" }), e => e.Contains("client_id_param", StringComparison.Ordinal));
        Assert.Contains(Errors(strava with { ApiAuthScheme = "OAuth token" }), e => e.Contains("api_auth_scheme", StringComparison.Ordinal));
        Assert.Contains(Errors(strava with { ApiRequestHeaders = new() { ["Authorization"] = "x" } }), e => e.Contains("api_request_headers", StringComparison.Ordinal));
        Assert.Contains(Errors(strava with { ApiRequestHeaders = new() { ["x-key"] = "{refresh_token}" } }), e => e.Contains("only {client_id} and {client_secret}", StringComparison.Ordinal));
        Assert.Contains(Errors(strava with { ApiRequestHeaders = new() { ["x-key"] = "a\nb" } }), e => e.Contains("printable ASCII", StringComparison.Ordinal));
    }

    [Fact]
    public void TheValidatorCatchesAnApiKeyEntryWithoutACredentialSchemaAndUnknownFields()
    {
        var missingSchema = """{"version":1,"providers":{"k":{"display_name":"K","auth_mode":"api_key","categories":["ai"],"docs_url":"https://k.test","api_base_url":"https://api.k.test","api_key":{"in":"header","name":"x-key"}}}}""";
        Assert.Contains(Parse(missingSchema).Validate(), e => e.Contains("credential_schema", StringComparison.Ordinal));
        var unknownField = missingSchema.Replace("\"categories\"", "\"categoires\":[],\"categories\"", StringComparison.Ordinal);
        Assert.Throws<JsonException>(() => Parse(unknownField));
    }

    [Fact]
    public void TheValidatorRequiresTheModesFieldNamesInACredentialSchema()
    {
        var aws = Catalog.Entries["aws"];
        var renamed = JsonDocument.Parse(aws.CredentialSchema!.Value.GetRawText().Replace("secret_access_key", "secret_key", StringComparison.Ordinal)).RootElement.Clone();
        Assert.Contains(ProviderCatalog.ValidateEntry("aws", aws with { CredentialSchema = renamed }), e => e.Contains("'secret_access_key'", StringComparison.Ordinal));
        var openai = Catalog.Entries["openai"];
        var node = System.Text.Json.Nodes.JsonNode.Parse(openai.CredentialSchema!.Value.GetRawText())!;
        node["required"] = new System.Text.Json.Nodes.JsonArray();
        var optional = JsonDocument.Parse(node.ToJsonString()).RootElement.Clone();
        Assert.Contains(ProviderCatalog.ValidateEntry("openai", openai with { CredentialSchema = optional }), e => e.Contains("'api_key'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task GetCatalogListsEveryEntryWithItsPublicFieldsAndNeedsNoKey()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var server = await NexusTestServer.StartAsync(db);
        using var response = await server.Http.GetAsync("/v1/catalog");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(Catalog.Entries.Count, body.GetProperty("count").GetInt32());
        var google = body.GetProperty("providers").EnumerateArray().Single(p => p.GetProperty("key").GetString() == "google");
        Assert.Equal("https://oauth2.googleapis.com/token", google.GetProperty("token_url").GetString());
        Assert.Equal("oauth2", google.GetProperty("auth_mode").GetString());
        Assert.Equal(["openid", "email", "profile"], google.GetProperty("default_scopes").EnumerateArray().Select(s => s.GetString()!).ToArray());

        var apiKeys = JsonDocument.Parse(await server.Http.GetStringAsync("/v1/catalog?auth_mode=api_key")).RootElement;
        Assert.Equal(Catalog.Entries.Values.Count(e => e.AuthMode == AuthModes.ApiKey), apiKeys.GetProperty("count").GetInt32());
        Assert.All(apiKeys.GetProperty("providers").EnumerateArray(), p => Assert.True(p.TryGetProperty("credential_schema", out _)));
    }

    private static ProviderCatalog Parse(string json) => ProviderCatalog.Parse(new MemoryStream(Encoding.UTF8.GetBytes(json)));

    private const string OAuthEntry = """
        {
          "version": 1,
          "providers": {
            "example": {
              "display_name": "Example",
              "auth_mode": "oauth2",
              "categories": ["dev-tools"],
              "docs_url": "https://example.com/docs",
              "api_base_url": "https://api.example.com",
              "authorization_url": "https://example.com/authorize",
              "token_url": "https://example.com/token",
              "default_scopes": [],
              "pkce": "supported",
              "token_endpoint_auth": "client_secret_post",
              "token_request_format": "form",
              "refresh": { "supported": true }
            }
          }
        }
        """;
}
