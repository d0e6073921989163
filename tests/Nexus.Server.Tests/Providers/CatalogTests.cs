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

        var github = Catalog.Entries["github"];
        Assert.Empty(ProviderCatalog.ValidateEntry("github", github with { TokenEndpointAuth = ClientAuthMethods.None, Pkce = PkceModes.Supported }));
        Assert.Contains(ProviderCatalog.ValidateEntry("github", github with { TokenEndpointAuth = ClientAuthMethods.None, Pkce = PkceModes.Unsupported }),
            e => e.Contains("public client", StringComparison.Ordinal));
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
