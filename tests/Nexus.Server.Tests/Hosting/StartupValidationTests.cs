using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting;

public sealed class StartupValidationTests
{
    [Theory]
    [InlineData("BASE_URL", "not a url", "BASE_URL")]
    [InlineData("BASE_URL", "ftp://x", "BASE_URL")]
    [InlineData("ENCRYPTION_KEY", "dG9vIHNob3J0", "openssl rand -base64 32")]
    [InlineData("PREVIOUS_ENCRYPTION_KEYS", "nope", "PREVIOUS_ENCRYPTION_KEYS")]
    [InlineData("API_KEY", "short", "API_KEY")]
    [InlineData("DATABASE_URL", "postgres://nodb", "DATABASE_URL")]
    [InlineData("Nexus:AccessTokenSigningAlgorithm", "HS256", "ES256 or RS256")]
    [InlineData("Nexus:UnauthorizedGrantResponse", "maybe", "'seed'")]
    [InlineData("ALLOWED_RETURN_URLS", "app.example.com", "ALLOWED_RETURN_URLS")]
    [InlineData("Nexus:PendingConnectionSeconds", "5", "PendingConnectionSeconds")]
    [InlineData("Nexus:Refresh:MarginSeconds", "-1", "how many seconds before expiry a token is refreshed")]
    [InlineData("Nexus:Refresh:IntervalSeconds", "0", "Nexus:Refresh:IntervalSeconds must be between 1 and 3600")]
    [InlineData("Nexus:Refresh:KeepAliveSeconds", "10", "0 (off) or between 60")]
    [InlineData("Nexus:Refresh:MaxRetryDelaySeconds", "1", "Nexus:Refresh:MaxRetryDelaySeconds between it and 86400")]
    [InlineData("Nexus:Refresh:Concurrency", "0", "Nexus:Refresh:Concurrency 1 to 256")]
    [InlineData("Nexus:Revocation:PollSeconds", "-1", "Nexus:Revocation:PollSeconds must be between 0 and 300")]
    [InlineData("Nexus:Registration:Mode", "sometimes", "Nexus:Registration:Mode must be 'open'")]
    [InlineData("Nexus:Registration:Mode", "token", "Nexus:Registration:InitialAccessToken must be set")]
    [InlineData("Nexus:Registration:MaxMetadataDocumentBytes", "10", "MaxMetadataDocumentBytes 512 to 65536")]
    [InlineData("Nexus:AccessTokenAudience", "http://localhost:8090/mcp", "that is the MCP server's resource")]
    [InlineData("Nexus:TrustedProxies", "not-an-address", "Nexus:TrustedProxies")]
    [InlineData("Nexus:Mcp:AllowedOrigins", "https://assistant.example.com/app", "Nexus:Mcp:AllowedOrigins must be a comma-separated list of exact http(s) origins")]
    [InlineData("Nexus:Mcp:AllowedOrigins", "https://ok.example.com,https://*.example.com", "(got 'https://*.example.com')")]
    public async Task RefusesToStartWithAMessageThatSaysWhatToFix(string key, string value, string expected)
    {
        await using var db = await TestDatabase.CreateAsync();
        var env = new Dictionary<string, string?> { ["ENCRYPTION_KEY"] = NexusTestServer.NewEncryptionKey(), [key.Replace(":", "__", StringComparison.Ordinal)] = value };
        var (exitCode, output) = await NexusProcess.RunAsync(db, env, "migrate");
        Assert.Equal(1, exitCode);
        Assert.Contains("configuration is invalid", output, StringComparison.Ordinal);
        Assert.Contains(expected, output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ProductionRefusesToStartWithoutEncryptionKey()
    {
        await using var db = await TestDatabase.CreateAsync();
        var (exitCode, output) = await NexusProcess.RunAsync(db, new Dictionary<string, string?>(), "migrate");
        Assert.Equal(1, exitCode);
        Assert.Contains("ENCRYPTION_KEY is required in Production", output, StringComparison.Ordinal);
        Assert.Contains("openssl rand -base64 32", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DevelopmentGeneratesAndReusesAKeyFileReadableOnlyByItsOwner()
    {
        await using var db = await TestDatabase.CreateAsync();
        string id, secret;
        await using (var first = await NexusTestServer.StartAsync(db, s => s["ENCRYPTION_KEY"] = null, environment: "Development"))
        {
            (id, secret) = await first.CreateAppClientAsync();
        }

        var keyFile = Path.Combine(db.DataDirectory, "encryption.key");
        Assert.True(File.Exists(keyFile));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        }

        await using var second = await NexusTestServer.StartAsync(db, s => s["ENCRYPTION_KEY"] = null, environment: "Development");
        Assert.Equal(System.Net.HttpStatusCode.OK, (await second.RequestTokenAsync(id, secret)).StatusCode);
    }
}
