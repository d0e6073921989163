using System.Net;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Nexus.Server.Hosting.Commands;
using Nexus.Server.Tests.Notifications;
using Nexus.Server.Tests.Infrastructure;

namespace Nexus.Server.Tests.Hosting.Commands;

/// <summary>
/// Issue 18 item 4: every command of the server binary, run through its in-process entry point
/// (<see cref="NexusCommandLine.RunAsync"/>, what the binary runs) against one running server's container and database,
/// so that each result is checked against what the API sees. Exit codes, the --json shape, and bad input that ends in a
/// clear message with no stack trace and no .NET type name.
/// </summary>
public sealed class CommandsTests(BrokerFixture fixture) : IClassFixture<BrokerFixture>
{
    private NexusTestServer Server => fixture.Server;

    private sealed record Run(int ExitCode, string Output, string Error)
    {
        public JsonElement Json => JsonDocument.Parse(Output).RootElement.Clone();
    }

    private async Task<Run> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await NexusCommandLine.RunAsync(Server.Services, args, output, error, terminal: false, TestContext.Current.CancellationToken);
        var run = new Run(code, output.ToString(), error.ToString());
        AssertNoInternals(run.Output + run.Error);
        return run;
    }

    private static void AssertNoInternals(string text)
    {
        Assert.DoesNotMatch(@"\n\s+at [\w.`<>]+\(", text);
        Assert.DoesNotContain("Exception", text);
        Assert.DoesNotContain("Nexus.Server.", text);
        Assert.DoesNotContain("System.", text);
    }

    private async Task<JsonElement> JsonAsync(params string[] args)
    {
        var run = await RunAsync([.. args, "--json"]);
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}: {run.Output}{run.Error}");
        return run.Json;
    }

    /// <summary>A failure with --json: exit 1 and {"error":{"code","message"}} on standard output.</summary>
    private async Task<JsonElement> FailureAsync(string code, params string[] args)
    {
        var run = await RunAsync([.. args, "--json"]);
        Assert.True(run.ExitCode == 1, $"exit {run.ExitCode}: {run.Output}{run.Error}");
        var error = run.Json.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        return error;
    }

    private static string Unique(string prefix) => prefix + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task UsersAreCreatedListedDisabledAndPromotedThroughTheSameAccountsAsTheApi()
    {
        var email = Unique("cli-") + "@example.com";
        var created = await JsonAsync("users", "create", "--email", email, "--display-name", "Ada");
        Assert.StartsWith("usr_", created.GetProperty("id").GetString());
        Assert.Equal("Ada", created.GetProperty("display_name").GetString());
        Assert.False(created.GetProperty("is_system_admin").GetBoolean());
        Assert.True(created.GetProperty("temporary_password").GetString()!.Length >= 20);
        Assert.True(created.GetProperty("password_change_required").GetBoolean());
        var chosen = await JsonAsync("users", "create", "--email", Unique("cli-") + "@example.com", "--password", "long enough password");
        Assert.False(chosen.GetProperty("password_change_required").GetBoolean());
        var temporary = await JsonAsync("users", "create", "--email", Unique("cli-") + "@example.com", "--password", "long enough password", "--temporary");
        Assert.True(temporary.GetProperty("password_change_required").GetBoolean());
        Assert.True(created.GetProperty("created_at").ValueKind == JsonValueKind.Number);
        Assert.Equal(created.GetProperty("id").GetString(), await Server.UserIdAsync(email));

        var listed = await JsonAsync("users", "list");
        Assert.Contains(listed.GetProperty("users").EnumerateArray(), u => u.GetProperty("email").GetString() == email);

        Assert.True((await JsonAsync("users", "disable", email)).GetProperty("locked_out").GetBoolean());
        Assert.False((await JsonAsync("users", "enable", created.GetProperty("id").GetString()!)).GetProperty("locked_out").GetBoolean());
        Assert.True((await JsonAsync("users", "promote", email)).GetProperty("is_system_admin").GetBoolean());
        Assert.False((await JsonAsync("users", "demote", email)).GetProperty("is_system_admin").GetBoolean());

        await FailureAsync("user_exists", "users", "create", "--email", email, "--password", "long enough password");
        var invalid = await FailureAsync("validation_failed", "users", "create", "--email", Unique("short-") + "@example.com", "--password", "short");
        Assert.True(invalid.GetProperty("errors").TryGetProperty("user", out _));
        await FailureAsync("not_found", "users", "disable", "nobody@example.com");
        var missing = await RunAsync("users", "create");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("--email is required", missing.Error);
        Assert.Contains("Usage: Nexus.Server users create", missing.Error);
    }

    [Fact]
    public async Task AppClientsGetTokensUntilTheirSecretIsRotatedOrTheyAreRevoked()
    {
        var created = await JsonAsync("clients", "create", "--name", "worker", "--scopes", "read,write", "--lifetime", "600");
        var id = created.GetProperty("client_id").GetString()!;
        var secret = created.GetProperty("client_secret").GetString()!;
        Assert.Equal(["read", "write"], created.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));
        Assert.Equal(600, created.GetProperty("access_token_lifetime_seconds").GetInt32());
        Assert.Equal("active", created.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await Server.RequestTokenAsync(id, secret)).StatusCode);

        var listed = await JsonAsync("clients", "list");
        var row = Assert.Single(listed.GetProperty("clients").EnumerateArray(), c => c.GetProperty("client_id").GetString() == id);
        Assert.False(row.TryGetProperty("client_secret", out _));

        var rotated = await JsonAsync("clients", "rotate", id);
        var newSecret = rotated.GetProperty("client_secret").GetString()!;
        Assert.Equal(HttpStatusCode.Unauthorized, (await Server.RequestTokenAsync(id, secret)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Server.RequestTokenAsync(id, newSecret)).StatusCode);

        Assert.Equal("revoked", (await JsonAsync("clients", "revoke", id)).GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, (await Server.RequestTokenAsync(id, newSecret)).StatusCode);
        await FailureAsync("client_revoked", "clients", "rotate", id);
        await FailureAsync("not_found", "clients", "revoke", "nxc_doesnotexist");
        var bad = await FailureAsync("validation_failed", "clients", "create", "--name", "x", "--lifetime", "5");
        Assert.True(bad.GetProperty("errors").TryGetProperty("access_token_lifetime_seconds", out _));
        Assert.Equal(2, (await RunAsync("clients", "create", "--name", "x", "--lifetime", "soon")).ExitCode);
    }

    [Fact]
    public async Task OAuthApplicationsAreRegisteredListedAndRevokedAsTheAdminApiDoes()
    {
        var created = await JsonAsync("apps", "create", "--name", "Tracker", "--redirect-uri", "https://tracker.example.com/cb", "--type", "public");
        var id = created.GetProperty("client_id").GetString()!;
        Assert.Equal("public", created.GetProperty("type").GetString());
        Assert.False(created.TryGetProperty("client_secret", out _));
        Assert.Equal("admin", created.GetProperty("registration").GetString());
        var viaApi = await Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/applications/" + id);
        Assert.Equal("Tracker", viaApi.GetProperty("name").GetString());

        Assert.Contains((await JsonAsync("apps", "list")).GetProperty("applications").EnumerateArray(), a => a.GetProperty("client_id").GetString() == id);
        Assert.Equal("revoked", (await JsonAsync("apps", "revoke", id)).GetProperty("status").GetString());
        Assert.Equal("revoked", (await Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/applications/" + id)).GetProperty("status").GetString());

        var confidential = await JsonAsync("apps", "create", "--name", "Server app", "--redirect-uri", "https://a.example.com/cb", "--redirect-uri", "https://b.example.com/cb");
        Assert.StartsWith("nxs_", confidential.GetProperty("client_secret").GetString());
        Assert.Equal(2, confidential.GetProperty("redirect_uris").GetArrayLength());

        var error = await FailureAsync("validation_failed", "apps", "create", "--name", "No redirect");
        Assert.True(error.GetProperty("errors").TryGetProperty("redirect_uris", out _));
        await FailureAsync("not_found", "apps", "revoke", "nxc_doesnotexist");
    }

    [Fact]
    public async Task ApiKeysAreShownOnceListedWithoutTheKeyAndRevoked()
    {
        var created = await JsonAsync("api-keys", "create", "--name", "backend", "--workspaces", "ws_a,ws_b", "--no-credentials");
        var id = created.GetProperty("id").GetString()!;
        var key = created.GetProperty("api_key").GetString()!;
        Assert.StartsWith("nxk_", key);
        Assert.False(created.GetProperty("can_read_credentials").GetBoolean());
        Assert.Equal(["ws_a", "ws_b"], created.GetProperty("workspaces").EnumerateArray().Select(w => w.GetString()));
        var (status, _) = await fixture.Kit.SendAsync(HttpMethod.Get, "/v1/connections?workspace_id=ws_a", apiKey: key);
        Assert.Equal(HttpStatusCode.OK, status);

        var listed = await JsonAsync("api-keys", "list");
        var row = Assert.Single(listed.GetProperty("api_keys").EnumerateArray(), k => k.GetProperty("id").GetString() == id);
        Assert.False(row.TryGetProperty("api_key", out _));
        Assert.DoesNotContain(key, (await RunAsync("api-keys", "list")).Output);

        Assert.Equal("revoked", (await JsonAsync("api-keys", "revoke", id)).GetProperty("status").GetString());
        Assert.Equal("revoked", (await Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/api-keys/" + id)).GetProperty("status").GetString());

        var error = await FailureAsync("validation_failed", "api-keys", "create", "--name", "no workspaces");
        Assert.True(error.GetProperty("errors").TryGetProperty("workspaces", out _));
        await FailureAsync("not_found", "api-keys", "revoke", "ak_doesnotexist");
    }

    [Fact]
    public async Task KeysShowTheirStatusRotateSigningAndReEncryptWithProgressLines()
    {
        var status = await JsonAsync("keys", "status");
        var active = status.GetProperty("active_key_id").GetString()!;
        Assert.Matches("^[0-9a-f]{8}$", active);
        Assert.Equal("ENCRYPTION_KEY", status.GetProperty("source").GetString());
        Assert.Contains(active, status.GetProperty("key_ids").EnumerateArray().Select(k => k.GetString()));
        Assert.Contains(status.GetProperty("stored_values").EnumerateArray(), v => v.GetProperty("key_id").GetString() == active && v.GetProperty("configured").GetBoolean());
        Assert.Equal(0, status.GetProperty("pending_reencryption").GetInt32());
        Assert.DoesNotContain(Server.EncryptionKey, (await RunAsync("keys", "status")).Output);

        var rotated = await JsonAsync("keys", "rotate-signing");
        var kids = rotated.GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("kid").GetString()).ToList();
        Assert.Equal(2, kids.Count);
        var published = (await Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/signing-keys")).GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("kid").GetString());
        Assert.Subset(published.ToHashSet(), kids.ToHashSet());

        var reencrypt = await RunAsync("keys", "reencrypt", "--json");
        Assert.Equal(0, reencrypt.ExitCode);
        Assert.Equal(0, reencrypt.Json.GetProperty("reencrypted").GetInt32());
        Assert.Equal(active, reencrypt.Json.GetProperty("active_key_id").GetString());
        // Not a terminal: one plain progress line per step, on standard error, ending at the total.
        var lines = reencrypt.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.StartsWith("Re-encrypting: 0/", lines[0]);
        Assert.Matches(@"^Re-encrypting: (\d+)/\1$", lines[^1]);

        Assert.Equal(2, (await RunAsync("keys", "status", "extra")).ExitCode);
    }

    [Fact]
    public async Task ConnectionsAreListedAndRevokedLikeTheGatewayApiDoes()
    {
        var provider = await fixture.Kit.RegisterAsync("github");
        var workspace = Unique("ws_");
        var (connectionId, _) = await fixture.Kit.ConnectAsync(provider, workspace);

        var listed = await JsonAsync("connections", "list", "--workspace", workspace);
        var row = Assert.Single(listed.GetProperty("connections").EnumerateArray());
        Assert.Equal(connectionId, row.GetProperty("connection_id").GetString());
        Assert.Equal("active", row.GetProperty("status").GetString());
        Assert.Equal(provider, row.GetProperty("provider").GetString());
        Assert.False(row.TryGetProperty("access_token", out _));
        Assert.Empty((await JsonAsync("connections", "list", "--workspace", workspace, "--status", "failed")).GetProperty("connections").EnumerateArray());

        var revoked = await JsonAsync("connections", "revoke", connectionId);
        Assert.True(revoked.GetProperty("revoked").GetBoolean());
        var (status, _) = await fixture.Kit.SendAsync(HttpMethod.Get, "/v1/connections/" + connectionId);
        Assert.Equal(HttpStatusCode.NotFound, status);
        var audit = await Server.AdminJsonAsync(HttpMethod.Get, $"/v1/admin/audit?connection_id={connectionId}");
        Assert.Contains("\"cli\"", audit.GetRawText());

        await FailureAsync("not_found", "connections", "revoke", connectionId);
        Assert.Equal(2, (await RunAsync("connections", "list", "--status", "sleeping")).ExitCode);
        Assert.Equal(2, (await RunAsync("connections", "list", "--limit", "0")).ExitCode);
    }

    [Fact]
    public async Task ProvidersExportWithoutSecretsAndImportThroughTheApiValidation()
    {
        var folder = Directory.CreateTempSubdirectory("nexus-cli-").FullName;
        var name = Unique("imp-");
        var variable = "NEXUS_PROVIDER_TEST_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant() + "_CLIENT_SECRET";
        Environment.SetEnvironmentVariable(variable, "imported-secret-value");
        var file = Path.Combine(folder, "providers.json");
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(new
        {
            providers = new object[]
            {
                new { name, authorization_url = fixture.Fake.Url("github", "authorize"), token_url = fixture.Fake.Url("github", "token"), client_id = "cid", client_secret = "${" + variable + "}", scopes = new[] { "read" } },
                new { name = name + "-bad", catalog = "no-such-entry" },
                new { name = name + "-odd", unknown_field = 1 },
                // A file from elsewhere cannot make another of this deployment's variables a secret it sends away.
                new { name = name + "-env", authorization_url = fixture.Fake.Url("github", "authorize"), token_url = fixture.Fake.Url("github", "token"), client_id = "cid", client_secret = "${PATH}" },
            },
        }), TestContext.Current.CancellationToken);

        var import = await RunAsync("providers", "import", file, "--json");
        Assert.Equal(1, import.ExitCode);
        var results = import.Json.GetProperty("providers").EnumerateArray().ToList();
        Assert.Equal(["created", "failed", "failed", "failed"], results.Select(r => r.GetProperty("result").GetString()));
        Assert.Equal("validation_failed", results[1].GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("invalid_json", results[2].GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("NEXUS_PROVIDER_", results[3].GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(1, import.Json.GetProperty("created").GetInt32());
        Assert.Contains("Importing providers: 4/4", import.Error);
        await Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/" + name + "-env", expected: HttpStatusCode.NotFound);
        var viaApi = await Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/" + name);
        Assert.True(viaApi.GetProperty("has_client_secret").GetBoolean());

        Assert.Contains((await JsonAsync("providers", "list")).GetProperty("providers").EnumerateArray(), p => p.GetProperty("name").GetString() == name);

        var export = await RunAsync("providers", "export");
        Assert.Equal(0, export.ExitCode);
        Assert.DoesNotContain("imported-secret-value", export.Output);
        var exported = Assert.Single(export.Json.GetProperty("providers").EnumerateArray(), p => p.GetProperty("name").GetString() == name);
        Assert.Equal("${NEXUS_PROVIDER_" + name.ToUpperInvariant().Replace('-', '_') + "_CLIENT_SECRET}", exported.GetProperty("client_secret").GetString());

        // The export imports again: existing providers are skipped, or changed with --update.
        var exportFile = Path.Combine(folder, "export.json");
        Assert.Equal(0, (await RunAsync("providers", "export", exportFile, "--json")).ExitCode);
        var again = await RunAsync("providers", "import", exportFile, "--json");
        Assert.True(again.ExitCode == 0, again.Output);
        Assert.All(again.Json.GetProperty("providers").EnumerateArray(), r => Assert.Equal("skipped", r.GetProperty("result").GetString()));
        var ours = Path.Combine(folder, "ours.json");
        await File.WriteAllTextAsync(ours, $"[{exported.GetRawText().Replace("\"read\"", "\"read\", \"write\"", StringComparison.Ordinal)}]", TestContext.Current.CancellationToken);
        var update = await RunAsync("providers", "import", ours, "--update", "--json");
        Assert.True(update.ExitCode == 0, update.Output);
        Assert.Equal(1, update.Json.GetProperty("updated").GetInt32());
        viaApi = await Server.AdminJsonAsync(HttpMethod.Get, "/v1/providers/" + name);
        Assert.Equal(["read", "write"], viaApi.GetProperty("scopes").EnumerateArray().Select(s => s.GetString()));
        // Without its variable, an update keeps the stored secret.
        Assert.True(viaApi.GetProperty("has_client_secret").GetBoolean());

        await File.WriteAllTextAsync(Path.Combine(folder, "broken.json"), "{\"providers\": [", TestContext.Current.CancellationToken);
        await FailureAsync("invalid_json", "providers", "import", Path.Combine(folder, "broken.json"));
        await FailureAsync("unreadable_file", "providers", "import", Path.Combine(folder, "missing.json"));
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task MigrateBackupAndRestoreWorkOnTheLiveDatabase()
    {
        var migrate = await JsonAsync("migrate");
        Assert.Equal("up_to_date", migrate.GetProperty("status").GetString());
        Assert.True(migrate.GetProperty("schema_version").GetInt32() > 0);
        var folder = Directory.CreateTempSubdirectory("nexus-backup-").FullName;
        var backup = Path.Combine(folder, "nexus-backup.db");
        if (fixture.Database.Engine == "postgres")
        {
            await FailureAsync("not_sqlite", "backup", backup);
            return;
        }

        var kept = (await JsonAsync("api-keys", "create", "--name", "before the backup", "--workspaces", "*")).GetProperty("id").GetString()!;
        var run = await RunAsync("backup", backup, "--json");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal(backup, run.Json.GetProperty("file").GetString());
        Assert.True(run.Json.GetProperty("bytes").GetInt64() > 0);
        Assert.Equal(migrate.GetProperty("schema_version").GetInt32(), run.Json.GetProperty("schema_version").GetInt32());
        Assert.Matches(@"Backing up: (\d+)/\1", run.Error);
        Assert.False(File.Exists(backup + "-wal"), "a backup is one self-contained file");
        if (!OperatingSystem.IsWindows())
        {
            // It holds password hashes, API-key HMACs, emails and the audit log: its owner's alone.
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(backup));
        }

        await FailureAsync("file_exists", "backup", backup);

        var lost = (await JsonAsync("api-keys", "create", "--name", "after the backup", "--workspaces", "*")).GetProperty("id").GetString()!;
        // The server has the database open: no restore without --force. The server keeps a connection of its own on the
        // database for as long as it runs, so emptying every connection pool (idle pruning, or another test class doing
        // it) does not make it look idle.
        SqliteConnection.ClearAllPools();
        await FailureAsync("database_in_use", "restore", backup);

        var notADatabase = Path.Combine(folder, "notes.txt");
        await File.WriteAllTextAsync(notADatabase, "not a database at all, just some text that is long enough to be read", TestContext.Current.CancellationToken);
        await FailureAsync("invalid_backup", "restore", notADatabase);
        await FailureAsync("no_file", "restore", Path.Combine(folder, "missing.db"));

        var restored = await JsonAsync("restore", backup, "--force");
        Assert.Equal(fixture.Database.SqliteFile, restored.GetProperty("database").GetString());
        var keys = (await Server.AdminJsonAsync(HttpMethod.Get, "/v1/admin/api-keys")).GetProperty("api_keys").EnumerateArray().Select(k => k.GetProperty("id").GetString()).ToList();
        Assert.Contains(kept, keys);
        Assert.DoesNotContain(lost, keys);

        // What the restore replaced is kept beside the database, one self-contained file with the last commits in it.
        var previous = restored.GetProperty("previous").GetString()!;
        Assert.StartsWith(fixture.Database.SqliteFile + ".pre-restore-", previous);
        Assert.False(File.Exists(previous + "-wal"));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(previous));
        }

        await using (var connection = new SqliteConnection($"Data Source={previous};Mode=ReadOnly;Pooling=False"))
        {
            await connection.OpenAsync(TestContext.Current.CancellationToken);
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT COUNT(*) FROM api_keys WHERE id = $id";
            command.Parameters.AddWithValue("$id", lost);
            Assert.Equal(1L, await command.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        }

        File.Delete(previous);
        SqliteConnection.ClearAllPools();
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task ARestoreOfABackupUnderAKeyThisNexusLacksIsRefusedUnlessAllowMissingKeysWhichForceDoesNotStandFor()
    {
        if (fixture.Database.Engine == "postgres")
        {
            return;
        }

        var folder = Directory.CreateTempSubdirectory("nexus-backup-").FullName;
        var backup = Path.Combine(folder, "other-key.db");
        Assert.Equal(0, (await RunAsync("backup", backup)).ExitCode);
        // As if made under another ENCRYPTION_KEY: the key id (bytes 2-5 of the envelope) of its server secrets is one this Nexus lacks.
        await using (var connection = new SqliteConnection($"Data Source={backup};Pooling=False"))
        {
            await connection.OpenAsync(TestContext.Current.CancellationToken);
            var secrets = new List<(string Name, byte[] Value)>();
            await using (var read = connection.CreateCommand())
            {
                read.CommandText = "SELECT name, value FROM server_secrets";
                await using var reader = await read.ExecuteReaderAsync(TestContext.Current.CancellationToken);
                while (await reader.ReadAsync(TestContext.Current.CancellationToken))
                {
                    secrets.Add((reader.GetString(0), (byte[])reader.GetValue(1)));
                }
            }

            Assert.NotEmpty(secrets);
            foreach (var (secretName, value) in secrets)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(value.AsSpan(1, 4), 0xDEADBEEF);
                await using var write = connection.CreateCommand();
                write.CommandText = "UPDATE server_secrets SET value = $value WHERE name = $name";
                write.Parameters.AddWithValue("$value", value);
                write.Parameters.AddWithValue("$name", secretName);
                Assert.Equal(1, await write.ExecuteNonQueryAsync(TestContext.Current.CancellationToken));
            }
        }

        string[] Copies() => Directory.GetFiles(Path.GetDirectoryName(fixture.Database.SqliteFile)!, "nexus.db.pre-restore-*");
        var before = Copies();
        var error = await FailureAsync("missing_keys", "restore", backup);
        Assert.Contains("deadbeef", error.GetProperty("message").GetString());
        Assert.Contains("PREVIOUS_ENCRYPTION_KEYS", error.GetProperty("message").GetString());
        // The refusal names the flag that overrides it, and only that one: --force is for a database in use.
        Assert.Contains("--allow-missing-keys", error.GetProperty("message").GetString());
        Assert.DoesNotContain("--force", error.GetProperty("message").GetString());
        await FailureAsync("missing_keys", "restore", backup, "--force");
        // Past the key check with its own flag, the in-use check still holds (the server has the database open).
        SqliteConnection.ClearAllPools();
        var inUse = await FailureAsync("database_in_use", "restore", backup, "--allow-missing-keys");
        Assert.Contains("--force", inUse.GetProperty("message").GetString());
        // Refused before anything was touched: no copy of the live database was made.
        Assert.Equal(before, Copies());
        Assert.Equal(HttpStatusCode.OK, (await Server.Http.GetAsync("/readyz", TestContext.Current.CancellationToken)).StatusCode);
        SqliteConnection.ClearAllPools();
        Directory.Delete(folder, recursive: true);
    }

    public static TheoryData<string> Commands() => [.. fixtureless.Value];

    private static readonly Lazy<string[]> fixtureless = new(() =>
    [
        "migrate", "purge", "backup", "restore", "users create", "users list", "users disable", "users enable", "users promote", "users demote",
        "clients create", "clients list", "clients rotate", "clients revoke", "apps create", "apps list", "apps revoke",
        "providers import", "providers list", "providers export", "api-keys create", "api-keys list", "api-keys revoke",
        "keys status", "keys rotate-signing", "keys reencrypt", "connections list", "connections revoke",
    ]);

    [Theory]
    [MemberData(nameof(Commands))]
    public async Task EveryCommandHasHelpAndRefusesUnknownOptions(string command)
    {
        var words = command.Split(' ');
        var help = await RunAsync([.. words, "--help"]);
        Assert.Equal(0, help.ExitCode);
        Assert.StartsWith($"Usage: Nexus.Server {command}", help.Output);
        Assert.Contains("--json", help.Output);

        var unknown = await RunAsync([.. words, "--frobnicate", "--json"]);
        Assert.Equal(2, unknown.ExitCode);
        Assert.Equal("usage", unknown.Json.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("--frobnicate", unknown.Json.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task TheOverviewListsEveryCommandAndUnknownOnesAreUsageErrors()
    {
        var overview = await RunAsync("--help");
        Assert.Equal(0, overview.ExitCode);
        foreach (var command in fixtureless.Value)
        {
            Assert.Contains("  " + command + " ", overview.Output);
        }

        Assert.Contains("serve", overview.Output);
        var unknown = await RunAsync("frobnicate");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("Unknown command 'frobnicate'", unknown.Error);
        var group = await RunAsync("clients");
        Assert.Equal(2, group.ExitCode);
        Assert.Contains("clients create", group.Error);
    }

    [Fact]
    public void TheHostReadsItsOwnOptionsAndSettingsButNoneOfTheCommands()
    {
        string[] command = ["users", "create", "--email", "a@example.com", "--urls", "http://127.0.0.1:1", "--Nexus:DataDirectory=/d", "--BASE_URL=http://b", "--json"];
        Assert.Equal(["--Logging:Console:LogToStandardErrorThreshold=Trace", "--urls", "http://127.0.0.1:1", "--Nexus:DataDirectory=/d", "--BASE_URL=http://b"],
            CommandArguments.ForHost(command));
        string[] server = ["--urls", "http://127.0.0.1:1", "--anything=1"];
        Assert.Equal(server, CommandArguments.ForHost(server));
    }

    [Fact]
    public void AProgressBarIsDrawnInPlaceOnATerminal()
    {
        using var error = new StringWriter();
        var progress = new CommandProgress(error, "Backing up", 4, terminal: true);
        progress.Report(0);
        progress.Report(2);
        progress.Report(4);
        var text = error.ToString();
        Assert.Equal(3, text.Count(c => c == '\r'));
        Assert.Contains("\rBacking up [###############...............] 2/4", text);
        Assert.EndsWith("] 4/4" + Environment.NewLine, text);
    }

    [Fact]
    public async Task WebhooksCommandsPauseResumeAndRotateTheSecretAsTheAdminApiDoes()
    {
        var created = await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/webhooks", new { url = "https://hooks.example.test/cli" }, HttpStatusCode.Created);
        var (id, first) = (created.GetProperty("id").GetString()!, created.GetProperty("secret").GetString()!);

        var paused = await JsonAsync("webhooks", "pause", id);
        Assert.Equal(JsonValueKind.Number, paused.GetProperty("disabled_at").ValueKind);
        await FailureAsync("webhook_paused", "webhooks", "test", id);
        var resumed = await JsonAsync("webhooks", "resume", id);
        Assert.True(!resumed.TryGetProperty("disabled_at", out var none) || none.ValueKind == JsonValueKind.Null, resumed.ToString());

        var rotated = await JsonAsync("webhooks", "rotate-secret", id, "--overlap-seconds", "60");
        var second = rotated.GetProperty("secret").GetString()!;
        Assert.NotEqual(first, second);
        Assert.InRange(rotated.GetProperty("previous_secret_expires_at").UnixTime() - Server.Time.GetUtcNow(), TimeSpan.FromSeconds(55), TimeSpan.FromSeconds(61));
        var secrets = await Server.Services.GetRequiredService<Nexus.Server.Notifications.WebhookStore>().SecretsAsync(id, TestContext.Current.CancellationToken);
        Assert.Equal((second, first), (secrets.Current, secrets.Previous));
        // The text form prints the new secret (once), never the replaced one.
        var text = await RunAsync("webhooks", "rotate-secret", id);
        Assert.Equal(0, text.ExitCode);
        Assert.DoesNotContain(second, text.Output);
        Assert.Contains(WebhookSignatureSecretPrefix, text.Output);

        await FailureAsync("validation_failed", "webhooks", "rotate-secret", id, "--overlap-seconds", "604801");
        await FailureAsync("not_found", "webhooks", "pause", "wh_missing");
        await FailureAsync("not_found", "webhooks", "rotate-secret", "wh_missing");
    }

    private const string WebhookSignatureSecretPrefix = "whsec_";

    [Fact]
    public async Task WebhooksCommandsListTestAndResendWhatTheAdminApiDoesAndTheRunningNexusSendsIt()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var id = (await Server.AdminJsonAsync(HttpMethod.Post, "/v1/admin/webhooks", new { url = receiver.Url }, HttpStatusCode.Created)).GetProperty("id").GetString()!;
        var listed = Assert.Single(await JsonAsync("webhooks", "list") is var list ? list.GetProperty("webhooks").EnumerateArray().Where(w => w.GetProperty("id").GetString() == id) : []);
        Assert.Equal(receiver.Url, listed.GetProperty("url").GetString());
        Assert.False(listed.TryGetProperty("secret", out _));

        // The receiver refuses the first attempt: the test event waits for its retry, and resending it sends it now.
        receiver.FailNext(1);
        Assert.Equal("queued", (await JsonAsync("webhooks", "test", id)).GetProperty("status").GetString());
        JsonElement pending = default;
        await RefreshKit.EventuallyAsync(async () => (await JsonAsync("webhooks", "deliveries", id)).GetProperty("deliveries").EnumerateArray()
            .FirstOrDefault(d => d.GetProperty("status").GetString() == "pending" && d.GetProperty("attempts").GetInt32() == 1) is { ValueKind: JsonValueKind.Object } found && (pending = found).ValueKind == JsonValueKind.Object,
            "the test event's first attempt refused");
        var deliveryId = pending.GetProperty("id").GetString()!;
        // An hour back on the server's clock, the scheduled retry (5 s on) is an hour away: only the resend sends it now.
        Server.Time.Advance(TimeSpan.FromHours(-1));
        try
        {
            var resent = await JsonAsync("webhooks", "resend", id, deliveryId);
            Assert.Equal((deliveryId, 1), (resent.GetProperty("id").GetString(), resent.GetProperty("attempts").GetInt32()));
            var delivered = await receiver.WaitForAsync(d => d.Type == "webhook.test" && d.Data.GetProperty("webhook_id").GetString() == id);
            Assert.Equal(WebhookDeliveryServiceMessage, delivered.Data.GetProperty("message").GetString());
        }
        finally
        {
            Server.Time.Advance(TimeSpan.FromHours(1));
        }

        // Delivered: never sent twice. Unknown ids are not_found, in the API's words.
        await RefreshKit.EventuallyAsync(async () => (await JsonAsync("webhooks", "deliveries", id)).GetProperty("deliveries").EnumerateArray()
            .Any(d => d.GetProperty("id").GetString() == deliveryId && d.GetProperty("status").GetString() == "delivered"), "the delivery marked delivered");
        await FailureAsync("delivery_delivered", "webhooks", "resend", id, deliveryId);
        await FailureAsync("not_found", "webhooks", "resend", id, "whd_missing");
        await FailureAsync("not_found", "webhooks", "test", "wh_missing");
        await FailureAsync("not_found", "webhooks", "deliveries", "wh_missing");
        Assert.Equal(2, (await RunAsync("webhooks", "resend", id)).ExitCode);
    }

    private const string WebhookDeliveryServiceMessage = "Hello from Nexus";
}
